package client_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

// BenchmarkPush: one pipelining sender (seed SEND_DATA, 64 per write) to
// one push subscriber that acknowledges each batch it takes (AckAsync);
// client and relay in one process, over TLS on loopback. ns/op is per
// delivered message, both sides together.
func BenchmarkPush(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "sim")
	r := relaytest.Start(b, dir, "127.0.0.1:0", nil)
	cfg := simConfigB(b, dir)
	rx, err := client.Connect(context.Background(), cfg, client.Options{Addrs: []string{r.Addr}, ID: "rx", Receive: true, Window: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	tx, batch := pipeliner(b, cfg, r.Addr)
	b.ResetTimer()
	go func() {
		for sent := 0; sent < b.N; {
			n, err := tx.Pipeline("rx", batch[:min(len(batch), b.N-sent)])
			sent += n
			if err != nil {
				time.Sleep(time.Millisecond) // mailbox full
			}
		}
	}()
	receiveAll(b, rx)
}

// BenchmarkReceive: one push subscriber (window 512, acknowledging every
// 64 with AckAsync) drains a mailbox that already holds b.N messages of
// 64 bytes: the receiving path alone, relay session and client, in one
// process over TLS on loopback. ns/op is per message.
func BenchmarkReceive(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "sim")
	r := relaytest.Start(b, dir, "127.0.0.1:0", func(c *relay.Config) {
		c.Limits = relay.Limits{MaxMessages: 1 << 22, MaxBytes: 1 << 30}
	})
	cfg := simConfigB(b, dir)
	ctx := context.Background()
	rx, err := client.Connect(ctx, cfg, client.Options{Addrs: []string{r.Addr}, ID: "rx"})
	if err != nil {
		b.Fatal(err)
	}
	rx.Close() // the mailbox exists now
	tx, batch := pipeliner(b, cfg, r.Addr)
	for sent := 0; sent < b.N; {
		n, err := tx.Pipeline("rx", batch[:min(len(batch), b.N-sent)])
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	b.ResetTimer()
	rx, err = client.Connect(ctx, cfg, client.Options{Addrs: []string{r.Addr}, ID: "rx", Receive: true, Window: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	receiveAll(b, rx)
}

// pipeliner returns a seed connection registered as "tx" and a batch of
// 64 messages of 64 bytes for its Pipeline.
func pipeliner(b *testing.B, cfg client.Config, addr string) (*client.Conn, [][]byte) {
	tx, err := client.Dial(context.Background(), addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tx.Close() })
	if err := tx.Register("tx"); err != nil {
		b.Fatal(err)
	}
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = make([]byte, 64)
	}
	return tx, batch
}

// receiveAll receives b.N messages on rx, acknowledging every 64 with
// AckAsync.
func receiveAll(b *testing.B, rx *client.Client) {
	ctx := context.Background()
	var ds []*client.Delivery
	for got := 0; got < b.N; {
		d, err := rx.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
		got++
		if len(ds) == 64 || got == b.N {
			if err := rx.AckAsync(ds...); err != nil {
				b.Fatal(err)
			}
			ds = ds[:0]
		}
	}
}
