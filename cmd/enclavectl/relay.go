package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/client"
)

// relayFlags are the flags every `enclavectl relay` command takes.
type relayFlags struct {
	addr       *string
	id         *string
	simulation *bool
	simDir     *string
	policy     *string
	pccs       *string
	timeout    *time.Duration
}

func addRelayFlags(fs *flag.FlagSet) relayFlags {
	return relayFlags{
		addr:       fs.String("addr", "127.0.0.1:12345", "relay address HOST:PORT"),
		id:         fs.String("id", "", "client id to register as (required)"),
		simulation: fs.Bool("simulation", false, "use the simulated SGX platform in --sim-dir (NOT a real enclave)"),
		simDir:     fs.String("sim-dir", "", "simulated platform directory, the relay's (default .sim, with --simulation)"),
		policy:     fs.String("policy", "", "TOML policy: which relay enclaves to accept (required under SGX)"),
		pccs:       fs.String("pccs", "", "PCCS or PCS v4 base URL (SGX; default Intel PCS)"),
		timeout:    fs.Duration("timeout", 15*time.Second, "deadline for connecting and for each request"),
	}
}

// connect dials the relay and registers --id.
func (f relayFlags) connect(ctx context.Context) (*client.Conn, error) {
	if *f.id == "" {
		return nil, errors.New("--id is required")
	}
	simDir := *f.simDir
	if *f.simulation && simDir == "" {
		simDir = ".sim"
	}
	be, err := backend.Open(backend.Options{Simulation: *f.simulation, SimDir: simDir, SimISVProdID: 2, SimISVSVN: 1, PCCS: *f.pccs})
	if err != nil {
		return nil, err
	}
	policy, err := policyfile.PeerPolicy(*f.policy, be.DefaultPolicy)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(ctx, *f.addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: policy, Timeout: *f.timeout})
	if err != nil {
		return nil, err
	}
	if err := c.Register(*f.id); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

const relayUsage = `Usage: enclavectl relay COMMAND [flags]

The relay calls from a shell: connect, attest (enclavectl attests itself to
the relay too, so outside --simulation it runs under gramine-sgx), register
as --id, act.

Commands:
  relay register --id ID [flags]
  relay send --id ID --to ID MESSAGE... [flags]
  relay poll --id ID [--all] [flags]

Every command takes --addr HOST:PORT (default 127.0.0.1:12345), --policy
FILE (which relay to trust, SGX), --pccs URL, --simulation [--sim-dir DIR],
--timeout DURATION. Run "enclavectl relay COMMAND --help" for the flags.
`

func relayCmd(ctx context.Context, sub string, args []string, _ func(string) string, stdout, stderr io.Writer) int {
	switch sub {
	case "register":
		fs := newFlagsHelpOut("relay register", "relay register --id ID [flags]", args, stdout, stderr)
		rf := addRelayFlags(fs)
		if pos, err := parseInterspersed(fs, args); err != nil {
			return flagStatus(err)
		} else if len(pos) != 0 {
			return usageErr(stderr, fs, "unexpected argument %q", pos[0])
		}
		c, err := rf.connect(ctx)
		if err != nil {
			return fail(stderr, "relay register", err, "")
		}
		defer c.Close()
		fmt.Fprintf(stdout, "registered %s at %s (relay MRENCLAVE %s, TCB %s)\n", *rf.id, *rf.addr, c.ServerReport().MREnclave, c.ServerReport().TCBStatus)
		return 0

	case "send":
		fs := newFlagsHelpOut("relay send", "relay send --id ID --to ID MESSAGE... [flags]", args, stdout, stderr)
		rf := addRelayFlags(fs)
		to := fs.String("to", "", "recipient client id (required)")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return flagStatus(err)
		}
		if *to == "" || len(pos) == 0 {
			return usageErr(stderr, fs, "--to and a MESSAGE are required")
		}
		c, err := rf.connect(ctx)
		if err != nil {
			return fail(stderr, "relay send", err, "")
		}
		defer c.Close()
		if err := c.Send(*to, []byte(strings.Join(pos, " "))); err != nil {
			return fail(stderr, "relay send", err, "")
		}
		fmt.Fprintf(stdout, "sent to %s\n", *to)
		return 0

	case "poll":
		fs := newFlagsHelpOut("relay poll", "relay poll --id ID [--all] [flags]", args, stdout, stderr)
		rf := addRelayFlags(fs)
		all := fs.Bool("all", false, "poll until the mailbox is empty")
		if pos, err := parseInterspersed(fs, args); err != nil {
			return flagStatus(err)
		} else if len(pos) != 0 {
			return usageErr(stderr, fs, "unexpected argument %q", pos[0])
		}
		c, err := rf.connect(ctx)
		if err != nil {
			return fail(stderr, "relay poll", err, "")
		}
		defer c.Close()
		for n := 0; ; n++ {
			from, data, ok, err := c.Poll()
			if err != nil {
				return fail(stderr, "relay poll", err, "")
			}
			if !ok {
				if n == 0 {
					fmt.Fprintln(stdout, "no data available")
				}
				return 0
			}
			fmt.Fprintf(stdout, "from %s: %s\n", from, data)
			if !*all {
				return 0
			}
		}
	}
	return unknownSub(stderr, "relay", sub)
}
