// Package cli holds the command-line conventions every Shared Enclave
// command follows: help asked for (`--help`, `-h`, `help`) goes to standard
// output with exit status 0; a usage mistake prints the usage on standard
// error with exit status 2.
package cli

import (
	"flag"
	"fmt"
	"io"
)

// IsHelp reports whether arg asks for help.
func IsHelp(arg string) bool {
	switch arg {
	case "help", "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// HelpAsked reports whether args ask for help: "help" alone, or a help
// flag before "--".
func HelpAsked(args []string) bool {
	if len(args) == 1 && args[0] == "help" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a != "help" && IsHelp(a) {
			return true
		}
	}
	return false
}

// SetUsage makes fs print head and then its flags, on stdout when args
// ask for help and on stderr otherwise (a usage error). Flag errors
// themselves always go to stderr.
func SetUsage(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, head string) {
	out := stderr
	if HelpAsked(args) {
		out = stdout
	}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(out, head)
		fs.SetOutput(out)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
}

// Args returns args with a lone "help" turned into "--help", so that the
// flag package treats both alike.
func Args(args []string) []string {
	if len(args) == 1 && args[0] == "help" {
		return []string{"--help"}
	}
	return args
}
