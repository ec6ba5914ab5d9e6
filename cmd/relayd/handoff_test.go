package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
)

// TestRelaydHandoffToASuccessorBuild: a message queued by one build is
// delivered by a successor build (another MRENCLAVE: this test binary
// with bytes appended) that took the data key from the old build over
// mutual attestation (--handoff-listen / --handoff-from).
func TestRelaydHandoffToASuccessorBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relayd processes")
	}
	tmp := t.TempDir()
	simDir, data := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	common := []string{"--simulation", "--sim-dir", simDir, "--data-dir", data, "--log-format", "json"}
	addr, _, stop := startRun(t, append(common, "--listen", "127.0.0.1:0")...)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		t.Fatal(err)
	}
	dialAs(t, be, addr, "bob").Close()
	a := dialAs(t, be, addr, "alice")
	if err := a.Send("bob", []byte("queued before the upgrade")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	stop()

	// The old build serves one hand-off.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	plogs, done := &syncBuf{}, make(chan int, 1)
	go func() {
		done <- run(ctx, append(common, "--handoff-listen", "127.0.0.1:0"), noEnv, io.Discard, plogs, nil)
	}()
	var haddr string
	for deadline := time.Now().Add(20 * time.Second); haddr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(plogs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &rec) == nil && strings.HasPrefix(rec.Msg, "hand-off: waiting") {
				haddr = rec.Addr
			}
		}
	}
	if haddr == "" {
		t.Fatalf("the predecessor did not start its hand-off:\n%s", plogs)
	}

	// The successor build takes it.
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(tmp, "relayd-successor")
	if err := os.WriteFile(exe, append(b, "successor"...), 0o755); err != nil {
		t.Fatal(err)
	}
	ch := startChildExe(t, exe, append(common, "--listen", "127.0.0.1:0", "--handoff-from", haddr)...)
	defer func() { ch.cmd.Process.Signal(syscall.SIGKILL); ch.cmd.Wait() }()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("the predecessor exited %d:\n%s", code, plogs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the predecessor did not exit after the hand-off:\n%s", plogs)
	}
	bob := dialAs(t, be, ch.addr, "bob")
	defer bob.Close()
	if from, msg, ok, err := bob.Poll(); err != nil || !ok || from != "alice" || string(msg) != "queued before the upgrade" {
		t.Fatalf("after the hand-off: %q %q %v %v\n%s", from, msg, ok, err, ch.logs)
	}
	custodytest.Scan(t, [][]byte{[]byte("queued before the upgrade")}, data)
}
