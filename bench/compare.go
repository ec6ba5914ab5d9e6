package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

const (
	modeLockStep  = "lock-step"
	modePipelined = "pipelined"
	modeDurable   = "durable"
	batchSize     = 64
)

type pair interface {
	send(ctx context.Context, payloads [][]byte) (int, error)
	receive(ctx context.Context, max int) ([][]byte, error)
	close()
}

// A system under test makes receivers and senders on a topic.
type system interface {
	name() string
	receiver(ctx context.Context, mode, topic string) (pair, error)
	sender(ctx context.Context, mode, topic string) (pair, error)
	cpu(mode string) (time.Duration, error)
}

// ---- the relay ----

type relaySystem struct {
	mem, dur *relayProc
	be       *backend.Backend
	n        atomic.Int64
}

func (r *relaySystem) name() string { return "relay" }

func (r *relaySystem) proc(mode string) *relayProc {
	if mode == modeDurable {
		return r.dur
	}
	return r.mem
}

func (r *relaySystem) cpu(mode string) (time.Duration, error) { return r.proc(mode).cpu() }

func (r *relaySystem) conn(ctx context.Context, mode, id string) (*client.Conn, error) {
	c, err := client.Dial(ctx, r.proc(mode).addr, client.Config{Attester: r.be.Attester, Verifier: r.be.Verifier, Policy: r.be.DefaultPolicy})
	if err != nil {
		return nil, err
	}
	if err := c.Register(id); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

type relayPair struct {
	c    *client.Conn
	to   string
	mode string
}

func (r *relaySystem) receiver(ctx context.Context, mode, topic string) (pair, error) {
	if mode == modePush {
		c, err := r.client(ctx, mode, topic, true)
		if err != nil {
			return nil, err
		}
		return &relayPushPair{c: c}, nil
	}
	c, err := r.conn(ctx, mode, topic)
	return &relayPair{c: c, mode: mode}, err
}

func (r *relaySystem) sender(ctx context.Context, mode, topic string) (pair, error) {
	c, err := r.conn(ctx, mode, fmt.Sprintf("sender-%d", r.n.Add(1)))
	return &relayPair{c: c, to: topic, mode: mode}, err
}

func (p *relayPair) send(_ context.Context, payloads [][]byte) (int, error) {
	var n int
	var err error
	if p.mode == modePipelined || p.mode == modePush {
		n, err = p.c.Pipeline(p.to, payloads)
	} else if err = p.c.Send(p.to, payloads[0]); err == nil {
		n = 1
	}
	var ne *client.NackError
	if errors.As(err, &ne) { // mailbox full: the receiver is behind
		time.Sleep(time.Millisecond)
		return n, nil
	}
	return n, err
}

func (p *relayPair) receive(_ context.Context, max int) ([][]byte, error) {
	// Pipelined and durable receivers ask for up to max messages per round
	// trip, as the JetStream consumer fetches up to 64.
	if p.mode == modePipelined || p.mode == modeDurable {
		msgs, err := p.c.PollMany(max)
		out := make([][]byte, len(msgs))
		for i, m := range msgs {
			out[i] = m.Data
		}
		return out, err
	}
	_, data, ok, err := p.c.Poll()
	if !ok || err != nil {
		return nil, err
	}
	return [][]byte{data}, nil
}

func (p *relayPair) close() { p.c.Close() }

// ---- NATS ----

type natsSystem struct{ s *natsServer }

func (n *natsSystem) name() string                      { return "nats" }
func (n *natsSystem) cpu(string) (time.Duration, error) { return n.s.cpu() }
func (n *natsSystem) receiver(ctx context.Context, mode, topic string) (pair, error) {
	if mode == modePush {
		mode = modePipelined // core publish and a core subscription
	}
	return n.s.newPair(ctx, mode, topic)
}
func (n *natsSystem) sender(ctx context.Context, mode, topic string) (pair, error) {
	// The receiver's natsPair sends too; a sender only needs its own
	// connection on the same subject.
	if mode == modePush {
		mode = modePipelined
	}
	return n.s.newSender(ctx, mode, topic)
}

// ---- the runner ----

type cellResult struct {
	rate     float64
	cpuPer   time.Duration
	p50, p99 time.Duration
}

func runCell(ctx context.Context, sys system, mode string, size, senders, receivers int, d time.Duration, tag string) (cellResult, error) {
	var recvs, sends []pair
	defer func() {
		for _, p := range append(recvs, sends...) {
			p.close()
		}
	}()
	topics := make([]string, receivers)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench.%s.%d", tag, i)
		r, err := sys.receiver(ctx, mode, topics[i])
		if err != nil {
			return cellResult{}, fmt.Errorf("%s receiver: %w", sys.name(), err)
		}
		recvs = append(recvs, r)
	}
	for i := 0; i < senders; i++ {
		s, err := sys.sender(ctx, mode, topics[i%receivers])
		if err != nil {
			return cellResult{}, fmt.Errorf("%s sender: %w", sys.name(), err)
		}
		sends = append(sends, s)
	}
	var delivered atomic.Int64
	var stop atomic.Bool
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errc := make(chan error, senders+receivers)
	cpu0, err := sys.cpu(mode)
	if err != nil {
		return cellResult{}, err
	}
	start := time.Now()
	for _, s := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 1
			if mode == modePipelined || mode == modePush {
				n = batchSize
			}
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = make([]byte, size)
			}
			for !stop.Load() {
				for _, b := range batch {
					stamp(b)
				}
				if _, err := s.send(ctx, batch); err != nil && !stop.Load() {
					errc <- err
					return
				}
			}
		}()
	}
	for _, r := range recvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for !stop.Load() {
				msgs, err := r.receive(ctx, batchSize)
				if err != nil && !stop.Load() {
					errc <- err
					return
				}
				for _, m := range msgs {
					local = append(local, latencyOf(m))
				}
				delivered.Add(int64(len(msgs)))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	time.Sleep(d)
	n := delivered.Load()
	elapsed := time.Since(start)
	cpu1, _ := sys.cpu(mode)
	stop.Store(true)
	for _, p := range sends {
		p.close() // unblock senders waiting on a full mailbox or a reply
	}
	sends = nil
	wg.Wait()
	select {
	case err := <-errc:
		return cellResult{}, fmt.Errorf("%s %s: %w", sys.name(), mode, err)
	default:
	}
	if n == 0 {
		return cellResult{}, fmt.Errorf("%s %s: nothing delivered", sys.name(), mode)
	}
	// Drain what the senders left queued, uncounted, so that later cells
	// do not start against a relay already holding earlier cells' data.
	deadline := time.Now().Add(5 * time.Second)
	for _, r := range recvs {
		for time.Now().Before(deadline) {
			msgs, err := r.receive(ctx, batchSize)
			if err != nil || len(msgs) == 0 {
				break
			}
		}
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
	return cellResult{rate: float64(n) / elapsed.Seconds(), cpuPer: (cpu1 - cpu0) / time.Duration(n), p50: q(0.5), p99: q(0.99)}, nil
}

type compareOptions struct {
	duration   time.Duration
	reps       int
	pairs      []int
	payloads   []int
	modes      []string
	write, png string
	relayd     string
	idle       int // subscribed idle clients for the idle-CPU row (push mode)
}

type cellKey struct {
	mode               string
	size, senders, rcv int
}

func (k cellKey) String() string {
	if k.rcv == 1 && k.senders > 1 {
		return fmt.Sprintf("%s %s %d→1", k.mode, sizeName(k.size), k.senders)
	}
	return fmt.Sprintf("%s %s ×%d", k.mode, sizeName(k.size), k.senders)
}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func benchCompare(ctx context.Context, o compareOptions, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "se-bench-cmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ns, err := startNATS(ctx, tmp)
	if err != nil {
		return err
	}
	if ns == nil {
		fmt.Fprintln(out, "nats-server is not installed (Debian: apt-get install nats-server); the NATS column is skipped.")
	} else {
		defer ns.cmd.Process.Kill()
	}
	relays, stop, err := startSimRelays(ctx, o.relayd, tmp, true)
	defer stop()
	if err != nil {
		return err
	}
	systems := []system{&relaySystem{mem: relays.mem, dur: relays.dur, be: relays.be}}
	if ns != nil {
		systems = append(systems, &natsSystem{s: ns})
	}

	var cells []cellKey
	for _, mode := range o.modes {
		for _, size := range o.payloads {
			for _, p := range o.pairs {
				cells = append(cells, cellKey{mode, size, p, p})
			}
			cells = append(cells, cellKey{mode, size, 16, 1})
		}
	}
	results := map[cellKey]map[string][]cellResult{}
	for ci, cell := range cells {
		results[cell] = map[string][]cellResult{}
		for rep := 0; rep < o.reps; rep++ {
			order := slices.Clone(systems)
			if rep%2 == 1 {
				slices.Reverse(order)
			}
			for _, sys := range order {
				r, err := runCell(ctx, sys, cell.mode, cell.size, cell.senders, cell.rcv, o.duration, fmt.Sprintf("c%dr%d%s", ci, rep, sys.name()))
				if err != nil {
					return err
				}
				results[cell][sys.name()] = append(results[cell][sys.name()], r)
			}
		}
		fmt.Fprintf(os.Stderr, "bench: %d/%d %s done\n", ci+1, len(cells), cell)
	}

	var md strings.Builder
	fmt.Fprintf(&md, "Measured %s on %d CPUs, %s, %s; each cell %s, the two systems alternated %d times; medians, with the range of the relay/NATS ratio over the repetitions. Both over TLS 1.3 with ECDSA P-256 certificates on loopback; the load generator shares the machine. \"CPU/msg\" is the server process's user+system time per delivered message.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), natsVersion(ns), o.duration, o.reps)
	md.WriteString("| cell | relay msg/s | NATS msg/s | relay / NATS (range) | relay CPU/msg | NATS CPU/msg | relay p50 / p99 | NATS p50 / p99 |\n|---|---|---|---|---|---|---|---|\n")
	var labels []string
	var ratios plotter.Values
	for _, cell := range cells {
		r := median(results[cell]["relay"])
		row := fmt.Sprintf("| %s | %.0f |", cell, r.rate)
		if ns == nil {
			row += " – | – | " + fmt.Sprintf("%s | – | %s / %s | – |", us(r.cpuPer), ms(r.p50), ms(r.p99))
		} else {
			n := median(results[cell]["nats"])
			lo, hi := math.Inf(1), math.Inf(-1)
			for i := range results[cell]["relay"] {
				x := results[cell]["relay"][i].rate / results[cell]["nats"][i].rate
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			row += fmt.Sprintf(" %.0f | %.2f (%.2f–%.2f) | %s | %s | %s / %s | %s / %s |", n.rate, r.rate/n.rate, lo, hi,
				us(r.cpuPer), us(n.cpuPer), ms(r.p50), ms(r.p99), ms(n.p50), ms(n.p99))
			labels = append(labels, cell.String())
			ratios = append(ratios, r.rate/n.rate)
		}
		md.WriteString(row + "\n")
	}
	if slices.Contains(o.modes, modePush) && ns != nil {
		maxRate := 0.0
		if rs := results[cellKey{modePush, 64, 1, 1}]["relay"]; len(rs) > 0 {
			maxRate = median(rs).rate
		}
		extra, err := deliveryReport(ctx, systems, maxRate, o.duration, o.idle)
		if err != nil {
			return err
		}
		md.WriteString(extra)
	}
	md.WriteString("\nNATS counterparts: push = pipelined senders to a relay push subscription (client.Client, window 512, one ACK per batch taken, written without waiting for ACKED: AckAsync, as a JetStream consumer's Ack) against core publish to a core subscription; lock-step = request/reply (the receiver responds), pipelined = core publish with one flush per 64 messages, durable = JetStream file storage with synchronous PubAcks and a pull consumer fetching up to 64 and acking each message (the relay's durable receivers likewise send up to 64 POLLs per round trip; its senders wait for each SEND_ACK). nats-server 2.9 has no per-message fsync setting, so JetStream acknowledges before its data reaches the disk while the relay's SEND_ACK waits for fsync.\n")
	fmt.Fprint(out, md.String())
	if o.write != "" {
		if err := replaceSection(o.write, "relay-vs-nats", md.String()); err != nil {
			return err
		}
	}
	if o.png != "" && len(ratios) > 0 {
		if err := ratioChart(o.png, labels, ratios); err != nil {
			return err
		}
	}
	return nil
}

func natsVersion(ns *natsServer) string {
	if ns == nil {
		return "no nats-server"
	}
	return ns.version
}

func median(rs []cellResult) cellResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b cellResult) int { return int(a.rate - b.rate) })
	return s[len(s)/2]
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1e3) }
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Nanoseconds())/1e6) }

// replaceSection replaces the text between <!-- bench:NAME:start --> and
// <!-- bench:NAME:end --> in file, or appends the section.
func replaceSection(file, name, body string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	start, end := "<!-- bench:"+name+":start -->", "<!-- bench:"+name+":end -->"
	section := start + "\n" + body + end
	re := regexp.MustCompile("(?s)" + regexp.QuoteMeta(start) + ".*?" + regexp.QuoteMeta(end))
	var s string
	if re.Match(b) {
		s = re.ReplaceAllLiteralString(string(b), section)
	} else {
		s = string(b) + "\n" + section + "\n"
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

func ratioChart(file string, labels []string, ratios plotter.Values) error {
	p := plot.New()
	p.Title.Text = "relay / nats-server delivered messages per second (1.0 = parity)"
	p.Y.Label.Text = "ratio"
	bars, err := plotter.NewBarChart(ratios, vg.Points(10))
	if err != nil {
		return err
	}
	p.Add(bars)
	one, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1}, {X: float64(len(ratios)) - 0.5, Y: 1}})
	if err != nil {
		return err
	}
	p.Add(one)
	p.NominalX(labels...)
	p.X.Tick.Label.Rotation = math.Pi / 2
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	return p.Save(vg.Length(14+0.55*float64(len(labels)))*vg.Centimeter, 14*vg.Centimeter, file)
}
