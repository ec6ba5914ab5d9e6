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

// config is the client Config the flags describe.
func (f relayFlags) config() (client.Config, error) {
	if *f.id == "" {
		return client.Config{}, errors.New("--id is required")
	}
	simDir := *f.simDir
	if *f.simulation && simDir == "" {
		simDir = ".sim"
	}
	be, err := backend.Open(backend.Options{Simulation: *f.simulation, SimDir: simDir, SimISVProdID: 2, SimISVSVN: 1, PCCS: *f.pccs})
	if err != nil {
		return client.Config{}, err
	}
	policy, err := policyfile.PeerPolicy(*f.policy, be.DefaultPolicy)
	if err != nil {
		return client.Config{}, err
	}
	return client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: policy, Timeout: *f.timeout}, nil
}

// connect dials the relay and registers --id.
func (f relayFlags) connect(ctx context.Context) (*client.Conn, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(ctx, *f.addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Register(*f.id); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func relayCmd(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	switch sub {
	case "register":
		fs := newFlags("relay register", "relay register --id ID [flags]", stderr)
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
		fs := newFlags("relay send", "relay send --id ID --to ID MESSAGE... [flags]", stderr)
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
		fs := newFlags("relay poll", "relay poll --id ID [--all] [flags]", stderr)
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

	case "receive":
		fs := newFlags("relay receive", "relay receive --id ID [--follow] [--count N] [flags]", stderr)
		rf := addRelayFlags(fs)
		follow := fs.Bool("follow", false, "print messages as they arrive (pushed by the relay) until interrupted, reconnecting if the connection fails")
		count := fs.Int("count", 0, "with --follow, exit after N messages (0: no limit)")
		if pos, err := parseInterspersed(fs, args); err != nil {
			return flagStatus(err)
		} else if len(pos) != 0 {
			return usageErr(stderr, fs, "unexpected argument %q", pos[0])
		}
		if *count < 0 || (*count > 0 && !*follow) {
			return usageErr(stderr, fs, "--count must be positive and needs --follow")
		}
		return receive(ctx, rf, *follow, *count, stdout, stderr)
	}
	fmt.Fprintf(stderr, "enclavectl: unknown command \"relay %s\"\n\n%s", sub, usage)
	return 2
}

// receive waits for one message (up to --timeout), or with follow prints
// every message as it arrives. Each is acknowledged once printed: the
// relay keeps it until then, and delivers it again if enclavectl dies
// first.
func receive(ctx context.Context, rf relayFlags, follow bool, count int, stdout, stderr io.Writer) int {
	cfg, err := rf.config()
	if err != nil {
		return fail(stderr, "relay receive", err, "")
	}
	cctx, cancel := context.WithTimeout(ctx, *rf.timeout)
	c, err := client.Connect(cctx, cfg, client.Options{Addrs: []string{*rf.addr}, ID: *rf.id, Receive: true})
	cancel()
	if err != nil {
		return fail(stderr, "relay receive", err, "")
	}
	defer c.Close()
	if !c.Extensions() {
		fmt.Fprintln(stderr, "enclavectl: relay receive: the relay has no push delivery; polling instead")
	}
	for n := 0; ; {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !follow {
			rctx, cancel = context.WithTimeout(ctx, *rf.timeout)
		}
		d, err := c.Receive(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0 // interrupted
			}
			if !follow && errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintln(stdout, "no data available")
				return 0
			}
			return fail(stderr, "relay receive", err, "")
		}
		fmt.Fprintf(stdout, "from %s: %s\n", d.From, d.Data)
		if err := c.Ack(ctx, d); err != nil {
			return fail(stderr, "relay receive", err, "the message was printed but not acknowledged: the relay will deliver it again")
		}
		if n++; !follow || (count > 0 && n >= count) {
			return 0
		}
	}
}
