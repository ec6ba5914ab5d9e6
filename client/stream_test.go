package client_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/relay/relaytest"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
)

func simConfig(t *testing.T, dir string) client.Config { return simConfigB(t, dir) }

func simConfigB(t testing.TB, dir string) client.Config {
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy, Timeout: 5 * time.Second}
}

func connect(t *testing.T, dir string, o client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, simConfig(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientConcurrentSendReceiveAck: four goroutines send through one
// Client while another Client receives by push and acknowledges; every
// message arrives once, and nothing is left on the relay.
func TestClientConcurrentSendReceiveAck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	r := relaytest.Start(t, dir, "127.0.0.1:0", nil)
	rx := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "rx", Receive: true, Window: 16})
	tx := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "tx"})
	if !rx.Extensions() {
		t.Fatal("the extension was not negotiated")
	}
	const senders, each = 4, 50
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := tx.Send(context.Background(), "rx", fmt.Appendf(nil, "%d-%d", g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(got) < senders*each {
		d, err := rx.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		if got[string(d.Data)] {
			t.Fatalf("%q received twice", d.Data)
		}
		got[string(d.Data)] = true
		if err := rx.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	if n, _ := r.Server.Totals(); n != 0 {
		t.Fatalf("%d messages left on the relay after every ack", n)
	}
}

// TestClientSubscribeCallbackAndSeedFallback: against a relay whose
// mailboxes offer neither acks nor message ids (so HELLO_ACK grants
// nothing), the Client falls back to POLL and Send without ids, and
// Subscribe still calls back with every message.
func TestClientSubscribeCallbackAndSeedFallback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	r := relaytest.Start(t, dir, "127.0.0.1:0", func(c *relay.Config) {
		c.Mailboxes = plainMailboxes{relay.NewMemoryMailboxes(relay.Limits{})}
	})
	rx := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "rx", Receive: true})
	tx := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "tx"})
	if rx.Extensions() {
		t.Fatal("extension reported against mailboxes without it")
	}
	for i := range 5 {
		if err := tx.Send(context.Background(), "rx", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err := rx.Subscribe(ctx, func(d *client.Delivery) {
		got = append(got, string(d.Data))
		rx.Ack(ctx, d)
		if len(got) == 5 {
			cancel()
		}
	})
	if len(got) != 5 || got[0] != "0" || got[4] != "4" {
		t.Fatalf("received %v (%v)", got, err)
	}
}

// plainMailboxes hides the optional interfaces of the mailboxes inside.
type plainMailboxes struct{ m *relay.MemoryMailboxes }

func (p plainMailboxes) Create(id string) error                     { return p.m.Create(id) }
func (p plainMailboxes) Push(id string, m relay.Message) error      { return p.m.Push(id, m) }
func (p plainMailboxes) Pop(id string) (relay.Message, bool, error) { return p.m.Pop(id) }

func durable(t *testing.T, dir string) (func(*relay.Config), func()) {
	root, err := seal.NewRoot(bytes.Repeat([]byte{7}, 16))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: dir, Root: root, Purpose: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	dm, err := relay.OpenDurableMailboxes(st, relay.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *relay.Config) { c.Mailboxes = dm }, func() { st.Close() }
}

// TestClientReconnectThroughRestart: a sender and a receiver keep going
// while the relay (with a data dir) is stopped and started again on the
// same address, twice. The application sees every message exactly once:
// sends cut off are retried with their message ids (the relay keeps the
// de-duplication window on disk), deliveries not acknowledged come back
// and the Client hides the ones the application has already seen.
func TestClientReconnectThroughRestart(t *testing.T) {
	sim := filepath.Join(t.TempDir(), "sim")
	data := t.TempDir()
	tweak, closeStore := durable(t, data)
	r := relaytest.Start(t, sim, "127.0.0.1:0", tweak)
	addr := r.Addr
	rx := connect(t, sim, client.Options{Addrs: []string{addr}, ID: "rx", Receive: true, Window: 8, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	tx := connect(t, sim, client.Options{Addrs: []string{addr}, ID: "tx", MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})

	const n = 300
	sendErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := range n {
			if err := tx.Send(ctx, "rx", []byte(fmt.Sprint(i))); err != nil {
				sendErr <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		sendErr <- nil
	}()
	restarts := 0
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(seen) < n {
		if (len(seen) == n/3 && restarts == 0) || (len(seen) == 2*n/3 && restarts == 1) {
			r.Stop()
			closeStore()
			tweak, closeStore = durable(t, data)
			r = relaytest.Start(t, sim, addr, tweak)
			restarts++
		}
		d, err := rx.Receive(ctx)
		if err != nil {
			var missing []int
			for i := range n {
				if seen[fmt.Sprint(i)] == 0 {
					missing = append(missing, i)
				}
			}
			m, _ := r.Server.Totals()
			t.Fatalf("after %d messages: %v; relay holds %d; missing %v; restarts %d", len(seen), err, m, missing, restarts)
		}
		seen[string(d.Data)]++
		if seen[string(d.Data)] > 1 {
			t.Fatalf("the application saw %q twice", d.Data)
		}
		if err := rx.Ack(ctx, d); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if seen[fmt.Sprint(i)] != 1 {
			t.Fatalf("message %d seen %d times", i, seen[fmt.Sprint(i)])
		}
	}
	// Nothing more comes: no duplicate is waiting either.
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if d, err := rx.Receive(short); err == nil {
		t.Fatalf("extra delivery %q", d.Data)
	}
	t.Cleanup(closeStore)
}

// TestDuplicateSendAcrossRestart: a send retried with the same message id
// after the relay (with a data dir) restarted is answered as a success
// and delivered once.
func TestDuplicateSendAcrossRestart(t *testing.T) {
	sim := filepath.Join(t.TempDir(), "sim")
	data := t.TempDir()
	tweak, closeStore := durable(t, data)
	r := relaytest.Start(t, sim, "127.0.0.1:0", tweak)
	addr := r.Addr
	opts := func(id string, rx bool) client.Options {
		return client.Options{Addrs: []string{addr}, ID: id, Receive: rx, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	}
	rx := connect(t, sim, opts("rx", true))
	rx.Close() // the mailbox exists; nobody is receiving
	tx := connect(t, sim, opts("tx", false))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tx.SendID(ctx, "rx", []byte("order-17"), []byte("pay 5")); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	closeStore()
	tweak, closeStore = durable(t, data)
	t.Cleanup(func() { closeStore() })
	relaytest.Start(t, sim, addr, tweak)
	if err := tx.SendID(ctx, "rx", []byte("order-17"), []byte("pay 5")); err != nil {
		t.Fatalf("retry after the restart: %v", err)
	}
	rx = connect(t, sim, opts("rx", true))
	d, err := rx.Receive(ctx)
	if err != nil || string(d.Data) != "pay 5" || string(d.MsgID) != "order-17" {
		t.Fatalf("%+v %v", d, err)
	}
	rx.Ack(ctx, d)
	short, c2 := context.WithTimeout(ctx, 700*time.Millisecond)
	defer c2()
	if d, err := rx.Receive(short); err == nil {
		t.Fatalf("the retried send was delivered too: %q", d.Data)
	}
}

// TestClientAckAsync: acknowledgements written without waiting remove
// the messages all the same (nothing left on the relay, nothing delivered
// again to the next session), and the answers nobody waits for do not
// confuse the answers to requests made meanwhile.
func TestClientAckAsync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	r := relaytest.Start(t, dir, "127.0.0.1:0", nil)
	rx := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "rx", Receive: true, Window: 32})
	tx := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "tx", Receive: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 100
	go func() {
		for i := range n {
			if err := tx.Send(ctx, "rx", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var batch []*client.Delivery
	for i := range n {
		d, err := rx.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
		if string(d.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, d.Data)
		}
		if batch = append(batch, d); len(batch) == 10 {
			if err := rx.AckAsync(batch...); err != nil {
				t.Fatal(err)
			}
			batch = nil
			// A request right behind the ACK gets its own answer.
			if err := rx.Send(ctx, "tx", []byte("reply")); err != nil {
				t.Fatalf("a send after AckAsync: %v", err)
			}
		}
	}
	for i := range n / 10 {
		d, err := tx.Receive(ctx)
		if err != nil || string(d.Data) != "reply" {
			t.Fatalf("reply %d: %q, %v", i, d.Data, err)
		}
		tx.Ack(ctx, d)
	}
	// An ACK no request follows goes out on its own.
	if err := tx.Send(ctx, "rx", []byte("last")); err != nil {
		t.Fatal(err)
	}
	last, err := rx.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rx.AckAsync(last); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, _ := r.Server.Totals()
		if m == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left on the relay after every AckAsync", m)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rx.Close()
	if err := rx.AckAsync(); err != client.ErrClosed {
		t.Fatalf("AckAsync on a closed Client: %v", err)
	}
	again := connect(t, dir, client.Options{Addrs: []string{r.Addr}, ID: "rx", Receive: true})
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if d, err := again.Receive(wctx); err == nil {
		t.Fatalf("%q delivered again after its AckAsync", d.Data)
	}
}
