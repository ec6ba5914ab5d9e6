package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

func TestRelaydClusterFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--simulation", "--cluster", "nats://127.0.0.1:4222"}, "--cluster needs --data-dir"},
		{[]string{"--simulation", "--data-dir", dir, "--cluster", "127.0.0.1:4222"}, "want NATS URLs"},
		{[]string{"--simulation", "--data-dir", dir, "--cluster", "nats://user:secret@127.0.0.1:4222"}, "credentials never go in flags"},
		{[]string{"--simulation", "--cluster-lease", "3s"}, "--cluster-lease needs --cluster"},
		{[]string{"--simulation", "--data-dir", dir, "--cluster", "nats://127.0.0.1:4222", "--mailbox-bytes", "100"}, "--mailbox-bytes has no JetStream counterpart"},
		{[]string{"--simulation", "--data-dir", dir, "--cluster", "nats://127.0.0.1:4222", "--cluster-replicas", "7"}, "--cluster-replicas"},
		{[]string{"--simulation", "--data-dir", dir, "--cluster", "nats://127.0.0.1:4222", "--pace-wait", "5ms"}, "does not pace"},
		{[]string{"--simulation", "--data-dir", dir, "--cluster", "nats://127.0.0.1:4222", "--backup-to", dir + "/b"}, "not with --cluster"},
	} {
		var out syncBuf
		if code := run(context.Background(), c.args, noEnv, io.Discard, &out, nil); code != 2 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 and %q", c.args, code, out.String(), c.want)
		}
		if strings.Contains(out.String(), "secret") {
			t.Errorf("%q: the credential is echoed: %q", c.args, out.String())
		}
	}
	// The environment sets --cluster like any flag.
	var out syncBuf
	env := func(k string) string {
		if k == "RELAYD_CLUSTER" {
			return "nats://127.0.0.1:4222"
		}
		return ""
	}
	if code := run(context.Background(), []string{"--simulation"}, env, io.Discard, &out, nil); code != 2 || !strings.Contains(out.String(), "--cluster needs --data-dir") {
		t.Errorf("RELAYD_CLUSTER: exit %d, %q", code, out.String())
	}
}

// TestRelaydClusterJoinRefused: the first relayd of a cluster creates the
// cluster key; a second one with an empty data dir would be joining, and
// without the attested hand-off it is refused, writing nothing.
func TestRelaydClusterJoinRefused(t *testing.T) {
	nc := natstest.Start(t, 3)
	tmp := t.TempDir()
	sim := filepath.Join(tmp, "sim")
	first := startChild(t, "--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, "d1"), "--cluster", nc.URL(),
		"--listen", "127.0.0.1:0", "--log-format", "json")
	defer stopChild(first)
	if _, err := os.Stat(filepath.Join(tmp, "d1", startup.CustodyFile)); err != nil {
		t.Fatalf("the first node kept no cluster key: %v", err)
	}
	var out syncBuf
	d2 := filepath.Join(tmp, "d2")
	code := run(context.Background(), []string{"--simulation", "--sim-dir", sim, "--data-dir", d2, "--cluster", nc.URL(), "--listen", "127.0.0.1:0"}, noEnv, io.Discard, &out, nil)
	if code != 1 || !strings.Contains(out.String(), "hand-off") {
		t.Fatalf("joining node: exit %d, %q; want exit 1 naming the hand-off", code, out.String())
	}
	if ents, _ := os.ReadDir(d2); len(ents) != 0 {
		t.Fatalf("the refused node wrote %d files into its data dir", len(ents))
	}
}

func stopChild(c *child) {
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
}

// TestRelaydClusterNodeKilled: three relayd processes on a three-node
// JetStream cluster. The receiver is on node B; node B is killed with
// SIGKILL under load; the receiver's client moves to node C (a fresh
// attestation) once B's lease on its id runs out; every acknowledged send
// is delivered, none twice to the application.
//
// The second and third nodes start from a copy of the first node's data
// dir: its cluster key is sealed, and opens for the same enclave on the
// same (simulated) platform. (A node with an empty data dir joins through
// the attested hand-off instead: TestRelaydClusterJoinThroughHandoff.)
func TestRelaydClusterNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("relayd cluster kill test skipped in -short mode")
	}
	nc := natstest.Start(t, 3)
	tmp := t.TempDir()
	sim := filepath.Join(tmp, "sim")
	args := func(i int) []string {
		return []string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, fmt.Sprintf("d%d", i)), "--cluster", nc.URL(),
			"--cluster-lease", "2s", "--listen", "127.0.0.1:0", "--log-format", "json"}
	}
	nodes := []*child{startChild(t, args(0)...)}
	key, err := os.ReadFile(filepath.Join(tmp, "d0", startup.CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		os.MkdirAll(filepath.Join(tmp, fmt.Sprintf("d%d", i)), 0o700)
		if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("d%d", i), startup.CustodyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, startChild(t, args(i)...))
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			stopChild(n)
		}
	})
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rx, err := client.Connect(ctx, cfg, client.Options{Addrs: []string{nodes[1].addr, nodes[2].addr}, ID: "rx", Receive: true, Window: 16, MaxBackoff: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := client.Connect(ctx, cfg, client.Options{Addrs: []string{nodes[0].addr, nodes[2].addr}, ID: "tx"})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	const total = 300
	var acked sync.Map
	var nAcked atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := tx.Send(sctx, "rx", fmt.Appendf(nil, "m%04d", i))
			scancel()
			if err == nil {
				acked.Store(fmt.Sprintf("m%04d", i), true)
				nAcked.Add(1)
			}
			if i == total/3 {
				nodes[1].cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}()
	got := map[string]int{}
	allIn := func() bool {
		all := true
		acked.Range(func(k, _ any) bool { all = got[k.(string)] > 0; return all })
		return all
	}
	giveUp := time.Now().Add(60 * time.Second)
	for time.Now().Before(giveUp) {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		d, err := rx.Receive(rctx)
		rcancel()
		if err != nil {
			select {
			case <-done:
				if allIn() {
					giveUp = time.Now()
				}
			default:
			}
			continue
		}
		if got[string(d.Data)]++; got[string(d.Data)] > 1 {
			t.Errorf("%s delivered twice to the application", d.Data)
		}
		actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
		rx.Ack(actx, d)
		acancel()
	}
	<-done
	var missing []string
	acked.Range(func(k, _ any) bool {
		if got[k.(string)] == 0 {
			missing = append(missing, k.(string))
		}
		return true
	})
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages never delivered: %v", len(missing), missing)
	}
	if nAcked.Load() < total*9/10 {
		t.Fatalf("only %d of %d sends acknowledged", nAcked.Load(), total)
	}
	// The killed node's log never held an id or a payload (the host's).
	if logs := nodes[1].logs.String(); bytes.Contains([]byte(logs), []byte("m0001")) {
		t.Fatal("a payload reached relayd's log")
	}
	t.Logf("%d of %d sends acknowledged, all delivered once, after SIGKILL of relay node B", nAcked.Load(), total)
}
