package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/backend"
)

// tryKMSD runs kmsd to its exit, or until it is ready to serve (then
// stops it): it reports the exit code, whether it came up, and stderr.
func tryKMSD(t *testing.T, stdin string, args ...string) (code int, started bool, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan int, 1)
	var logs syncBuf
	go func() { done <- run(ctx, args, noEnv, strings.NewReader(stdin), io.Discard, &logs, ready) }()
	select {
	case <-ready:
		cancel()
		return <-done, true, logs.String()
	case code := <-done:
		return code, false, logs.String()
	}
}

// TestKMSDNoRootLockout is the reproduction: --root-token-file
// already exists on the first start. The start fails and commits
// nothing, so the same command fails again (instead of coming up with a
// root token nobody holds), and a start with a new file gets the root.
func TestKMSDNoRootLockout(t *testing.T) {
	tmp := t.TempDir()
	sim, data, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data"), filepath.Join(tmp, "root.token")
	os.WriteFile(tokFile, []byte("an old token\n"), 0o600)
	args := []string{"--simulation", "--sim-dir", sim, "--data-dir", data, "--root-token-file", tokFile, "--listen", "127.0.0.1:0"}
	for i := range 2 {
		code, started, stderr := tryKMSD(t, "", args...)
		if started || code != 1 || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "nothing was committed") {
			t.Fatalf("start #%d with an existing token file: exit %d, started %v:\n%s", i+1, code, started, stderr)
		}
	}
	if b, _ := os.ReadFile(tokFile); string(b) != "an old token\n" {
		t.Fatal("kmsd overwrote an existing token file")
	}
	// Without a destination, nothing is printed and nothing committed either.
	code, started, stderr := tryKMSD(t, "", "--simulation", "--sim-dir", sim, "--data-dir", data, "--listen", "127.0.0.1:0")
	if started || code != 1 || !strings.Contains(stderr, "--root-token-file") || strings.Contains(stderr, "se.") {
		t.Fatalf("start without --root-token-file: exit %d, started %v:\n%s", code, started, stderr)
	}

	newFile := filepath.Join(tmp, "new.token")
	args[len(args)-3] = newFile
	addr, logs, _, stop := startKMSD(t, args...)
	defer stop()
	tok := readToken(t, newFile)
	for _, f := range []string{newFile, newFile + ".recovery"} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), readToken(t, newFile+".recovery")) {
		t.Fatal("a secret reached the log")
	}
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy).Logical().Write("transit/keys/app", nil); err != nil {
		t.Fatalf("the root token from the new file: %v", err)
	}
}

// TestKMSDGenerateRoot: a lost root token is replaced with the recovery
// key while kmsd is stopped; the old token and recovery key stop working.
func TestKMSDGenerateRoot(t *testing.T) {
	tmp := t.TempDir()
	sim, data, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data"), filepath.Join(tmp, "root.token")
	base := []string{"--simulation", "--sim-dir", sim, "--data-dir", data, "--listen", "127.0.0.1:0"}
	addr, _, _, stop := startKMSD(t, append(base, "--root-token-file", tokFile)...)
	oldTok, rec := readToken(t, tokFile), readToken(t, tokFile+".recovery")
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vaultOverRATLS(t, addr, oldTok, be, be.DefaultPolicy).Logical().Write("transit/keys/app", nil); err != nil {
		t.Fatal(err)
	}
	newFile := filepath.Join(tmp, "new.token")
	gen := append(append([]string{}, base...), "--generate-root", "--root-token-file", newFile)

	// Not while kmsd holds the store.
	if code, _, stderr := tryKMSD(t, rec+"\n", gen...); code != 1 {
		t.Fatalf("generate-root while kmsd runs: exit %d\n%s", code, stderr)
	}
	stop()
	for _, bad := range []string{"", "ser.wrong\n"} {
		if code, started, stderr := tryKMSD(t, bad, gen...); code != 1 || started || !strings.Contains(stderr, "recovery key") {
			t.Fatalf("generate-root with recovery key %q: exit %d\n%s", bad, code, stderr)
		}
		if _, err := os.Stat(newFile); err == nil {
			t.Fatal("a refused generate-root left a token file")
		}
	}
	if code, started, stderr := tryKMSD(t, rec+"\n", gen...); code != 0 || started {
		t.Fatalf("generate-root: exit %d started %v\n%s", code, started, stderr)
	}
	newTok, newRec := readToken(t, newFile), readToken(t, newFile+".recovery")
	if newTok == oldTok || newRec == rec {
		t.Fatal("generate-root reused a secret")
	}

	addr, _, _, stop = startKMSD(t, append(base, "--root-token-file", tokFile)...)
	defer stop()
	if _, err := vaultOverRATLS(t, addr, oldTok, be, be.DefaultPolicy).Logical().Read("transit/keys/app"); err == nil {
		t.Error("the revoked root token still works")
	}
	if s, err := vaultOverRATLS(t, addr, newTok, be, be.DefaultPolicy).Logical().Read("transit/keys/app"); err != nil || s == nil {
		t.Errorf("the new root token: %v %v", s, err)
	}
}

func TestKMSDGenerateRootFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--simulation", "--generate-root", "--root-token-file", "x"},  // no data dir
		{"--simulation", "--generate-root", "--data-dir", t.TempDir()}, // no destination
	} {
		var b syncBuf
		if code := run(context.Background(), args, noEnv, strings.NewReader(""), io.Discard, &b, nil); code != 2 || !strings.Contains(b.String(), "--generate-root") {
			t.Errorf("%q: exit %d %q", args, code, b.String())
		}
	}
}
