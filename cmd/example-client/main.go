// Command example-client is the seed's demonstrator: it connects to a
// relay, attests (and checks the relay's attestation), registers an id, and
// reads commands on standard input:
//
//	send ID MESSAGE   send MESSAGE to client ID
//	poll              fetch the oldest message waiting for us
//	quit              close the connection and exit
//
// With --follow it reads no commands: it prints each message as the relay
// pushes it ("from ID: MESSAGE"), acknowledging it once printed, until
// interrupted, reconnecting if the connection fails.
//
// Usage: example-client [--simulation --sim-dir DIR] [--policy FILE] [--follow] <server_ip> <server_port> [client_id]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/cmd/internal/cli"
	"golang.org/x/term"
)

// DefaultClientID is the id used when none is given, as in the seed.
const DefaultClientID = "default_client_id"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	args = cli.Args(args)
	fs := flag.NewFlagSet("example-client", flag.ContinueOnError)
	simulation := fs.Bool("simulation", false, "use the simulated SGX platform in --sim-dir (NOT a real enclave)")
	simDir := fs.String("sim-dir", "", "simulated platform directory, the relay's (default .sim, with --simulation)")
	policyPath := fs.String("policy", "", "TOML policy: which relay enclaves to accept (required under SGX)")
	pccs := fs.String("pccs", "", "PCCS or PCS v4 base URL for collateral (SGX; default Intel PCS)")
	timeout := fs.Duration("timeout", 15*time.Second, "deadline for connecting and for each request")
	follow := fs.Bool("follow", false, "print messages as they arrive (pushed by the relay) instead of reading commands")
	also := fs.String("also", "", "with --follow: more nodes of the same relay, HOST:PORT[,HOST:PORT…]; when the connection is lost the client\nmoves to the next one, attesting it afresh, and registers again")
	cli.SetUsage(fs, args, stdout, stderr, `Usage: example-client [flags] <server_ip> <server_port> [client_id]

Connects to a Shared Enclave relay, attests, registers client_id (default
"default_client_id"), then reads commands on standard input:
  send ID MESSAGE   send MESSAGE to client ID
  poll              fetch the oldest message waiting for this client
  quit              close the connection and exit
When standard input is a terminal it shows a "> " prompt.
With --follow it prints each message as it arrives instead, until interrupted;
with --also it moves to another node of a relay cluster when one goes away.

Flags:
`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	pos := fs.Args()
	if len(pos) < 2 || len(pos) > 3 {
		fmt.Fprintln(stderr, "example-client: want <server_ip> <server_port> [client_id]")
		fs.Usage()
		return 2
	}
	id := DefaultClientID
	if len(pos) == 3 {
		id = pos[2]
	}
	addrs := []string{net.JoinHostPort(pos[0], pos[1])}
	if *also != "" {
		if !*follow {
			fmt.Fprintln(stderr, "example-client: --also needs --follow: the interactive mode speaks the seed protocol over one connection")
			return 2
		}
		for _, a := range strings.Split(*also, ",") {
			host, port, err := net.SplitHostPort(strings.TrimSpace(a))
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				fmt.Fprintf(stderr, "example-client: --also %q: want HOST:PORT[,HOST:PORT…]\n", a)
				return 2
			}
			addrs = append(addrs, net.JoinHostPort(host, port))
		}
	}
	if *simulation && *simDir == "" {
		*simDir = ".sim"
	}
	be, err := backend.Open(backend.Options{Simulation: *simulation, SimDir: *simDir, SimISVProdID: 2, SimISVSVN: 1, PCCS: *pccs})
	if err != nil {
		fmt.Fprintf(stderr, "example-client: %v\n", err)
		return 1
	}
	policy, err := policyfile.PeerPolicy(*policyPath, be.DefaultPolicy)
	if err != nil {
		fmt.Fprintf(stderr, "example-client: %v\n", err)
		if errors.Is(err, policyfile.ErrNoPolicy) {
			return 2
		}
		return 1
	}
	if be.Simulated {
		fmt.Fprintln(stderr, "example-client: SIMULATION MODE: attestation uses a simulated platform, not a real enclave")
	}
	addr := addrs[0]
	if *follow {
		return followMode(ctx, addrs, id, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: policy, Timeout: *timeout}, stdout, stderr)
	}
	c, err := client.Dial(ctx, addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: policy, Timeout: *timeout})
	if err != nil {
		fmt.Fprintf(stderr, "example-client: connecting to %s: %v\n", addr, err)
		return 1
	}
	defer c.Close()
	sr := c.ServerReport()
	fmt.Fprintf(stdout, "connected to %s: relay enclave MRENCLAVE %s, TCB %s\n", addr, sr.MREnclave, sr.TCBStatus)
	if err := c.Register(id); err != nil {
		fmt.Fprintf(stderr, "example-client: registering %q: %v\n", id, err)
		return 1
	}
	fmt.Fprintf(stdout, "registered as %s\n", id)
	prompt := ""
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		prompt = "> "
		fmt.Fprintln(stdout, "commands: send ID MESSAGE | poll | quit")
	}
	return repl(c, stdin, stdout, prompt)
}

// repl runs the command loop, printing prompt (if not empty) before each
// command. It returns 0 on quit or end of input, 1 if the connection
// failed.
func repl(c *client.Conn, stdin io.Reader, stdout io.Writer, prompt string) int {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for {
		if prompt != "" {
			fmt.Fprint(stdout, prompt)
		}
		if !sc.Scan() {
			break
		}
		line := strings.TrimSpace(sc.Text())
		cmd, rest, _ := strings.Cut(line, " ")
		switch cmd {
		case "":
		case "quit", "exit":
			return 0
		case "poll":
			from, data, ok, err := c.Poll()
			switch {
			case err != nil:
				if !report(stdout, err) {
					return 1
				}
			case !ok:
				fmt.Fprintln(stdout, "no data available")
			default:
				fmt.Fprintf(stdout, "from %s: %s\n", from, data)
			}
		case "send":
			to, msg, ok := strings.Cut(strings.TrimSpace(rest), " ")
			if !ok || to == "" {
				fmt.Fprintln(stdout, "usage: send ID MESSAGE")
				continue
			}
			if err := c.Send(to, []byte(msg)); err != nil {
				if !report(stdout, err) {
					return 1
				}
				continue
			}
			fmt.Fprintf(stdout, "sent to %s\n", to)
		default:
			fmt.Fprintf(stdout, "unknown command %q (send ID MESSAGE | poll | quit)\n", cmd)
		}
	}
	return 0
}

// report prints a refusal and says whether the connection is still usable.
func report(w io.Writer, err error) bool {
	var ne *client.NackError
	if errors.As(err, &ne) {
		fmt.Fprintf(w, "refused: %s\n", ne.Reason)
		return true
	}
	var se *client.ServerError
	if errors.As(err, &se) {
		fmt.Fprintf(w, "server error: %s\n", se.Reason)
		return true
	}
	fmt.Fprintf(w, "connection failed: %v\n", err)
	return false
}

// followMode prints every message pushed to id until ctx is done; each is
// acknowledged once printed. When the connection is lost the client moves
// to the next of addrs (re-attesting) and registers again.
func followMode(ctx context.Context, addrs []string, id string, cfg client.Config, stdout, stderr io.Writer) int {
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	c, err := client.Connect(cctx, cfg, client.Options{Addrs: addrs, ID: id, Receive: true})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "example-client: connecting to %s as %q: %v\n", strings.Join(addrs, ", "), id, err)
		return 1
	}
	defer c.Close()
	mode := "messages are pushed as they arrive"
	if !c.Extensions() {
		mode = "the relay has no push delivery: polling"
	}
	fmt.Fprintf(stdout, "registered as %s; following (%s)\n", id, mode)
	err = c.Subscribe(ctx, func(d *client.Delivery) {
		fmt.Fprintf(stdout, "from %s: %s\n", d.From, d.Data)
		if err := c.Ack(ctx, d); err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "example-client: acknowledging: %v (the relay will deliver it again)\n", err)
		}
	})
	if ctx.Err() != nil {
		return 0
	}
	fmt.Fprintf(stderr, "example-client: %v\n", err)
	return 1
}
