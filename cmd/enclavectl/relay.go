package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/relay"
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

const relayUsage = `Usage: enclavectl relay COMMAND [flags]

The relay calls from a shell: connect, attest (enclavectl attests itself to
the relay too, so outside --simulation it runs under gramine-sgx), register
as --id, act.

Commands:
  relay register --id ID [flags]
  relay send --id ID --to ID MESSAGE... [flags]
  relay poll --id ID [--all] [flags]
  relay receive --id ID [--follow] [--count N] [flags]

Every command takes --addr HOST:PORT (default 127.0.0.1:12345), --policy
FILE (which relay to trust, SGX), --pccs URL, --simulation [--sim-dir DIR],
--timeout DURATION. Run "enclavectl relay COMMAND --help" for the flags.
`

// relayHint says what to do about an error of a relay command.
func relayHint(err error, f relayFlags) string {
	var ne *client.NackError
	if errors.As(err, &ne) {
		switch ne.Reason { // the NACK texts docs/PROTOCOL.md lists
		case relay.ReasonIDInUse.Text():
			return "another live session holds this id: choose another --id, or wait until that session ends"
		case relay.ReasonIDBound.Text():
			return "the relay's policy binds this id to other enclaves: register an id this enclave may use"
		case relay.ReasonRecipientNotFound.Text():
			return "the recipient never registered at this relay: check --to, or have it register first (enclavectl relay register --id ID)"
		case relay.ReasonMailboxFull.Text(), relay.ReasonRelayFull.Text():
			return "the recipient must poll before more can be sent: try again later"
		}
		return ""
	}
	switch {
	case errors.Is(err, policyfile.ErrNoPolicy):
		return "under SGX, --policy FILE says which relay enclaves to trust (docs/DEPLOY.md, step 5); for a simulated relay pass --simulation"
	case errors.Is(err, atls.ErrRefused) && *f.simulation:
		return "the relay refused this client's attestation: --sim-dir must be the simulated platform the relay runs on (this client quotes on it too; relayd --simulation uses .sim in its working directory)"
	case errors.Is(err, atls.ErrRefused):
		return "the relay refused this client's attestation: the relay's --policy must accept this enclave"
	case errors.Is(err, atls.ErrPeer), errors.Is(err, attest.ErrNotGenuine), errors.Is(err, attest.ErrPolicy):
		if *f.simulation {
			return "the relay's attestation did not pass: --sim-dir must be the simulated platform the relay runs on (relayd --simulation uses .sim in its working directory)"
		}
		return "the relay's attestation did not pass: --policy must name the relay's MRENCLAVE or MRSIGNER, and the collateral (--pccs) must be current; a simulated relay needs --simulation"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing is listening at %s: start relayd, or give its address with --addr HOST:PORT", *f.addr)
	}
	return ""
}

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
		if *rf.id == "" {
			return usageErr(stderr, fs, "--id is required: the client id to register as")
		}
		c, err := rf.connect(ctx)
		if err != nil {
			return fail(stderr, "relay register", err, relayHint(err, rf))
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
		if *rf.id == "" {
			return usageErr(stderr, fs, "--id is required: the client id to register as")
		}
		c, err := rf.connect(ctx)
		if err != nil {
			return fail(stderr, "relay send", err, relayHint(err, rf))
		}
		defer c.Close()
		if err := c.Send(*to, []byte(strings.Join(pos, " "))); err != nil {
			return fail(stderr, "relay send", err, relayHint(err, rf))
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
		if *rf.id == "" {
			return usageErr(stderr, fs, "--id is required: the client id to register as")
		}
		c, err := rf.connect(ctx)
		if err != nil {
			return fail(stderr, "relay poll", err, relayHint(err, rf))
		}
		defer c.Close()
		for n := 0; ; n++ {
			from, data, ok, err := c.Poll()
			if err != nil {
				return fail(stderr, "relay poll", err, relayHint(err, rf))
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
		fs := newFlagsHelpOut("relay receive", "relay receive --id ID [--follow] [--count N] [flags]", args, stdout, stderr)
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
	return unknownSub(stderr, "relay", sub)
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
