package relay

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkPipelined drives an in-process relay over TLS with 4 pairs of
// pipelined senders (64 frames per write) and polling receivers, 64-byte
// messages; ns/op is per delivered message (client and server share the
// CPUs, so this bounds the server's cost from above).
func BenchmarkPipelined(b *testing.B) {
	s := startServer(b, func(c *Config) { c.Limits = Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30} })
	const pairs, batch = 4, 64
	payload := make([]byte, 64)
	msgs := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = payload
	}
	per := b.N/pairs + 1
	var wg sync.WaitGroup
	senders := make([]func(), pairs)
	receivers := make([]func(), pairs)
	for i := 0; i < pairs; i++ {
		snd, rcv := dial(b, s.addr), dial(b, s.addr)
		snd.Register(fmt.Sprintf("s%d", i))
		rcv.Register(fmt.Sprintf("r%d", i))
		to := fmt.Sprintf("r%d", i)
		senders[i] = func() {
			for sent := 0; sent < per; sent += batch {
				if _, err := snd.Pipeline(to, msgs); err != nil {
					b.Error(err)
					return
				}
			}
		}
		receivers[i] = func() {
			for got := 0; got < per; {
				m, err := rcv.PollMany(batch)
				if err != nil {
					b.Error(err)
					return
				}
				got += len(m)
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < pairs; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); senders[i]() }()
		go func() { defer wg.Done(); receivers[i]() }()
	}
	wg.Wait()
}
