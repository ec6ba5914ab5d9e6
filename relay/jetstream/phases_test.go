package jetstream_test

import (
	"context"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/relay"
)

// BenchmarkMailboxPhases times the steps of one message through one node's
// Mailboxes on the three-node JetStream cluster (in this process, no
// relay session, no TLS), beside a raw JetStream publish of the same
// size: Push (seal and publish, until JetStream's acknowledgement), Take
// (until the mailbox's prefetch has the message), Ack (the record
// deleted on a quorum). Run: go test ./relay/jetstream -run - -bench MailboxPhases -benchtime 1000x
func BenchmarkMailboxPhases(b *testing.B) {
	tc := startCluster(b, 1, 10*time.Second)
	n := tc.nodes[0]
	mb := n.be.Mailboxes()
	if err := mb.Create("phase-rx"); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	js, _ := natsjs.New(n.nc)
	var pub, push, take, ack time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := js.Publish(ctx, "se.relay.m.raw", []byte("hello")); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := mb.Push("phase-rx", relay.Message{From: "tx", Data: []byte("hello")}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		var d relay.Delivery
		for {
			var ok bool
			var err error
			d, ok, err = mb.Take("phase-rx")
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				break
			}
		}
		t3 := time.Now()
		if _, err := mb.Ack("phase-rx", d.Seq); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		pub += t1.Sub(t0)
		push += t2.Sub(t1)
		take += t3.Sub(t2)
		ack += t4.Sub(t3)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(per(pub), "raw-publish-µs")
	b.ReportMetric(per(push), "push-µs")
	b.ReportMetric(per(take), "take-µs")
	b.ReportMetric(per(ack), "ack-µs")
}
