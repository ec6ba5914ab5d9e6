package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/custody/unseal"
)

// TestCustodyCommands is the operator's side end to end: keygen prints
// only the recipient; decrypt-share writes the share only where asked;
// unseal submits a share only to an enclave the policy accepts, over
// RA-TLS, and k of them unseal the service.
func TestCustodyCommands(t *testing.T) {
	tmp := t.TempDir()
	var ids, rcpts []string
	for i := range 3 {
		id := filepath.Join(tmp, fmt.Sprintf("op%d.key", i))
		code, out, stderr := runCmd(t, "custody", "keygen", "--out", id)
		if code != 0 || !strings.HasPrefix(out, "age1") || strings.Contains(out+stderr, "AGE-SECRET-KEY") {
			t.Fatalf("keygen: %d %q %q", code, out, stderr)
		}
		if st, err := os.Stat(id); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("identity file: %v %v", st, err)
		}
		ids, rcpts = append(ids, id), append(rcpts, strings.TrimSpace(out))
	}
	if code, _, _ := runCmd(t, "custody", "keygen", "--out", ids[0]); code == 0 {
		t.Fatal("keygen overwrote an identity")
	}
	dk, _ := custody.NewDataKey(rand.Reader)
	rec, enc, err := custody.NewRecovery(dk, rcpts, 2, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var shareFiles []string
	for i, e := range enc {
		p := filepath.Join(tmp, fmt.Sprintf("share-%d.age", i+1))
		os.WriteFile(p, e, 0o600)
		shareFiles = append(shareFiles, p)
	}

	// decrypt-share: nowhere to go is a usage error; --out writes 0600.
	if code, out, _ := runCmd(t, "custody", "decrypt-share", "--identity", ids[0], shareFiles[0]); code != 2 || out != "" {
		t.Fatalf("decrypt-share without --out or --print: %d %q", code, out)
	}
	plain := filepath.Join(tmp, "share-1.txt")
	if code, out, stderr := runCmd(t, "custody", "decrypt-share", "--identity", ids[0], shareFiles[0], "--out", plain); code != 0 || out != "" {
		t.Fatalf("decrypt-share --out: %d %q %q", code, out, stderr)
	}
	b, _ := os.ReadFile(plain)
	if st, _ := os.Stat(plain); st.Mode().Perm() != 0o600 {
		t.Fatal("decrypted share not 0600")
	}
	if _, err := custody.ParseShare(b); err != nil {
		t.Fatal(err)
	}
	// inspect says what the share is and never prints it; another
	// operator's identity does not open it.
	code, out, _ := runCmd(t, "custody", "inspect", "--identity", ids[0], shareFiles[0])
	if code != 0 || !strings.Contains(out, "share 1 of") || !strings.Contains(out, "your identity opens it") {
		t.Fatalf("custody inspect: %d %q", code, out)
	}
	if f := strings.Fields(string(b)); strings.Contains(out, f[len(f)-1]) {
		t.Fatalf("custody inspect printed the share's value: %q", out)
	}
	if code, _, _ := runCmd(t, "custody", "inspect", "--identity", ids[1], shareFiles[0]); code != 1 {
		t.Fatalf("inspect with another operator's identity: exit %d", code)
	}
	if code, out, _ := runCmd(t, "custody", "decrypt-share", "--identity", ids[0], shareFiles[0], "--print"); code != 0 || out != string(b) {
		t.Fatalf("decrypt-share --print: %d", code)
	}
	if code, _, _ := runCmd(t, "custody", "decrypt-share", "--identity", ids[1], shareFiles[0], "--print"); code != 1 {
		t.Fatal("another operator's identity opened the share")
	}

	// A sealed service on a simulated platform, over RA-TLS.
	simDir := filepath.Join(tmp, "sim")
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	h, err := unseal.New(unseal.Config{Recovery: rec, Service: "kmsd", Open: func(got *custody.DataKey) error {
		if got.Equal(dk) {
			opened++
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := atls.NewCertificate(context.Background(), be.Attester, atls.CertOptions{CommonName: "test"}, atls.GramineStandard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(tls.NewListener(ln, atls.ServerConfig(cert)))
	defer srv.Close()
	addr := ln.Addr().String()

	good, wrong := filepath.Join(tmp, "good.toml"), filepath.Join(tmp, "wrong.toml")
	os.WriteFile(good, []byte(fmt.Sprintf("[peers]\nmrsigner = [%q]\nallow_simulated = true\n", be.Platform.MRSigner().String())), 0o600)
	os.WriteFile(wrong, []byte("[peers]\nmrenclave = [\"0101010101010101010101010101010101010101010101010101010101010101\"]\nallow_simulated = true\n"), 0o600)
	common := []string{"--addr", addr, "--simulation", "--sim-dir", simDir}
	unsealAs := func(i int, policy string) (int, string, string) {
		return runCmd(t, append([]string{"custody", "unseal", "--policy", policy, "--identity", ids[i], shareFiles[i]}, common...)...)
	}
	// No policy: refused before anything happens.
	if code, _, stderr := runCmd(t, append([]string{"custody", "unseal", "--identity", ids[0], shareFiles[0]}, common...)...); code != 2 || !strings.Contains(stderr, "--policy") {
		t.Fatalf("unseal without --policy: %d %q", code, stderr)
	}
	// An enclave outside the policy gets nothing.
	if code, _, stderr := unsealAs(0, wrong); code != 1 || !strings.Contains(stderr, "nothing was submitted") {
		t.Fatalf("unseal to an enclave outside the policy: %d %q", code, stderr)
	}
	if st := h.Status(); st.Progress != 0 {
		t.Fatalf("a share reached an enclave outside the policy: %+v", st)
	}
	if code, out, stderr := unsealAs(0, good); code != 0 || !strings.Contains(out, "sealed: 1 of 2") {
		t.Fatalf("first share: %d %q %q", code, out, stderr)
	}
	if code, out, _ := runCmd(t, append([]string{"custody", "status", "--policy", good}, common...)...); code != 0 || !strings.Contains(out, "sealed: 1 of 2") {
		t.Fatalf("status: %d %q", code, out)
	}
	if code, out, stderr := unsealAs(2, good); code != 0 || !strings.Contains(out, "unsealed") || opened != 1 {
		t.Fatalf("second share: %d %q %q (opened %d)", code, out, stderr, opened)
	}
}
