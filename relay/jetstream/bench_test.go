package jetstream_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/client"
)

// The benchmarks compare one message's way through a three-node relay
// cluster (client on node A sends and waits for SEND_ACK; a client on
// node B receives it by push and acknowledges it) with the same through
// JetStream used directly (R3 file stream, a synchronous PubAck through
// server 1, a consumer on server 2 acking each message and waiting for the
// server to confirm the ack, as the relay client waits for ACKED). One sender, one
// receiver, messages one after the other: per-message cost and latency.
// Run: go test ./relay/jetstream -run - -bench . -benchtime 2000x

func latencies(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkClusterRelay(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			tc := startCluster(b, 3, 10*time.Second)
			rx := connect(b, tc, client.Options{Addrs: tc.addrs(1), ID: "rx", Receive: true, Window: 256})
			tx := connect(b, tc, client.Options{Addrs: tc.addrs(0), ID: "tx"})
			payload := make([]byte, size)
			lat := make([]time.Duration, 0, b.N)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := tx.Send(ctx, "rx", payload); err != nil {
					b.Fatal(err)
				}
				d, err := rx.Receive(ctx)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				if err := rx.Ack(ctx, d); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			latencies(b, lat)
		})
	}
}

func BenchmarkJetStreamR3Direct(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			tc := startCluster(b, 0, 10*time.Second)
			urls := tc.nats.URLs()
			pc, err := nats.Connect(urls[0])
			if err != nil {
				b.Fatal(err)
			}
			defer pc.Close()
			cc, err := nats.Connect(urls[1])
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			ctx := context.Background()
			pjs, _ := natsjs.New(pc)
			cjs, _ := natsjs.New(cc)
			var err2 error
			for range 80 { // a cluster just started may not place replicas yet
				if _, err2 = pjs.CreateStream(ctx, natsjs.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Replicas: 3, Storage: natsjs.FileStorage}); err2 == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if err2 != nil {
				b.Fatal(err2)
			}
			cons, err := cjs.CreateOrUpdateConsumer(ctx, "BENCH", natsjs.ConsumerConfig{Durable: "rx", AckPolicy: natsjs.AckExplicitPolicy})
			if err != nil {
				b.Fatal(err)
			}
			it, err := cons.Messages(natsjs.PullMaxMessages(256))
			if err != nil {
				b.Fatal(err)
			}
			defer it.Stop()
			payload := make([]byte, size)
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := pjs.Publish(ctx, "bench.rx", payload); err != nil {
					b.Fatal(err)
				}
				m, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				if err := m.DoubleAck(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			latencies(b, lat)
		})
	}
}
