// Command enclavectl is the admin and developer tool of Shared Enclave:
// the simulated SGX platform, quote inspection and verification, and calls
// to the relay and the KMS from a shell. Run `enclavectl help` for the list.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sharedenclave/sharedenclave/cmd/internal/cli"
)

const usage = `enclavectl: Shared Enclave admin and developer tool

Usage:
  enclavectl sim init DIR [--out-of-date] [--validity DURATION]
        create a simulated SGX platform in DIR (root CA marked SIMULATED,
        PCK chain, signed TCB info and QE identity, CRLs)
  enclavectl sim quote --sim-dir DIR --report-data HEX [--mrenclave HEX]
        [--isvprodid N] [--isvsvn N] [--debug] [--out FILE]
        print a simulated quote (hex) binding the given report data
  enclavectl sim refresh DIR [--validity DURATION]
        re-sign the platform's collateral, current from now
  enclavectl sim serve --sim-dir DIR [--listen ADDR]
        serve the platform's collateral at Intel PCS v4 paths (plain HTTP,
        loopback by default), for --pccs
  enclavectl quote verify --quote FILE [--collateral DIR | --pccs URL]
        [--root PEM] [--at RFC3339] [--require-crls] [--ego]
        [--policy FILE | --allow-debug --accept-status LIST]
        verify a quote (binary or hex) and print the verdict as JSON;
        exit status 0 if genuine and acceptable (not DEBUG, TCB status
        accepted), 1 if not genuine, 3 if genuine but refused by policy
  enclavectl relay register --id ID [--addr HOST:PORT] [--simulation --sim-dir DIR]
  enclavectl relay send --id ID --to ID MESSAGE... [flags]
  enclavectl relay poll --id ID [--all] [flags]
  enclavectl relay receive --id ID [--follow [--count N]] [flags]
        the relay calls from a shell: connect, attest, register as ID, act
  enclavectl kms key create|read|list|rotate, kms encrypt|decrypt NAME …,
        kms policy write NAME FILE, kms token create --policies NAMES
        the KMS calls over attested TLS (token from --token-file or
        $SHARED_ENCLAVE_TOKEN, never a flag); "enclavectl kms" lists them
  enclavectl custody keygen|decrypt-share|unseal|status …
        the operator's side of recovery shares: make a share key, decrypt a
        share, submit it after verifying the service's quote; "enclavectl
        custody" lists them
  enclavectl backup save|check|restore …
        backups: snapshot a running kmsd after verifying its quote, check an
        archive, unpack one into a new data dir; "enclavectl backup" lists
        them
  enclavectl ratls cert --out CERT.pem (--key KEY.pem | --key-out KEY.pem)
        [--format gramine|gramine-legacy|ego] [--simulation --sim-dir DIR]
        make an RA-TLS certificate for a key, as Gramine or EGo lay them out
  enclavectl ratls inspect CERT [--collateral DIR | --pccs URL] [--root PEM]
        the RA-TLS formats a certificate carries, its quotes' identity, the
        key binding and, with collateral, whether the quotes are genuine
  enclavectl measure BINARY [--sim-dir DIR]
        print a binary's simulated MRENCLAVE (SHA-256), and with --sim-dir the
        platform's MRSIGNER, in policy-file form
  enclavectl explore [--listen 127.0.0.1:8844]
        the attestation explorer and server status page, a local web app
  enclavectl help
        this text

Run a command with --help for its flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one enclavectl command and returns the exit status: 0 on
// success, 1 when the command ran and failed (e.g. a quote is not
// genuine), 2 for a usage error.
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if cli.IsHelp(cmd) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if cmd == "explore" { // no subcommands
		return explore(ctx, rest, stdout, stderr)
	}
	g, ok := groups[cmd]
	if !ok {
		fmt.Fprintf(stderr, "enclavectl: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if g.run == nil { // measure: no subcommands
		return measure(rest, stdout, stderr)
	}
	if len(rest) == 0 {
		fmt.Fprintf(stderr, "enclavectl %s: want a subcommand\n\n%s", cmd, g.usage)
		return 2
	}
	sub := rest[0]
	if cli.IsHelp(sub) {
		fmt.Fprint(stdout, g.usage)
		return 0
	}
	return g.run(ctx, sub, rest[1:], env, stdout, stderr)
}

// group is a command with subcommands: its usage (which lists them) and
// its dispatcher.
type group struct {
	usage string
	run   func(ctx context.Context, sub string, args []string, env func(string) string, stdout, stderr io.Writer) int
}

var groups map[string]group

func init() {
	groups = map[string]group{
		"sim":   {simUsage, simCmd},
		"quote": {quoteUsage, quoteCmd},
		"relay": {relayUsage, relayCmd},
		"kms":   {kmsUsage, kmsCmd},
		"ratls": {ratlsUsage, ratlsCmd},
		"custody": {custodyUsage, func(ctx context.Context, sub string, args []string, _ func(string) string, stdout, stderr io.Writer) int {
			return custodyCmd(ctx, sub, args, stdout, stderr)
		}},
		"backup":  {backupUsage, backupCmd},
		"measure": {},
	}
}

// unknownSub reports an unknown subcommand of a group, with the group's
// usage, and returns the usage-error exit status.
func unknownSub(stderr io.Writer, cmd, sub string) int {
	fmt.Fprintf(stderr, "enclavectl: unknown command \"%s %s\"\n\n%s", cmd, sub, groups[cmd].usage)
	return 2
}

const simUsage = `Usage: enclavectl sim COMMAND

The simulated SGX platform (NOT a real enclave: the host can read everything).

Commands:
  sim init DIR [--out-of-date] [--validity DURATION]
        create a simulated SGX platform in DIR
  sim quote --sim-dir DIR --report-data HEX [flags]
        print a simulated quote (hex) binding the given report data
  sim refresh DIR [--validity DURATION]
        re-sign the platform's collateral, current from now
  sim serve --sim-dir DIR [--listen ADDR]
        serve the platform's collateral at Intel PCS v4 paths, for --pccs

Run "enclavectl sim COMMAND --help" for a command's flags.
`

const quoteUsage = `Usage: enclavectl quote COMMAND

Commands:
  quote verify --quote FILE [--collateral DIR | --pccs URL] [flags]
        verify a quote (binary or hex) and print the verdict as JSON

Run "enclavectl quote verify --help" for its flags.
`

func simCmd(ctx context.Context, sub string, args []string, _ func(string) string, stdout, stderr io.Writer) int {
	switch sub {
	case "init":
		return simInit(args, stdout, stderr)
	case "quote":
		return simQuote(args, stdout, stderr)
	case "refresh":
		return simRefresh(args, stdout, stderr)
	case "serve":
		return simServe(ctx, args, stdout, stderr)
	}
	return unknownSub(stderr, "sim", sub)
}

func quoteCmd(ctx context.Context, sub string, args []string, _ func(string) string, stdout, stderr io.Writer) int {
	if sub == "verify" {
		return quoteVerify(ctx, args, stdout, stderr)
	}
	return unknownSub(stderr, "quote", sub)
}
