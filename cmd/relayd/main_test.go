package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRelaydSimulationEndToEnd starts relayd as `relayd --simulation`
// would, creating its platform on first use, talks to it with the client
// library, and stops it as SIGTERM would.
func TestRelaydSimulationEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	var logs syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--simulation", "--sim-dir", dir, "--listen", "127.0.0.1:0", "--log-format", "json"}, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("relayd exited %d: %s", code, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("relayd did not start")
	}
	if _, err := os.Stat(filepath.Join(dir, "root_ca.pem")); err != nil {
		t.Fatal("relayd did not create the simulated platform")
	}
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register("me"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("me", []byte("note to self")); err != nil {
		t.Fatal(err)
	}
	if _, data, ok, err := c.Poll(); err != nil || !ok || string(data) != "note to self" {
		t.Fatalf("poll: %q %v %v", data, ok, err)
	}
	c.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("relayd did not stop")
	}
	out := logs.String()
	for _, want := range []string{"SIMULATION MODE", "memory-only", "relayd stopped", `"id":"me"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(out, "note to self") {
		t.Error("a payload was logged")
	}
}

func TestRelaydFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "nonsense"},
		{"--max-payload", "0"},
		{"--log-format", "xml"},
		{"--seal-policy", "none"},
		{"stray"},
	} {
		var out syncBuf
		if code := run(context.Background(), args, &out, nil); code != 2 || out.String() == "" {
			t.Errorf("%q: exit %d, %q", args, code, out.String())
		}
	}
	var out syncBuf
	if code := run(context.Background(), []string{"--help"}, &out, nil); code != 0 || !strings.Contains(out.String(), "-simulation") {
		t.Errorf("--help: %d", code)
	}
	// SGX mode outside an enclave fails with a hint.
	out = syncBuf{}
	if code := run(context.Background(), []string{"--listen", "127.0.0.1:0"}, &out, nil); code != 1 || !strings.Contains(out.String(), "--simulation") {
		t.Errorf("SGX mode outside Gramine: %d %q", code, out.String())
	}
}
