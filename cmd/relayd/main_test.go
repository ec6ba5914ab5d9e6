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

// startRun runs relayd in-process and returns its address and a stop
// function that waits for it to exit.
func startRun(t *testing.T, args ...string) (string, *syncBuf, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	logs := &syncBuf{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, logs, ready) }()
	select {
	case addr := <-ready:
		return addr, logs, func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("relayd exited %d", code)
			}
		}
	case code := <-done:
		t.Fatalf("relayd exited %d: %s", code, logs.String())
	}
	return "", nil, nil
}

func TestRelaydDataDirRestartAndRotate(t *testing.T) {
	tmp := t.TempDir()
	dir, data := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	args := []string{"--simulation", "--sim-dir", dir, "--data-dir", data, "--listen", "127.0.0.1:0", "--log-format", "json"}
	addr, logs, stop := startRun(t, args...)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr, id string) *client.Conn {
		c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(id); err != nil {
			t.Fatal(err)
		}
		return c
	}
	dial(addr, "bob").Close()
	a := dial(addr, "alice")
	for _, m := range []string{"one", "two"} {
		if err := a.Send("bob", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	stop()
	if !strings.Contains(logs.String(), "durable and sealed") || strings.Contains(logs.String(), "memory-only") {
		t.Errorf("durability not announced:\n%s", logs.String())
	}

	addr, logs, stop = startRun(t, append(args, "--rotate-seal-key")...)
	defer stop()
	if !strings.Contains(logs.String(), `"records_resealed":`) {
		t.Errorf("rotation not logged:\n%s", logs.String())
	}
	b := dial(addr, "bob")
	defer b.Close()
	for _, want := range []string{"one", "two"} {
		from, data, ok, err := b.Poll()
		if err != nil || !ok || from != "alice" || string(data) != want {
			t.Fatalf("after restart and rotation: %q %q %v %v", from, data, ok, err)
		}
	}
}
