package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/relay/jetstream"
	"github.com/sharedenclave/sharedenclave/relay/relaytest"
	"github.com/sharedenclave/sharedenclave/wire"
)

// keyBytes is the raw cluster key of the tests, known so that the store
// scan can look for it.
var keyBytes = bytes.Repeat([]byte{0x5e, 0xa1, 0xed, 0x07}, 8)

func clusterKey(t testing.TB) *custody.DataKey {
	dk, err := custody.NewDataKey(bytes.NewReader(keyBytes))
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// node is one in-process relay server on its own JetStream backend and
// its own NATS connection (to all servers, its own first).
type node struct {
	nc    *nats.Conn
	be    *jetstream.Backend
	relay *relaytest.Relay
	dead  atomic.Bool
}

// kill makes the node vanish the way kill -9 would for the others: its
// NATS connection is cut first (no lease released, none renewed), then
// every client connection is closed without an answer.
func (n *node) kill() {
	n.dead.Store(true)
	n.nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.relay.Server.Shutdown(ctx)
	n.be.Close()
}

type testCluster struct {
	nats  *natstest.Cluster
	sim   string
	nodes []*node
}

func startCluster(t testing.TB, relays int, lease time.Duration) *testCluster {
	t.Helper()
	tc := &testCluster{nats: natstest.Start(t, 3), sim: filepath.Join(t.TempDir(), "sim")}
	urls := tc.nats.URLs()
	for i := range relays {
		// Each node's own NATS server first, then the others.
		order := append([]string{urls[i%len(urls)]}, urls...)
		nc, err := nats.Connect(joinURLs(order), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		be, err := jetstream.Open(context.Background(), jetstream.Config{Conn: nc, Key: clusterKey(t), Lease: lease, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{nc: nc, be: be}
		n.relay = relaytest.Start(t, tc.sim, "127.0.0.1:0", func(c *relay.Config) {
			c.Mailboxes = be.Mailboxes()
			c.Holders = be.Holders()
		})
		t.Cleanup(func() {
			if !n.dead.Load() {
				n.relay.Stop()
				be.Close()
				nc.Close()
			}
		})
		tc.nodes = append(tc.nodes, n)
	}
	return tc
}

func joinURLs(u []string) string {
	s := ""
	for i, x := range u {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

func (tc *testCluster) addrs(idx ...int) []string {
	var a []string
	for _, i := range idx {
		a = append(a, tc.nodes[i].relay.Addr)
	}
	return a
}

func simClientConfig(t testing.TB, dir string) client.Config {
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy, Timeout: 5 * time.Second}
}

func connect(t testing.TB, tc *testCluster, o client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, simClientConfig(t, tc.sim), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCluster runs the checks that share one three-node JetStream cluster
// and three relay nodes.
func TestCluster(t *testing.T) {
	tc := startCluster(t, 3, 2*time.Second)

	t.Run("PushAcrossNodes", func(t *testing.T) {
		// The receiver registers through node B; the sender sends
		// through node A; the message is pushed at once.
		rx := connect(t, tc, client.Options{Addrs: tc.addrs(1), ID: "bob", Receive: true})
		tx := connect(t, tc, client.Options{Addrs: tc.addrs(0), ID: "alice"})
		const n = 50
		var total time.Duration
		for i := range n {
			start := time.Now()
			if err := tx.Send(context.Background(), "bob", fmt.Appendf(nil, "hello %d", i)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			d, err := rx.Receive(ctx)
			cancel()
			if err != nil {
				t.Fatalf("message %d not pushed within 3 s: %v", i, err)
			}
			total += time.Since(start)
			if d.From != "alice" || string(d.Data) != fmt.Sprintf("hello %d", i) {
				t.Fatalf("got %q from %q", d.Data, d.From)
			}
			if err := rx.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("send through node A → push on node B: %v mean over %d messages", total/n, n)
	})

	t.Run("NotifiedWithoutPrefetch", func(t *testing.T) {
		// With its prefetch off, a holder learns of a message stored
		// through another node only from that node's notification on the
		// mailbox's subject (or, if it were lost, the sweep two seconds
		// later): every message must arrive well before the sweep.
		rx := connect(t, tc, client.Options{Addrs: tc.addrs(2), ID: "carol", Receive: true})
		tx := connect(t, tc, client.Options{Addrs: tc.addrs(0), ID: "dave"})
		if !tc.nodes[2].be.Mailboxes().StopPrefetch("carol") {
			t.Fatal("carol's mailbox is not on node C")
		}
		var worst time.Duration
		for i := range 10 {
			start := time.Now()
			if err := tx.Send(context.Background(), "carol", fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			d, err := rx.Receive(ctx)
			cancel()
			if err != nil {
				t.Fatalf("message %d not delivered within 3 s: %v", i, err)
			}
			if string(d.Data) != fmt.Sprintf("m%d", i) {
				t.Fatalf("got %q, want m%d", d.Data, i)
			}
			worst = max(worst, time.Since(start))
			if err := rx.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
		if worst > time.Second {
			t.Fatalf("slowest delivery %v: the notification did not wake the holder (the sweep did)", worst)
		}
		t.Logf("without prefetch, slowest of 10 deliveries: %v", worst)
	})

	t.Run("PollSeesWhatWasAcked", func(t *testing.T) {
		// The seed protocol on one node: once SEND_ACK is back, the
		// recipient's next POLL returns the message, although the
		// mailbox's prefetch may not have received it yet.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg := simClientConfig(t, tc.sim)
		rx, err := client.Dial(ctx, tc.nodes[0].relay.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		tx, err := client.Dial(ctx, tc.nodes[0].relay.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		if err := rx.Register("poller"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Register("poll-sender"); err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			msg := fmt.Appendf(nil, "m%d", i)
			if err := tx.Send("poller", msg); err != nil {
				t.Fatal(err)
			}
			from, data, ok, err := rx.Poll()
			if err != nil || !ok || from != "poll-sender" || !bytes.Equal(data, msg) {
				t.Fatalf("round %d: POLL after SEND_ACK: %q %q %v %v", i, from, data, ok, err)
			}
		}
	})

	t.Run("SendToUnknownRefusedEverywhere", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, tc.nodes[2].relay.Addr, simClientConfig(t, tc.sim))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Register("carol"); err != nil {
			t.Fatal(err)
		}
		if err := c.Send("nobody-registered-this", []byte("x")); !errors.Is(err, client.ErrNack) {
			t.Fatalf("send to an id never registered: %v, want a NACK", err)
		}
	})

	t.Run("RegisterRaceOneWinner", func(t *testing.T) {
		// The same id registered through two nodes at once: exactly one
		// ACK, every round.
		cfg := simClientConfig(t, tc.sim)
		const rounds = 25
		for r := range rounds {
			id := fmt.Sprintf("race-%d", r)
			var conns [2]*client.Conn
			for i := range conns {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := client.Dial(ctx, tc.nodes[i].relay.Addr, cfg)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				conns[i] = c
			}
			var errs [2]error
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = conns[i].Register(id)
				}()
			}
			close(start)
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, client.ErrNack):
					t.Fatalf("round %d: %v", r, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d registrations of %q accepted, want exactly 1 (%v)", r, wins, id, errs)
			}
			for _, c := range conns {
				c.Close()
			}
		}
	})

	t.Run("HoldRaceOneWinner", func(t *testing.T) {
		// The registry alone, harder: three nodes claim the same id at
		// once, many rounds.
		const rounds = 200
		for r := range rounds {
			id := fmt.Sprintf("hold-%d", r)
			var wins atomic.Int32
			var releases [3]func()
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					rel, err := tc.nodes[i].be.Holders().Hold(id, func() {})
					switch {
					case err == nil:
						wins.Add(1)
						releases[i] = rel
					case !errors.Is(err, relay.ErrHeld):
						t.Errorf("round %d node %d: %v", r, i, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if w := wins.Load(); w != 1 {
				t.Fatalf("round %d: %d nodes hold %q, want exactly 1", r, w, id)
			}
			for _, rel := range releases {
				if rel != nil {
					rel()
				}
			}
		}
	})

	t.Run("ReleasedIDMovesToAnotherNode", func(t *testing.T) {
		a := connect(t, tc, client.Options{Addrs: tc.addrs(0), ID: "mover", Receive: true})
		a.Close()
		// Registered through another node once the first let go.
		connect(t, tc, client.Options{Addrs: tc.addrs(2), ID: "mover", Receive: true})
	})

	t.Run("ReplayedRecordDropped", func(t *testing.T) {
		// A JetStream operator copies a delivered, acknowledged record back
		// into the stream: the holder sees its sequence again and drops it.
		cfg := simClientConfig(t, tc.sim)
		dial := func(i int, id string) *client.Conn {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, tc.nodes[i].relay.Addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Hello(wire.FeatureDelivery | wire.FeatureMsgID); err != nil {
				t.Fatal(err)
			}
			if err := c.Register(id); err != nil {
				t.Fatal(err)
			}
			return c
		}
		rx := dial(1, "victim")
		defer rx.Close()
		tx := dial(0, "replayer")
		defer tx.Close()
		if err := tx.Send("victim", []byte("pay once")); err != nil {
			t.Fatal(err)
		}
		js, err := natsjs.New(tc.nodes[2].nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, jetstream.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		old, err := st.GetMsg(ctx, info.State.LastSeq)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := rx.Fetch(10, 3*time.Second)
		if err != nil || len(ds) != 1 || string(ds[0].Data) != "pay once" {
			t.Fatalf("first delivery: %v %v", ds, err)
		}
		if _, _, err := rx.Ack(ds[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, old.Subject, old.Data); err != nil {
			t.Fatal(err)
		}
		if err := tx.Send("victim", []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		ds, err = rx.Fetch(10, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if string(d.Data) == "pay once" {
				t.Fatal("the replayed record was delivered again")
			}
		}
		if len(ds) != 1 || string(ds[0].Data) != "fresh" {
			t.Fatalf("after the replay: %d deliveries, want only the fresh message", len(ds))
		}
	})

	t.Run("NoPlaintextInJetStreamFiles", func(t *testing.T) {
		const id = "plaintext-scan-recipient-7f3a"
		const sender = "plaintext-scan-sender-91c2"
		payload := []byte("PLAINTEXT-SCAN-PAYLOAD-5d1e0c9b")
		rx := connect(t, tc, client.Options{Addrs: tc.addrs(1), ID: id})
		_ = rx
		tx := connect(t, tc, client.Options{Addrs: tc.addrs(0), ID: sender})
		for range 20 {
			if err := tx.Send(context.Background(), id, payload); err != nil {
				t.Fatal(err)
			}
		}
		// The messages wait in the stream (rx does not receive); the
		// stores are flushed as JetStream does on its own.
		time.Sleep(500 * time.Millisecond)
		needles := map[string][]byte{"recipient id": []byte(id), "sender id": []byte(sender), "payload": payload, "cluster key": keyBytes}
		files, control := 0, 0
		for _, dir := range tc.nats.StoreDirs() {
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return nil
				}
				files++
				// A control: the stream's subjects are in its message
				// files, so the scan does read them.
				if bytes.Contains(b, []byte("se.relay.m.")) {
					control++
				}
				for what, nd := range needles {
					if bytes.Contains(b, nd) {
						t.Errorf("%s in the clear in %s", what, p)
					}
				}
				return nil
			})
		}
		if files == 0 || control == 0 {
			t.Fatalf("scanned %d JetStream files, %d with the stream's subjects: the scan did not reach the messages", files, control)
		}
		t.Logf("scanned %d JetStream files, %d holding messages", files, control)
	})
}

// TestLeaseFreesAfterNodeDies: a node that holds an id and dies (its NATS
// connection cut, nothing released) keeps it only for its lease: another
// node is refused until then and accepted after.
func TestLeaseFreesAfterNodeDies(t *testing.T) {
	const lease = 2 * time.Second
	tc := startCluster(t, 2, lease)
	lost := make(chan struct{})
	if _, err := tc.nodes[0].be.Holders().Hold("leased", func() { close(lost) }); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.nodes[1].be.Holders().Hold("leased", func() {}); !errors.Is(err, relay.ErrHeld) {
		t.Fatalf("second node's claim while the first holds it: %v, want ErrHeld", err)
	}
	died := time.Now()
	tc.nodes[0].kill()
	select {
	case <-lost:
	case <-time.After(lease):
		t.Fatal("the dead node's lease was not given up locally within the lease")
	}
	deadline := time.Now().Add(lease + 10*time.Second)
	for {
		_, err := tc.nodes[1].be.Holders().Hold("leased", func() {})
		if err == nil {
			break
		}
		if !errors.Is(err, relay.ErrHeld) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the id is still held %v after its holder died (lease %v)", time.Since(died), lease)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if since := time.Since(died); since < lease*8/10 {
		t.Fatalf("the id was freed %v after the holder died, before its lease of %v", since, lease)
	}
	t.Logf("freed %v after the holder died (lease %v)", time.Since(died), lease)
}

// load sends numbered messages from tx to rx while faults are injected,
// and checks that every acknowledged send is received once.
func load(t *testing.T, tx, rx *client.Client, to string, fault func()) {
	t.Helper()
	const total = 300
	var acked sync.Map
	var sentOK atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := tx.Send(ctx, to, fmt.Appendf(nil, "m%04d", i))
			cancel()
			if err == nil {
				acked.Store(fmt.Sprintf("m%04d", i), true)
				sentOK.Add(1)
			} else {
				t.Logf("send %d not acknowledged: %v", i, err)
			}
			if i == total/3 {
				fault()
			}
		}
	}()
	got := map[string]int{}
	allIn := func() bool {
		all := true
		acked.Range(func(k, _ any) bool {
			all = got[k.(string)] > 0
			return all
		})
		return all
	}
	giveUp := time.Now().Add(60 * time.Second)
	for time.Now().Before(giveUp) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d, err := rx.Receive(ctx)
		cancel()
		if err != nil {
			select {
			case <-done:
				if allIn() {
					giveUp = time.Now()
				}
			default:
			}
			continue
		}
		got[string(d.Data)]++
		if got[string(d.Data)] > 1 {
			t.Errorf("%s delivered %d times to the application", d.Data, got[string(d.Data)])
		}
		actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := rx.Ack(actx, d); err != nil {
			t.Logf("ack of %s: %v (it is redelivered; the client hides the repeat)", d.Data, err)
		}
		acancel()
	}
	<-done
	var missing []string
	acked.Range(func(k, _ any) bool {
		if got[k.(string)] == 0 {
			missing = append(missing, k.(string))
		}
		return true
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages never delivered: %v", len(missing), missing)
	}
	if sentOK.Load() < total*9/10 {
		t.Fatalf("only %d of %d sends acknowledged: the cluster did not keep serving", sentOK.Load(), total)
	}
	t.Logf("%d of %d sends acknowledged, all delivered once", sentOK.Load(), total)
}

// TestNATSNodeKilledUnderLoad: SIGKILL of one nats-server under load.
func TestNATSNodeKilledUnderLoad(t *testing.T) {
	tc := startCluster(t, 2, 3*time.Second)
	rx := connect(t, tc, client.Options{Addrs: tc.addrs(1), ID: "rx", Receive: true, Window: 16})
	tx := connect(t, tc, client.Options{Addrs: tc.addrs(0), ID: "tx"})
	load(t, tx, rx, "rx", func() {
		t.Log("killing nats-server n2 (SIGKILL)")
		tc.nats.Nodes[1].Kill()
	})
}

// TestRelayNodeKilledUnderLoad: the relay node of the receiver dies (its
// NATS connection cut, every client connection dropped unanswered, the
// in-process equivalent of kill -9); the receiver moves to another node
// once the lease frees its id; nothing acknowledged is lost, nothing is
// seen twice.
func TestRelayNodeKilledUnderLoad(t *testing.T) {
	tc := startCluster(t, 3, 2*time.Second)
	rx := connect(t, tc, client.Options{Addrs: tc.addrs(1, 2), ID: "rx", Receive: true, Window: 16, MaxBackoff: 300 * time.Millisecond})
	tx := connect(t, tc, client.Options{Addrs: tc.addrs(0, 2), ID: "tx"})
	load(t, tx, rx, "rx", func() {
		t.Log("killing relay node B")
		tc.nodes[1].kill()
	})
}
