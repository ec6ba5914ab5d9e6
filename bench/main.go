// Command bench is the side-by-side benchmark harness. It starts the
// servers itself on loopback, drives them, and prints a markdown table.
//
//	go run ./bench relay [--duration 3s] [--pairs 1,4,16] [--payloads 64,1024]
//	go run ./bench durable [--duration 3s] [--pairs 1,16,64]
//	go run ./bench kms [--duration 3s]
//	go run ./bench attest [--duration 3s]
//	go run ./bench compare [--duration 2s] [--reps 3] [--write docs/BENCHMARKS.md] [--png docs/relay-vs-nats.png]
//
// relay: builds relayd, runs it as a child process in simulation mode, and
// measures delivered messages per second and the relay's CPU time per
// delivered message (from /proc/PID/stat), lock-step (SEND→ACK, POLL→DATA)
// and pipelined (batches of frames per write).
//
// durable: two relayd children, memory-only and --data-dir, and the rate
// of acknowledged SENDs from many concurrent lock-step senders on each.
//
// kms: kmsd as a child; encrypt requests/s at 1 and 16 keep-alive HTTPS
// connections, batch items/s, and the raw AES-GCM rate in the same run.
//
// compare: relay against nats-server (Debian package nats-server; the
// column is skipped if it is absent), cell by cell, alternating the two
// systems, with delivered msg/s, server CPU per message and p50/p99
// latency; optionally written into a markdown file and a PNG chart.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(os.Stdout, usage)
		os.Exit(0)
	case "compare":
		fs := newFlagSet("compare")
		o := compareOptions{}
		fs.DurationVar(&o.duration, "duration", 2e9, "how long each cell runs")
		fs.IntVar(&o.reps, "reps", 3, "how many times the two systems are alternated per cell")
		pairs := fs.String("pairs", "1,4,16", "sender/receiver pairs per cell (a 16→1 fan-in cell is always added)")
		payloads := fs.String("payloads", "64,1024,16384", "payload sizes in bytes")
		modes := fs.String("modes", "lock-step,pipelined,durable,push", "modes to run (push adds the open-loop latency, request/reply and idle-subscriber rows)")
		fs.StringVar(&o.write, "write", "", "markdown file whose bench:relay-vs-nats section to replace (e.g. docs/BENCHMARKS.md)")
		fs.StringVar(&o.png, "png", "", "write a PNG chart of the relay/NATS ratios here")
		fs.StringVar(&o.relayd, "relayd", "", "relayd binary (default: go build ./cmd/relayd)")
		fs.IntVar(&o.idle, "idle", 1000, "subscribed idle clients for the idle-CPU row (with the push mode)")
		fs.Parse(os.Args[2:])
		var err error
		if o.pairs, err = ints(*pairs); err == nil {
			o.payloads, err = ints(*payloads)
		}
		o.modes = strings.Split(*modes, ",")
		for _, m := range o.modes {
			if m != modeLockStep && m != modePipelined && m != modeDurable && m != modePush {
				err = fmt.Errorf("unknown mode %q", m)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		if err := benchCompare(ctx, o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	case "attest":
		fs := newFlagSet("attest")
		d := fs.Duration("duration", 3e9, "how long each measurement runs")
		fs.Parse(os.Args[2:])
		if err := benchAttest(ctx, *d, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	case "relay", "durable", "kms":
		fs := newFlagSet(os.Args[1])
		o := relayOptions{}
		fs.DurationVar(&o.duration, "duration", 3e9, "how long each cell runs")
		pairs := fs.String("pairs", "1,4,16", "sender/receiver pairs per cell (durable: senders)")
		payloads := fs.String("payloads", "64,1024", "payload sizes in bytes")
		fs.IntVar(&o.batch, "batch", 64, "frames per write when pipelined")
		fs.StringVar(&o.relayd, "relayd", "", "relayd binary (default: go build ./cmd/relayd)")
		if os.Args[1] == "kms" {
			fs.StringVar(&o.vault, "vault", "", "kms: a vault binary; its dev server (TLS, file audit on) runs the same requests in the same run")
		}
		fs.Parse(os.Args[2:])
		var err error
		if o.pairs, err = ints(*pairs); err == nil {
			o.payloads, err = ints(*payloads)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		run := benchRelay
		switch os.Args[1] {
		case "durable":
			run = benchDurable
		case "kms":
			run = benchKMS
		}
		if err := run(ctx, o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown benchmark %q (want relay, durable, kms, attest or compare)\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

const usage = `Usage: go run ./bench BENCHMARK [flags]

Benchmarks (each starts its servers on loopback and prints a markdown table):
  relay     relayd in simulation: delivered msg/s and CPU per message
  durable   relayd memory-only and with --data-dir: acknowledged SENDs/s
  kms       kmsd: encrypt requests/s, batch items/s, raw AES-GCM beside
  attest    quote verification and attested handshakes
  compare   relay against nats-server, cell by cell (docs/BENCHMARKS.md)

Run "go run ./bench BENCHMARK --help" for its flags.
`

// newFlagSet returns the flags of a benchmark: --help prints them on
// standard output and exits 0; a mistake prints them on standard error
// and exits 2.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	for _, a := range os.Args[2:] {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(os.Stdout)
		}
	}
	return fs
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// buildBinary returns given if set, else builds ./cmd/name into dir.
func buildBinary(ctx context.Context, given, dir, name string) (string, error) {
	if given != "" {
		return given, nil
	}
	bin := filepath.Join(dir, name)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/"+name)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", name, err)
	}
	return bin, nil
}
