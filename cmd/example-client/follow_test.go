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
