package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sharedenclave/sharedenclave/cmd/internal/cli"
)

// parseInterspersed parses flags that may come before or after the
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagStatus maps a flag parsing error to an exit status: 0 for --help,
// 2 otherwise.
func flagStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func usageErr(stderr io.Writer, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(stderr, "enclavectl %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return 2
}

func fail(stderr io.Writer, cmd string, err error, hint string) int {
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(stderr, "enclavectl %s: %s\n", cmd, msg)
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", hint)
	}
	return 1
}

// newFlagsHelpOut returns a FlagSet that reports errors instead of
// exiting: its usage goes to stdout when args ask for help (exit 0), and
// to stderr after a usage error (exit 2).
func newFlagsHelpOut(name, synopsis string, args []string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cli.SetUsage(fs, args, stdout, stderr, "Usage: enclavectl "+synopsis+"\n\nFlags:\n")
	return fs
}
