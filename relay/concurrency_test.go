package relay

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/sharedenclave/sharedenclave/client"
)

// TestManyClientsExactlyOnceInOrder: many clients send to each other at
// once; every message is delivered exactly once, and each sender's messages
// arrive in the order sent. Each client is one goroutine that interleaves
// its sends with polls (a Conn is not for concurrent use). Run under -race.
func TestManyClientsExactlyOnceInOrder(t *testing.T) {
	const clients, perPeer = 12, 40
	s := startServer(t, func(c *Config) { c.Limits = Limits{MaxMessages: clients * perPeer} })
	conns := make([]*client.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, s.addr)
		if err := conns[i].Register(fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make([]int, clients) // next[sender] = next expected k
			received, want := 0, (clients-1)*perPeer
			poll := func(drain bool) bool {
				for {
					from, data, ok, err := c.Poll()
					if err != nil {
						t.Error(err)
						return false
					}
					if !ok {
						return true
					}
					received++
					s, k := int(binary.BigEndian.Uint32(data[:4])), int(binary.BigEndian.Uint32(data[4:]))
					if from != fmt.Sprintf("c%d", s) {
						t.Errorf("message from c%d labelled %q", s, from)
					}
					if k != next[s] {
						t.Errorf("c%d got message %d from c%d, want %d (lost, duplicated or reordered)", i, k, s, next[s])
					}
					next[s] = k + 1
					if !drain {
						return true
					}
				}
			}
			for k := 0; k < perPeer; k++ {
				for j := 0; j < clients; j++ {
					if j == i {
						continue
					}
					var b [8]byte
					binary.BigEndian.PutUint32(b[:4], uint32(i))
					binary.BigEndian.PutUint32(b[4:], uint32(k))
					if err := c.Send(fmt.Sprintf("c%d", j), b[:]); err != nil {
						t.Error(err)
						return
					}
				}
				if !poll(false) {
					return
				}
			}
			for received < want {
				if !poll(true) {
					return
				}
			}
			if received != want {
				t.Errorf("c%d received %d messages, want %d", i, received, want)
			}
		}()
	}
	wg.Wait()
	for i, c := range conns {
		if _, _, ok, _ := c.Poll(); ok {
			t.Errorf("c%d has a message left over: duplicated delivery", i)
		}
	}
}
