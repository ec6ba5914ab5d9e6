package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestExampleClientFollow: --follow prints each message as it arrives,
// without polling, until interrupted, and exits 0.
func TestExampleClientFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--simulation", "--sim-dir", dir, "--follow", host, port, "bob"}, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "following") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code, o, e := runClient(t, dir, addr, "alice", "send bob first\nsend bob second\nquit\n"); code != 0 {
		t.Fatalf("alice: %d %q %q", code, o, e)
	}
	for !strings.Contains(out.String(), "from alice: second") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); !strings.Contains(got, "messages are pushed") || !strings.Contains(got, "from alice: first\nfrom alice: second\n") {
		t.Fatalf("output %q", got)
	}
}

// TestExampleClientFollowMovesToAnotherNode: with --also, when the relay
// node it follows goes away, example-client attests the next node,
// registers there and goes on printing what arrives.
func TestExampleClientFollowMovesToAnotherNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	first := relaytest.Start(t, dir, "127.0.0.1:0", nil)
	second := relaytest.Start(t, dir, "127.0.0.1:0", nil)
	host, port, _ := net.SplitHostPort(first.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--simulation", "--sim-dir", dir, "--follow", "--also", second.Addr, host, port, "bob"}, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "following") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code, o, e := runClient(t, dir, first.Addr, "alice", "send bob on the first node\nquit\n"); code != 0 {
		t.Fatalf("alice: %d %q %q", code, o, e)
	}
	for !strings.Contains(out.String(), "on the first node") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	first.Stop()
	// bob is registered on the second node once it has moved; until then
	// a send there finds no recipient.
	for time.Now().Before(deadline) {
		code, o, _ := runClient(t, dir, second.Addr, "carol", "send bob on the second node\nquit\n")
		if code == 0 && !strings.Contains(o, "refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for !strings.Contains(out.String(), "from carol: on the second node") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); !strings.Contains(got, "from alice: on the first node\n") || !strings.Contains(got, "from carol: on the second node\n") {
		t.Fatalf("output %q", got)
	}
}

// TestExampleClientAlsoFlag: --also is refused without --follow and with a
// malformed address, naming it.
func TestExampleClientAlsoFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--simulation", "--also", "127.0.0.1:1", "127.0.0.1", "1"},
		{"--simulation", "--follow", "--also", "nonsense", "127.0.0.1", "1"},
		{"--simulation", "--follow", "--also", "127.0.0.1:99999", "127.0.0.1", "1"},
	} {
		var out, errb syncBuf
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "--also") {
			t.Errorf("%v: exit %d, %q", args, code, errb.String())
		}
	}
}
