package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

// joinAddr finds a member's --join-listen address in its JSON logs.
func joinAddr(t *testing.T, logs *syncBuf) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &rec) == nil && strings.HasPrefix(rec.Msg, "cluster joins: serving") {
				return rec.Addr
			}
		}
	}
	t.Fatalf("the member did not serve joins:\n%s", logs)
	return ""
}

// TestRelaydClusterJoinThroughHandoff: a second relayd with an empty data
// dir joins a running cluster with --join: the first node (--join-listen)
// gives it the cluster key after mutual attestation, and a message sent
// through the first node reaches a receiver on the second. A node the
// member's hand-off policy does not name is refused and writes nothing.
func TestRelaydClusterJoinThroughHandoff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server cluster and relayd processes")
	}
	nc := natstest.Start(t, 3)
	tmp := t.TempDir()
	sim := filepath.Join(tmp, "sim")
	node := func(dir string, extra ...string) []string {
		return append([]string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, dir), "--cluster", nc.URL(),
			"--listen", "127.0.0.1:0", "--log-format", "json"}, extra...)
	}
	first := startChild(t, node("d1", "--join-listen", "127.0.0.1:0")...)
	defer stopChild(first)
	jaddr := joinAddr(t, first.logs)

	second := startChild(t, node("d2", "--join", jaddr)...)
	defer stopChild(second)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	rx := dialAs(t, be, second.addr, "rx")
	defer rx.Close()
	tx := dialAs(t, be, first.addr, "tx")
	defer tx.Close()
	if err := tx.Send("rx", []byte("across the cluster")); err != nil {
		t.Fatal(err)
	}
	var got string
	for deadline := time.Now().Add(10 * time.Second); got == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if from, msg, ok, err := rx.Poll(); err != nil {
			t.Fatal(err)
		} else if ok {
			if from != "tx" {
				t.Fatalf("from %q", from)
			}
			got = string(msg)
		}
	}
	if got != "across the cluster" {
		t.Fatalf("the joined node did not deliver: %q", got)
	}
	custodytest.Scan(t, [][]byte{[]byte("across the cluster")}, filepath.Join(tmp, "d2"))
	for _, d := range natstestDirs(nc) {
		custodytest.Scan(t, [][]byte{[]byte("across the cluster")}, d)
	}

	// A member whose policy names another MRENCLAVE gives nothing away.
	pol := filepath.Join(tmp, "other.toml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf("[peers]\nmrenclave = [%q]\nallow_simulated = true\n", strings.Repeat("cd", 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	// (the first node again, restarted with the policy: its data dir holds the key).
	stopChild(first)
	strict := startChild(t, node("d1", "--join-listen", "127.0.0.1:0", "--handoff-policy", pol)...)
	defer stopChild(strict)
	var out syncBuf
	d3 := filepath.Join(tmp, "d3")
	code := run(context.Background(), node("d3", "--join", joinAddr(t, strict.logs)), noEnv, io.Discard, &out, nil)
	if code != 1 || !strings.Contains(out.String(), "MRENCLAVE") {
		t.Fatalf("a node outside the policy: exit %d, %q", code, out.String())
	}
	if ents, _ := os.ReadDir(d3); len(ents) != 0 {
		t.Fatalf("the refused node wrote %d files", len(ents))
	}
}

func natstestDirs(c *natstest.Cluster) []string { return c.StoreDirs() }
