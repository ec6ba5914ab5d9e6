package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

// TestCrashUnderPushLoad: senders keep sending to two receivers that
// take messages by push (client.Client: subscription, acks, automatic
// reconnect) while relayd with --data-dir is killed with SIGKILL at
// random moments and restarted on the same address. The receivers
// acknowledge two messages in three and never the third. Afterwards:
// every acknowledged send reached a receiver or is still waiting; every
// message a receiver did not acknowledge is still waiting (delivered until
// acknowledged); no message whose ACK was answered is.
func TestCrashUnderPushLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	tmp := t.TempDir()
	simDir, dataDir := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"--simulation", "--sim-dir", simDir, "--data-dir", dataDir, "--listen", addr,
		"--log-format", "json", "--mailbox-messages", "1000000", "--mailbox-bytes", "1073741824"}
	const senders, receivers, rounds = 4, 2, 4

	c := startChild(t, args...)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy, Timeout: 5 * time.Second}
	key := func(b []byte) [2]int {
		return [2]int{int(binary.BigEndian.Uint32(b[:4])), int(binary.BigEndian.Uint32(b[4:]))}
	}

	var mu sync.Mutex
	sendAcked := map[[2]int]bool{} // SEND_ACK received
	received := map[[2]int]int{}   // handed to a receiver
	rxAcked := map[[2]int]bool{}   // the receiver's ACK was answered
	notAcked := map[[2]int]bool{}  // never acknowledged by the receiver

	stop := make(chan struct{})
	var rwg sync.WaitGroup
	var rxs []*client.Client
	for r := range receivers {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rx, err := client.Connect(ctx, cfg, client.Options{Addrs: []string{addr}, ID: fmt.Sprintf("r%d", r), Receive: true, Window: 32,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		rxs = append(rxs, rx)
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-stop; cancel() }()
			for {
				d, err := rx.Receive(ctx)
				if err != nil {
					return
				}
				k := key(d.Data)
				mu.Lock()
				received[k]++
				mu.Unlock()
				if k[1]%3 == 0 {
					mu.Lock()
					notAcked[k] = true
					mu.Unlock()
					continue
				}
				actx, acancel := context.WithTimeout(ctx, 2*time.Second)
				err = rx.Ack(actx, d)
				acancel()
				if err == nil {
					mu.Lock()
					rxAcked[k] = true
					mu.Unlock()
				}
			}
		}()
	}

	next := make([]int, senders)
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range rounds {
		if round > 0 {
			c = startChild(t, args...)
		}
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := client.Dial(context.Background(), addr, cfg)
				if err != nil {
					return
				}
				defer conn.Close()
				if conn.Register(fmt.Sprintf("s%d", s)) != nil {
					return
				}
				for {
					mu.Lock()
					seq := next[s]
					next[s]++
					mu.Unlock()
					var b [8]byte
					binary.BigEndian.PutUint32(b[:4], uint32(s))
					binary.BigEndian.PutUint32(b[4:], uint32(seq))
					if err := conn.Send(fmt.Sprintf("r%d", seq%receivers), b[:]); err != nil {
						return
					}
					mu.Lock()
					sendAcked[[2]int{s, seq}] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(200+rng.IntN(400)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		wg.Wait()
	}
	// Restart, let the receivers catch up, stop them, and drain what waits.
	c = startChild(t, args...)
	defer func() { c.cmd.Process.Kill(); c.cmd.Wait() }()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	rwg.Wait()
	for _, rx := range rxs {
		rx.Close()
	}
	waiting := map[[2]int]bool{}
	for r := range receivers {
		var conn *client.Conn
		for i := 0; ; i++ { // the receiver's session may take a moment to end
			conn, err = client.Dial(context.Background(), addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err = conn.Register(fmt.Sprintf("r%d", r)); err == nil || i == 50 {
				break
			}
			conn.Close()
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		drain(t, conn, func(m client.Message) { waiting[key(m.Data)] = true })
		conn.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sendAcked) < 100 || len(rxAcked) < 50 {
		t.Fatalf("only %d sends and %d receiver acks: the load never got going", len(sendAcked), len(rxAcked))
	}
	for k := range sendAcked {
		if received[k] == 0 && !waiting[k] {
			t.Errorf("acknowledged send %v lost", k)
		}
	}
	for k := range notAcked {
		if !waiting[k] && !rxAcked[k] {
			t.Errorf("message %v received, never acknowledged, and gone", k)
		}
	}
	for k := range rxAcked {
		if waiting[k] {
			t.Errorf("message %v still waiting after its ACK was answered", k)
		}
	}
	redelivered := 0
	for _, n := range received {
		if n > 1 {
			redelivered++
		}
	}
	t.Logf("%d sends acknowledged, %d received (%d more than once), %d acknowledged by receivers, %d left unacknowledged and still waiting, across %d SIGKILLs",
		len(sendAcked), len(received), redelivered, len(rxAcked), len(waiting), rounds)
}
