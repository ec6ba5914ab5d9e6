package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

// TestRelayReceiveFollow: `relay receive --follow` prints messages as the
// relay pushes them, acknowledges each (a later poll finds nothing), and
// `relay receive` without --follow says so when nothing comes in time.
func TestRelayReceiveFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	common := []string{"--addr", addr, "--simulation", "--sim-dir", dir}
	if code, _, stderr := runCmd(t, append([]string{"relay", "register", "--id", "bob"}, common...)...); code != 0 {
		t.Fatalf("register: %s", stderr)
	}
	type result struct {
		code        int
		out, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, stderr := runCmd(t, append([]string{"relay", "receive", "--id", "bob", "--follow", "--count", "2"}, common...)...)
		done <- result{code, out, stderr}
	}()
	time.Sleep(500 * time.Millisecond) // let it subscribe first: the messages are pushed, not waiting
	for _, m := range []string{"one", "two"} {
		if code, _, stderr := runCmd(t, append([]string{"relay", "send", "--id", "alice", "--to", "bob", m}, common...)...); code != 0 {
			t.Fatalf("send: %s", stderr)
		}
	}
	select {
	case r := <-done:
		if r.code != 0 || r.out != "from alice: one\nfrom alice: two\n" {
			t.Fatalf("receive --follow: exit %d, %q, %s", r.code, r.out, r.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("receive --follow did not print two messages")
	}
	if code, out, _ := runCmd(t, append([]string{"relay", "poll", "--id", "bob"}, common...)...); code != 0 || out != "no data available\n" {
		t.Errorf("after receive: poll %d %q: the messages were not acknowledged", code, out)
	}
	if code, out, _ := runCmd(t, append([]string{"relay", "receive", "--id", "bob", "--timeout", "1s"}, common...)...); code != 0 || !strings.Contains(out, "no data available") {
		t.Errorf("receive on an empty mailbox: %d %q", code, out)
	}
	if code, _, _ := runCmd(t, append([]string{"relay", "receive", "--id", "bob", "--count", "1"}, common...)...); code != 2 {
		t.Errorf("--count without --follow: exit %d, want 2", code)
	}
}
