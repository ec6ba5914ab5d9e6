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
        the relay calls from a shell: connect, attest, register as ID, act
  enclavectl kms key create|read|list|rotate, kms encrypt|decrypt NAME …,
        kms policy write NAME FILE, kms token create --policies NAMES
        the KMS calls over attested TLS (token from --token-file or
        $SHARED_ENCLAVE_TOKEN, never a flag); "enclavectl kms" lists them
  enclavectl ratls cert --out CERT.pem (--key KEY.pem | --key-out KEY.pem)
        [--format gramine|gramine-legacy|ego] [--simulation --sim-dir DIR]
        make an RA-TLS certificate for a key, as Gramine or EGo lay them out
  enclavectl ratls inspect CERT [--collateral DIR | --pccs URL] [--root PEM]
        the RA-TLS formats a certificate carries, its quotes' identity, the
        key binding and, with collateral, whether the quotes are genuine
  enclavectl measure BINARY [--sim-dir DIR]
        print a binary's simulated MRENCLAVE (SHA-256), and with --sim-dir the
        platform's MRSIGNER, in policy-file form
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
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch {
	case cmd == "help" || cmd == "--help" || cmd == "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case cmd == "sim" && sub == "init":
		return simInit(rest[1:], stdout, stderr)
	case cmd == "sim" && sub == "quote":
		return simQuote(rest[1:], stdout, stderr)
	case cmd == "sim" && sub == "refresh":
		return simRefresh(rest[1:], stdout, stderr)
	case cmd == "sim" && sub == "serve":
		return simServe(ctx, rest[1:], stdout, stderr)
	case cmd == "quote" && sub == "verify":
		return quoteVerify(ctx, rest[1:], stdout, stderr)
	case cmd == "relay" && sub != "":
		return relayCmd(ctx, sub, rest[1:], stdout, stderr)
	case cmd == "ratls":
		return ratlsCmd(ctx, sub, restAfter(rest), stdout, stderr)
	case cmd == "measure":
		return measure(rest, stdout, stderr)
	case cmd == "kms":
		return kmsCmd(ctx, rest, env, stdout, stderr)
	}
	fmt.Fprintf(stderr, "enclavectl: unknown command %q\n\n%s", joinArgs(args), usage)
	return 2
}

// restAfter drops the subcommand from rest.
func restAfter(rest []string) []string {
	if len(rest) == 0 {
		return nil
	}
	return rest[1:]
}

func joinArgs(args []string) string {
	if len(args) > 2 {
		args = args[:2]
	}
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
