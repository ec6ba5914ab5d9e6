package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
)

// waitRecovery waits for a sealed relayd's recovery address in its JSON
// logs.
func waitRecovery(t *testing.T, logs *syncBuf, done chan int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "relayd sealed: recovery endpoint listening" {
				return rec.Addr
			}
		}
		select {
		case code := <-done:
			t.Fatalf("relayd exited %d:\n%s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("relayd did not start sealed")
	return ""
}

// TestRelaydRecoveryOnAnotherMachine: a message queued on one simulated
// platform is delivered on another, after the data dir was copied there,
// only through recovery on --recovery-listen; refused shares change
// nothing on disk, and the relay's own port is not open while sealed.
func TestRelaydRecoveryOnAnotherMachine(t *testing.T) {
	tmp := t.TempDir()
	simA, simB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB")
	dataA, dataB, sharesDir := filepath.Join(tmp, "dataA"), filepath.Join(tmp, "dataB"), filepath.Join(tmp, "shares")
	ops := custodytest.NewOperators(t, tmp, 3)
	addr, _, stop := startRun(t, "--simulation", "--sim-dir", simA, "--data-dir", dataA, "--listen", "127.0.0.1:0", "--log-format", "json",
		"--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", sharesDir)
	beA, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(be *backend.Backend, addr, id string) *client.Conn { return dialAs(t, be, addr, id) }
	dial(beA, addr, "bob").Close()
	a := dial(beA, addr, "alice")
	if err := a.Send("bob", []byte("queued before the machine died")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	stop()
	shares := ops.Shares(t, sharesDir, "relay-")
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte("queued before the machine died")), dataA, sharesDir)

	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dataB, os.DirFS(dataA)); err != nil {
		t.Fatal(err)
	}
	args := []string{"--simulation", "--sim-dir", simB, "--data-dir", dataB, "--listen", "127.0.0.1:0", "--log-format", "json"}

	// Without --recovery-listen, a sealed relayd says what to do.
	var out syncBuf
	ready := make(chan string, 1)
	if code := run(context.Background(), args, noEnv, io.Discard, &out, ready); code != 1 || !strings.Contains(out.String(), "--recovery-listen") {
		t.Fatalf("sealed without --recovery-listen: exit %d\n%s", code, out.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append(args, "--recovery-listen", "127.0.0.1:0"), noEnv, io.Discard, logs, ready)
	}()
	raddr := waitRecovery(t, logs, done)
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vault.DefaultConfig()
	cfg.Address = "https://" + raddr
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(beB.Verifier, beB.DefaultPolicy)}}
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Sys().SealStatus(); err != nil || !st.Sealed || st.T != 2 || st.N != 3 {
		t.Fatalf("seal-status: %+v %v", st, err)
	}
	if len(ready) != 0 {
		t.Fatal("the relay listens while sealed")
	}
	before := custodytest.HashDir(t, dataB)
	c.Sys().Unseal(shares[1]) // k-1 …
	c.Sys().UnsealWithOptions(&vault.UnsealOpts{Reset: true})
	c.Sys().Unseal(custodytest.Forge(t, shares[0])) // forged …
	c.Sys().Unseal(custodytest.Forge(t, shares[2]))
	for _, f := range custodytest.Foreign(t, 2, 3) { // another deployment's
		c.Sys().Unseal(f)
	}
	if st, _ := c.Sys().SealStatus(); !st.Sealed || st.Progress != 0 {
		t.Fatalf("after refused shares: %+v", st)
	}
	if custodytest.HashDir(t, dataB) != before {
		t.Fatal("the data dir changed while relayd was sealed")
	}
	c.Sys().Unseal(shares[0])
	if st, err := c.Sys().Unseal(shares[2]); err != nil || st.Sealed {
		t.Fatalf("unseal: %+v %v", st, err)
	}
	var relayAddr string
	select {
	case relayAddr = <-ready:
	case code := <-done:
		t.Fatalf("relayd exited %d after unseal:\n%s", code, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("relayd did not open after unseal")
	}
	b := dial(beB, relayAddr, "bob")
	from, data, ok, err := b.Poll()
	if err != nil || !ok || from != "alice" || string(data) != "queued before the machine died" {
		t.Fatalf("after recovery: %q %q %v %v", from, data, ok, err)
	}
	b.Close()
	// The recovery endpoint is closed once unsealed.
	if _, err := c.Sys().SealStatus(); err == nil {
		t.Error("the recovery endpoint still answers after unseal")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte("queued before the machine died")), dataB)
	// Next start on B: no recovery needed.
	_, _, stop = startRun(t, args...)
	stop()
}

// TestRelaydBackupRestoredElsewhere: a queued message is in a backup
// taken with --backup-to, and is delivered when the backup is restored on
// another simulated platform through recovery.
func TestRelaydBackupRestoredElsewhere(t *testing.T) {
	tmp := t.TempDir()
	simA := filepath.Join(tmp, "simA")
	data, backup, sharesDir := filepath.Join(tmp, "data"), filepath.Join(tmp, "backup"), filepath.Join(tmp, "shares")
	ops := custodytest.NewOperators(t, tmp, 2)
	common := []string{"--simulation", "--sim-dir", simA, "--data-dir", data, "--log-format", "json"}
	addr, _, stop := startRun(t, append(common, "--listen", "127.0.0.1:0",
		"--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", sharesDir)...)
	beA, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(be *backend.Backend, addr, id string) *client.Conn { return dialAs(t, be, addr, id) }
	dial(beA, addr, "bob").Close()
	a := dial(beA, addr, "alice")
	if err := a.Send("bob", []byte("in the backup")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	stop()
	var out syncBuf
	if code := run(context.Background(), append(common, "--backup-to", backup), noEnv, io.Discard, &out, nil); code != 0 {
		t.Fatalf("--backup-to: exit %d\n%s", code, out.String())
	}
	shares := ops.Shares(t, sharesDir, "relay-")
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte("in the backup")), backup)

	restored := filepath.Join(tmp, "restored")
	if err := os.CopyFS(restored, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	receiveOnAnotherCPU(t, tmp, restored, shares, []string{"in the backup"})
}

// receiveOnAnotherCPU starts relayd on the data dir restored, on a new
// simulated platform (another CPU), unseals it with shares over its
// recovery listener, and checks that bob receives exactly want, in order.
func receiveOnAnotherCPU(t *testing.T, tmp, restored string, shares, want []string) {
	t.Helper()
	simB := filepath.Join(tmp, "simB")
	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, ready, done := &syncBuf{}, make(chan string, 1), make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--simulation", "--sim-dir", simB, "--data-dir", restored, "--listen", "127.0.0.1:0", "--log-format", "json",
			"--recovery-listen", "127.0.0.1:0"}, noEnv, io.Discard, logs, ready)
	}()
	raddr := waitRecovery(t, logs, done)
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vault.DefaultConfig()
	cfg.Address = "https://" + raddr
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(beB.Verifier, beB.DefaultPolicy)}}
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Sys().Unseal(shares[0])
	if st, err := c.Sys().Unseal(shares[1]); err != nil || st.Sealed {
		t.Fatalf("unseal: %+v %v", st, err)
	}
	b := dialAs(t, beB, <-ready, "bob")
	defer b.Close()
	for i, w := range want {
		if from, data, ok, err := b.Poll(); err != nil || !ok || from != "alice" || string(data) != w {
			t.Fatalf("after restore, message %d: %q %q %v %v (want %q)", i, from, data, ok, err, w)
		}
	}
	if _, data, ok, err := b.Poll(); err != nil || ok {
		t.Fatalf("after restore, a message that was not in the backup: %q %v", data, err)
	}
	cancel()
	<-done
}

// dialAs connects to addr as an enclave of be's platform and registers id.
func dialAs(t *testing.T, be *backend.Backend, addr, id string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(id); err != nil {
		t.Fatal(err)
	}
	return c
}
