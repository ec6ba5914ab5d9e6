package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
	"github.com/sharedenclave/sharedenclave/store/snapshot"
)

// TestKMSDOnlineSnapshotRestoredElsewhere: Vault's own client takes a
// snapshot (`vault operator raft snapshot save`'s call) of a kmsd that
// keeps serving encryptions meanwhile; the archive, unpacked into a new
// data dir on another simulated CPU, opens through the operators' shares
// and decrypts everything acknowledged before the snapshot. A restore
// into the running kmsd is refused; a token without sudo gets nothing.
func TestKMSDOnlineSnapshotRestoredElsewhere(t *testing.T) {
	tmp := t.TempDir()
	simA, simB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB")
	data, restored := filepath.Join(tmp, "data"), filepath.Join(tmp, "restored")
	ct, tok, shares := firstStart(t, tmp, simA, data)
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", simA, "--data-dir", data, "--listen", "127.0.0.1:0")
	defer stop()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	// Acknowledged before the snapshot: must be in it.
	var before []any
	for i := 0; i < 20; i++ {
		s, err := c.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte(fmt.Sprint("before ", i)))})
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, s.Data["ciphertext"])
	}
	if _, err := c.Logical().Write("transit/keys/second", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	// The service keeps serving while the snapshot is taken.
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			if _, err := c.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": "aGk="}); err != nil {
				loadErr = err
				return
			}
		}
	}()
	var snap bytes.Buffer
	err = c.Sys().RaftSnapshot(&snap)
	close(stopLoad)
	wg.Wait()
	if err != nil {
		t.Fatalf("vault operator raft snapshot save (Vault's client): %v", err)
	}
	if loadErr != nil {
		t.Fatalf("an encryption during the snapshot failed: %v", loadErr)
	}
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte(tok), []byte("before 1")), writeFile(t, tmp, "snap.tar.gz", snap.Bytes()))
	if ents, _ := filepath.Glob(filepath.Join(data, ".snapshot-*")); len(ents) != 0 {
		t.Fatalf("the snapshot's temporary copy was left behind: %v", ents)
	}

	// A restore into the running service is refused with what to do.
	err = c.Sys().RaftSnapshotRestore(bytes.NewReader(snap.Bytes()), false)
	if err == nil || !strings.Contains(err.Error(), "enclavectl backup restore") {
		t.Fatalf("restore into a running kmsd: %v", err)
	}
	// Without sudo on the path, no snapshot.
	if _, err := c.Logical().Write("sys/policies/acl/rw", map[string]any{"policy": `path "sys/storage/raft/snapshot" { capabilities = ["read"] }`}); err != nil {
		t.Fatal(err)
	}
	sec, err := c.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"rw"}})
	if err != nil {
		t.Fatal(err)
	}
	weak := vaultOverRATLS(t, addr, sec.Auth.ClientToken, be, be.DefaultPolicy)
	if err := weak.Sys().RaftSnapshot(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("a snapshot without sudo: %v", err)
	}

	// Another machine: unpack, open through recovery, decrypt.
	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Extract(bytes.NewReader(snap.Bytes()), restored, snapshot.Limits{}); err != nil {
		t.Fatal(err)
	}
	addrB, logsB, _, stopB := startKMSD(t, "--simulation", "--sim-dir", simB, "--data-dir", restored, "--listen", "127.0.0.1:0")
	defer stopB()
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	cb := vaultOverRATLS(t, addrB, tok, beB, beB.DefaultPolicy)
	cb.Sys().Unseal(shares[0])
	if st, err := cb.Sys().Unseal(shares[2]); err != nil || st.Sealed {
		t.Fatalf("unseal the restored snapshot: %+v %v", st, err)
	}
	decryptHello(t, cb, ct)
	for i, x := range before {
		s, err := cb.Logical().Write("transit/decrypt/app", map[string]any{"ciphertext": x})
		if err != nil || s.Data["plaintext"] != base64.StdEncoding.EncodeToString([]byte(fmt.Sprint("before ", i))) {
			t.Fatalf("decrypt %d after restore: %v %v", i, s, err)
		}
	}
	if s, err := cb.Logical().Read("transit/keys/second"); err != nil || s == nil {
		t.Fatalf("a key created before the snapshot is missing: %v", err)
	}
	if !strings.Contains(logsB.String(), "opening a restored backup") {
		t.Fatalf("the restored snapshot was not recognised:\n%s", logsB.String())
	}
	for _, f := range []string{snapshot.SumsFile, snapshot.SealedFile} {
		if _, err := os.Stat(filepath.Join(restored, f)); err == nil {
			t.Fatalf("%s left in the opened data dir", f)
		}
	}
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKMSDSnapshotKill9: kmsd killed with SIGKILL at several moments of a
// snapshot (before, during the checkpoint, while it streams) starts
// again, serves every key, and removes the temporary copy the killed
// process left; a snapshot taken afterwards is complete.
func TestKMSDSnapshotKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	tmp := t.TempDir()
	simDir, data, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data"), filepath.Join(tmp, "root.token")
	args := []string{"--simulation", "--sim-dir", simDir, "--data-dir", data, "--root-token-file", tokFile, "--listen", "127.0.0.1:0", "--log-format", "json", "--audit-log", filepath.Join(tmp, "audit.log")}
	cmd, addr := startKMSDChild(t, args...)
	tok := readToken(t, tokFile)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	// Enough keys that the store has several files to link and stream.
	for i := 0; i < 200; i++ {
		if _, err := c.Logical().Write(fmt.Sprintf("transit/keys/k%d", i), map[string]any{"type": "aes256-gcm96"}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Logical().Write("transit/encrypt/k7", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("hello"))})
	if err != nil {
		t.Fatal(err)
	}
	interrupted := 0
	for round, delay := range []time.Duration{0, 1, 3, 6, 12} {
		if round > 0 {
			cmd, addr = startKMSDChild(t, args...)
			c = vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
		}
		done := make(chan error, 1)
		go func() { done <- c.Sys().RaftSnapshot(slowWriter{}) }()
		time.Sleep(delay * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		<-done
		if left, _ := filepath.Glob(filepath.Join(data, ".snapshot-*")); len(left) > 0 {
			interrupted++
		}
	}
	t.Logf("%d of 5 kills left a snapshot's temporary copy behind", interrupted)
	// Whether or not a kill landed while one streamed, a left-behind copy
	// is removed at the next start.
	if err := os.MkdirAll(filepath.Join(data, ".snapshot-left", "backup"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, ".snapshot-left", "backup", "MANIFEST-000001"), []byte("x"), 0o600)
	cmd, addr = startKMSDChild(t, args...)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c = vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	d, err := c.Logical().Write("transit/decrypt/k7", map[string]any{"ciphertext": s.Data["ciphertext"]})
	if err != nil || d.Data["plaintext"] != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Fatalf("decrypt after the kills: %v %v", d, err)
	}
	if list, err := c.Logical().List("transit/keys"); err != nil || len(list.Data["keys"].([]any)) != 200 {
		t.Fatalf("keys after the kills: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(data, ".snapshot-*")); len(left) != 0 {
		t.Fatalf("temporary copies left: %v", left)
	}
	var snap bytes.Buffer
	if err := c.Sys().RaftSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Check(bytes.NewReader(snap.Bytes()), snapshot.Limits{}); err != nil {
		t.Fatal(err)
	}
}

// slowWriter takes its time, so that the kill lands while kmsd streams.
type slowWriter struct{}

func (slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return len(p), nil
}
