package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sharedenclave/sharedenclave/client"
)

// modePush: senders pipeline SEND_DATA (64 per write), receivers are
// client.Client push subscriptions acknowledging each batch they take
// (AckAsync: the ACK is written and not waited for, as a JetStream
// consumer's Ack; the messages are still delivered until acknowledged).
// The NATS counterpart is the pipelined mode: core publish, one flush
// per 64, a core subscription.
const modePush = "push"

// ---- the relay's push receiver ----

type relayPushPair struct {
	c *client.Client
}

var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (r *relaySystem) client(ctx context.Context, mode, id string, receive bool) (*client.Client, error) {
	return client.Connect(ctx, client.Config{Attester: r.be.Attester, Verifier: r.be.Verifier, Policy: r.be.DefaultPolicy},
		client.Options{Addrs: []string{r.proc(mode).addr}, ID: id, Receive: receive, Window: 512})
}

// receive takes what is waiting (blocking up to 20 ms for the first) and
// acknowledges it all in one ACK, not waited for.
func (p *relayPushPair) receive(ctx context.Context, max int) ([][]byte, error) {
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	d, err := p.c.Receive(wctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, nil
		}
		return nil, err
	}
	ds := []*client.Delivery{d}
	for len(ds) < max {
		d, err := p.c.Receive(canceled)
		if err != nil {
			break
		}
		ds = append(ds, d)
	}
	out := make([][]byte, len(ds))
	for i, d := range ds {
		out[i] = d.Data
	}
	return out, p.c.AckAsync(ds...)
}

func (p *relayPushPair) send(context.Context, [][]byte) (int, error) {
	return 0, errors.New("push receiver does not send")
}
func (p *relayPushPair) close() { p.c.Close() }

// ---- open-loop latency ----

type latencyResult struct {
	offered             int
	delivered           int
	p50, p99, p999, max time.Duration
}

// openLoop sends rate messages per second for d, each stamped with the
// time it was scheduled (so a stalled sender does not hide latency), and
// measures when each arrives.
func openLoop(ctx context.Context, sys system, rate, size int, d time.Duration, tag string) (latencyResult, error) {
	mode := modePush
	topic := "ol." + tag
	r, err := sys.receiver(ctx, mode, topic)
	if err != nil {
		return latencyResult{}, err
	}
	defer r.close()
	s, err := sys.sender(ctx, mode, topic)
	if err != nil {
		return latencyResult{}, err
	}
	defer s.close()
	var sent atomic.Int64
	var lat []time.Duration
	done := make(chan error, 1)
	stopRecv := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopRecv:
				done <- nil
				return
			default:
			}
			msgs, err := r.receive(ctx, batchSize)
			if err != nil {
				done <- err
				return
			}
			for _, m := range msgs {
				lat = append(lat, latencyOf(m))
			}
		}
	}()
	start := time.Now()
	var n int
	for time.Since(start) < d {
		due := int(float64(rate)*time.Since(start).Seconds()) - n
		if due <= 0 {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for due > 0 {
			k := min(due, batchSize)
			batch := make([][]byte, k)
			for i := range batch {
				batch[i] = make([]byte, size)
				at := start.Add(time.Duration(float64(n+i) / float64(rate) * float64(time.Second)))
				binary.BigEndian.PutUint64(batch[i], uint64(at.UnixNano()))
			}
			if _, err := s.send(ctx, batch); err != nil {
				return latencyResult{}, err
			}
			n += k
			due -= k
		}
	}
	sent.Store(int64(n))
	time.Sleep(time.Second) // let the tail arrive
	close(stopRecv)
	if err := <-done; err != nil {
		return latencyResult{}, err
	}
	if len(lat) == 0 {
		return latencyResult{}, fmt.Errorf("%s: open loop delivered nothing", sys.name())
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
	return latencyResult{offered: rate, delivered: len(lat), p50: q(0.5), p99: q(0.99), p999: q(0.999), max: lat[len(lat)-1]}, nil
}

// ---- request/reply round trips ----

type rttResult struct {
	rate     float64
	p50, p99 time.Duration
}

// requestReply runs pairs of A→B→A round trips, lock-step, for d.
func requestReply(ctx context.Context, sys system, pairs int, d time.Duration, tag string) (rttResult, error) {
	type rt interface {
		roundTrip(ctx context.Context, b []byte) error
		close()
	}
	var rts []rt
	defer func() {
		for _, r := range rts {
			r.close()
		}
	}()
	for i := range pairs {
		var r rt
		var err error
		switch s := sys.(type) {
		case *relaySystem:
			r, err = s.newRoundTripper(ctx, fmt.Sprintf("rr-%s-%d", tag, i))
		case *natsSystem:
			r, err = s.s.newRoundTripper(fmt.Sprintf("rr.%s.%d", tag, i))
		}
		if err != nil {
			return rttResult{}, err
		}
		rts = append(rts, r)
	}
	var mu sync.Mutex
	var lat []time.Duration
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, pairs)
	start := time.Now()
	for _, r := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			b := make([]byte, 64)
			for !stop.Load() {
				t0 := time.Now()
				if err := r.roundTrip(ctx, b); err != nil {
					if !stop.Load() {
						errc <- err
					}
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	elapsed := time.Since(start)
	wg.Wait()
	select {
	case err := <-errc:
		return rttResult{}, err
	default:
	}
	if len(lat) == 0 {
		return rttResult{}, errors.New("no round trip completed")
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
	return rttResult{rate: float64(len(lat)) / elapsed.Seconds(), p50: q(0.5), p99: q(0.99)}, nil
}

// relayRT: A sends to B (SEND_ID), B's echo loop receives by push, sends
// the same bytes back to A and acknowledges; A receives by push and
// acknowledges. Every hop is what an application does with the client;
// the acknowledgements are not waited for (AckAsync).
type relayRT struct {
	a, b *client.Client
	bID  string
	stop chan struct{}
}

func (r *relaySystem) newRoundTripper(ctx context.Context, id string) (*relayRT, error) {
	a, err := r.client(ctx, "", id+"-a", true)
	if err != nil {
		return nil, err
	}
	b, err := r.client(ctx, "", id+"-b", true)
	if err != nil {
		a.Close()
		return nil, err
	}
	rt := &relayRT{a: a, b: b, bID: id + "-b", stop: make(chan struct{})}
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-rt.stop; cancel() }()
		for {
			d, err := b.Receive(ctx)
			if err != nil {
				return
			}
			if b.Send(ctx, d.From, d.Data) != nil {
				return
			}
			b.AckAsync(d)
		}
	}()
	return rt, nil
}

func (r *relayRT) roundTrip(ctx context.Context, p []byte) error {
	if err := r.a.Send(ctx, r.bID, p); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := r.a.Receive(tctx)
	if err != nil {
		return err
	}
	return r.a.AckAsync(d)
}

func (r *relayRT) close() { close(r.stop); r.a.Close(); r.b.Close() }

type natsRT struct {
	a, b    *nats.Conn
	subject string
}

func (s *natsServer) newRoundTripper(subject string) (*natsRT, error) {
	a, err := s.connect()
	if err != nil {
		return nil, err
	}
	b, err := s.connect()
	if err != nil {
		a.Close()
		return nil, err
	}
	if _, err := b.Subscribe(subject, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		return nil, err
	}
	if err := b.Flush(); err != nil {
		return nil, err
	}
	return &natsRT{a: a, b: b, subject: subject}, nil
}

func (n *natsRT) roundTrip(_ context.Context, p []byte) error {
	_, err := n.a.Request(n.subject, p, 5*time.Second)
	return err
}
func (n *natsRT) close() { n.a.Close(); n.b.Close() }

// ---- idle subscribers ----

// idleCPU connects n subscribed clients, lets them settle, and measures
// the server's CPU time per second over d with no traffic.
func idleCPU(ctx context.Context, sys system, n int, d time.Duration) (time.Duration, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var first error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var c func()
			var err error
			switch s := sys.(type) {
			case *relaySystem:
				var cl *client.Client
				if cl, err = s.client(ctx, "", fmt.Sprintf("idle-%d", i), true); err == nil {
					c = func() { cl.Close() }
				}
			case *natsSystem:
				var nc *nats.Conn
				if nc, err = s.s.connect(); err == nil {
					if _, err = nc.SubscribeSync(fmt.Sprintf("idle.%d", i)); err == nil {
						err = nc.Flush()
					}
					c = nc.Close
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			if c != nil {
				closers = append(closers, c)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	time.Sleep(time.Second)
	c0, err := sys.cpu("")
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	c1, err := sys.cpu("")
	if err != nil {
		return 0, err
	}
	return time.Duration(float64(c1-c0) / d.Seconds()), nil
}

// deliveryReport runs the open-loop, request/reply and idle measurements
// and returns their markdown. maxRate is the relay's push rate at 64 B
// (×1), for "about half of the maximum".
func deliveryReport(ctx context.Context, systems []system, maxRate float64, d time.Duration, idle int) (string, error) {
	var md strings.Builder
	low, high := 1000, max(2000, int(maxRate/2))
	md.WriteString("\n**Open-loop delivery latency**, 64 B, one sender at a fixed offered rate (messages stamped with their scheduled send time), relay push subscription (acking each batch, AckAsync) against a NATS core subscription:\n\n")
	md.WriteString("| offered msg/s | system | delivered | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n")
	for _, rate := range []int{low, high} {
		for _, sys := range systems {
			r, err := openLoop(ctx, sys, rate, 64, d, fmt.Sprintf("%s%d", sys.name(), rate))
			if err != nil {
				return "", fmt.Errorf("open loop %s at %d/s: %w", sys.name(), rate, err)
			}
			fmt.Fprintf(&md, "| %d | %s | %d | %s | %s | %s | %s |\n", rate, sys.name(), r.delivered, ms(r.p50), ms(r.p99), ms(r.p999), ms(r.max))
		}
	}
	md.WriteString("\n**Request/reply round trips** A→B→A, 64 B, lock-step per pair. Relay: A sends (SEND_ID), B receives by push, sends the bytes back and acknowledges, A receives by push and acknowledges — two relay hops with at-least-once delivery; each send waits for its SEND_ACK, the acknowledgements are not waited for (AckAsync, as a JetStream Ack). NATS: core request/reply (B responds):\n\n")
	md.WriteString("| pairs | system | round trips/s | p50 | p99 |\n|---|---|---|---|---|\n")
	for _, pairs := range []int{1, 16} {
		for _, sys := range systems {
			r, err := requestReply(ctx, sys, pairs, d, fmt.Sprintf("%s%d", sys.name(), pairs))
			if err != nil {
				return "", fmt.Errorf("request/reply %s ×%d: %w", sys.name(), pairs, err)
			}
			fmt.Fprintf(&md, "| %d | %s | %.0f | %s | %s |\n", pairs, sys.name(), r.rate, ms(r.p50), ms(r.p99))
		}
	}
	fmt.Fprintf(&md, "\n**%d subscribed idle clients** (relay: client.Client push subscriptions, each attested; NATS: one core subscription each), no traffic, server CPU over %s after 1 s to settle:\n\n", idle, d)
	md.WriteString("| system | server CPU per second |\n|---|---|\n")
	for _, sys := range systems {
		c, err := idleCPU(ctx, sys, idle, d)
		if err != nil {
			return "", fmt.Errorf("idle %s: %w", sys.name(), err)
		}
		fmt.Fprintf(&md, "| %s | %.1f ms/s |\n", sys.name(), float64(c.Microseconds())/1e3)
	}
	return md.String(), nil
}
