package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

// benchDurable measures acknowledged SEND_DATA per second with many
// concurrent lock-step senders, memory-only and durable (--data-dir,
// every ACK after fsync), side by side in the same run.
func benchDurable(ctx context.Context, o relayOptions, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "se-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	relays, stop, err := startSimRelays(ctx, o.relayd, tmp, true)
	defer stop()
	if err != nil {
		return err
	}
	mem, dur, be := relays.mem, relays.dur, relays.be
	fmt.Fprintf(out, "durable SEND benchmark: %d CPUs, %s, %s per cell, 64-byte messages, lock-step senders, TLS 1.3 over loopback\n\n", runtime.NumCPU(), runtime.Version(), o.duration)
	fmt.Fprintln(out, "| senders | memory-only SEND/s | durable SEND/s | durable / memory | relay CPU per durable SEND |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	for i, n := range o.pairs {
		rates := map[*relayProc]float64{}
		var cpuPer time.Duration
		for _, p := range []*relayProc{mem, dur} {
			rate, cpu, err := sendRate(ctx, p, be, n, o.duration, fmt.Sprint(i))
			if err != nil {
				return err
			}
			rates[p] = rate
			if p == dur {
				cpuPer = cpu
			}
		}
		fmt.Fprintf(out, "| %d | %.0f | %.0f | %.2f | %.1f µs |\n", n, rates[mem], rates[dur], rates[dur]/rates[mem], float64(cpuPer.Nanoseconds())/1e3)
	}
	return nil
}

func sendRate(ctx context.Context, p *relayProc, be *backend.Backend, senders int, d time.Duration, tag string) (float64, time.Duration, error) {
	conns := make([]*client.Conn, senders)
	for i := range conns {
		c, err := client.Dial(ctx, p.addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
		if err != nil {
			return 0, 0, err
		}
		defer c.Close()
		if err := c.Register(fmt.Sprintf("s%s-%d", tag, i)); err != nil {
			return 0, 0, err
		}
		conns[i] = c
	}
	payload := make([]byte, 64)
	var acked atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	cpu0, _ := p.cpu()
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			self := fmt.Sprintf("s%s-%d", tag, i)
			for !stop.Load() {
				err := c.Send(self, payload)
				var ne *client.NackError
				if errors.As(err, &ne) {
					// Full mailbox: drain it and go on.
					c.PollMany(256)
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				acked.Add(1)
			}
		}()
	}
	time.Sleep(d)
	n := acked.Load()
	elapsed := time.Since(start)
	cpu1, _ := p.cpu()
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, 0, err
	default:
	}
	if n == 0 {
		return 0, 0, errors.New("no SEND acknowledged")
	}
	return float64(n) / elapsed.Seconds(), (cpu1 - cpu0) / time.Duration(n), nil
}
