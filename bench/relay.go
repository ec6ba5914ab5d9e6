package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

type relayOptions struct {
	duration time.Duration
	pairs    []int
	payloads []int
	batch    int
	relayd   string
	vault    string // kms: a vault binary to measure beside kmsd
}

// relayProc is a relayd child process.
type relayProc struct {
	cmd  *exec.Cmd
	addr string
}

func startRelayd(ctx context.Context, bin, simDir string, extra ...string) (*relayProc, error) {
	args := append([]string{"--simulation", "--sim-dir", simDir, "--listen", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info", "--mailbox-messages", "100000", "--mailbox-bytes", "268435456"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, `"addr":"`); i >= 0 && strings.Contains(line, "relayd listening") {
			addr := line[i+len(`"addr":"`):]
			addr = addr[:strings.IndexByte(addr, '"')]
			go io.Copy(io.Discard, stderr)
			return &relayProc{cmd: cmd, addr: addr}, nil
		}
	}
	cmd.Process.Kill()
	return nil, errors.New("relayd exited before listening")
}

// cpu returns the process's user+system CPU time so far.
func (p *relayProc) cpu() (time.Duration, error) { return procCPU(p.cmd.Process.Pid) }

type cell struct {
	mode      string
	payload   int
	pairs     int
	delivered int64
	elapsed   time.Duration
	cpu       time.Duration
}

func benchRelay(ctx context.Context, o relayOptions, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "se-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	relays, stop, err := startSimRelays(ctx, o.relayd, tmp, false)
	defer stop()
	if err != nil {
		return err
	}
	p, be := relays.mem, relays.be
	dial := func() (*client.Conn, error) {
		return client.Dial(ctx, p.addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	}
	fmt.Fprintf(out, "relay benchmark: %d CPUs, %s, %s per cell, relayd in simulation mode, TLS 1.3 over loopback\n\n", runtime.NumCPU(), runtime.Version(), o.duration)
	fmt.Fprintln(out, "| mode | payload | pairs | delivered msg/s | relay CPU per msg |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	run := 0
	for _, mode := range []string{"lock-step", "pipelined"} {
		for _, size := range o.payloads {
			for _, pairs := range o.pairs {
				run++
				c, err := relayCell(ctx, dial, p, o, mode, size, pairs, run)
				if err != nil {
					return err
				}
				perMsg := "-"
				if c.delivered > 0 {
					perMsg = fmt.Sprintf("%.2f µs", float64(c.cpu.Nanoseconds())/float64(c.delivered)/1e3)
				}
				fmt.Fprintf(out, "| %s | %d B | %d | %.0f | %s |\n", mode, size, pairs, float64(c.delivered)/c.elapsed.Seconds(), perMsg)
			}
		}
	}
	return nil
}

func relayCell(ctx context.Context, dial func() (*client.Conn, error), p *relayProc, o relayOptions, mode string, size, pairs, run int) (cell, error) {
	type pair struct{ s, r *client.Conn }
	ps := make([]pair, pairs)
	for i := range ps {
		s, err := dial()
		if err != nil {
			return cell{}, err
		}
		r, err := dial()
		if err != nil {
			return cell{}, err
		}
		defer s.Close()
		defer r.Close()
		if err := s.Register(fmt.Sprintf("s%d-%d", run, i)); err != nil {
			return cell{}, err
		}
		if err := r.Register(fmt.Sprintf("r%d-%d", run, i)); err != nil {
			return cell{}, err
		}
		ps[i] = pair{s, r}
	}
	payload := make([]byte, size)
	var delivered atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 2*pairs)
	cpu0, err := p.cpu()
	if err != nil {
		return cell{}, err
	}
	start := time.Now()
	for i, pr := range ps {
		to := fmt.Sprintf("r%d-%d", run, i)
		wg.Add(2)
		go func() { // sender
			defer wg.Done()
			batch := make([][]byte, o.batch)
			for j := range batch {
				batch[j] = payload
			}
			for !stop.Load() {
				var err error
				if mode == "lock-step" {
					err = pr.s.Send(to, payload)
				} else {
					_, err = pr.s.Pipeline(to, batch)
				}
				var ne *client.NackError
				if errors.As(err, &ne) { // mailbox full: let the receiver catch up
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() { // receiver
			defer wg.Done()
			for !stop.Load() {
				if mode == "lock-step" {
					_, _, ok, err := pr.r.Poll()
					if err != nil {
						errc <- err
						return
					}
					if ok {
						delivered.Add(1)
					}
				} else {
					msgs, err := pr.r.PollMany(o.batch)
					if err != nil {
						errc <- err
						return
					}
					delivered.Add(int64(len(msgs)))
				}
			}
		}()
	}
	select {
	case <-time.After(o.duration):
	case <-ctx.Done():
	}
	n := delivered.Load()
	elapsed := time.Since(start)
	cpu1, _ := p.cpu()
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		return cell{}, err
	default:
	}
	return cell{mode: mode, payload: size, pairs: pairs, delivered: n, elapsed: elapsed, cpu: cpu1 - cpu0}, nil
}

// simRelays builds relayd (unless given), starts a memory-only relayd
// and, with durable, a second one with --data-dir, both on one simulated
// platform in tmp, and opens that platform for the clients. stop kills
// whatever was started.
type simRelays struct {
	mem, dur *relayProc
	be       *backend.Backend
}

func startSimRelays(ctx context.Context, given, tmp string, durable bool) (*simRelays, func(), error) {
	var procs []*relayProc
	stop := func() {
		for _, p := range procs {
			p.cmd.Process.Kill()
		}
	}
	bin, err := buildBinary(ctx, given, tmp, "relayd")
	if err != nil {
		return nil, stop, err
	}
	simDir := filepath.Join(tmp, "sim")
	r := &simRelays{}
	if r.mem, err = startRelayd(ctx, bin, simDir); err != nil {
		return nil, stop, err
	}
	procs = append(procs, r.mem)
	if durable {
		if r.dur, err = startRelayd(ctx, bin, simDir, "--data-dir", filepath.Join(tmp, "relay-data")); err != nil {
			return nil, stop, err
		}
		procs = append(procs, r.dur)
	}
	r.be, err = backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	return r, stop, err
}
