package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
)

// predecessor runs this test binary as the old kmsd build with
// --handoff-listen and returns the address it waits on and the process.
func predecessor(t *testing.T, args ...string) (string, *exec.Cmd, *syncBuf) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--handoff-listen", "127.0.0.1:0", "--log-format", "json")...)
	cmd.Env = append(os.Environ(), "KMSD_TEST_CHILD=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	logs := &syncBuf{}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		logs.Write(append(sc.Bytes(), '\n'))
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && strings.HasPrefix(rec.Msg, "hand-off: waiting") {
			go func() {
				for sc.Scan() {
					logs.Write(append(sc.Bytes(), '\n'))
				}
			}()
			return rec.Addr, cmd, logs
		}
	}
	t.Fatalf("the predecessor did not start its hand-off:\n%s", logs)
	return "", nil, nil
}

// runFails runs exe and expects it to exit with an error, returning stderr.
func runFails(t *testing.T, exe string, args ...string) string {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "KMSD_TEST_CHILD=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("%s %v: exited 0, want a refusal\n%s", exe, args, stderr.String())
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s %v: still running after 90 s\n%s", exe, args, stderr.String())
	}
	return stderr.String()
}

func writePolicy(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKMSDHandoffToASuccessorBuild is issue 14's upgrade without
// operators: the old build (this test binary) runs with --handoff-listen
// on its data dir; a successor build (another MRENCLAVE, same signer and
// product) started on the same dir with --handoff-from takes the data key
// over mutual attestation, re-seals it, and decrypts what the old build
// encrypted. Its next start needs no predecessor. Successors outside the
// hand-off policy (SVN below the minimum, another signer, an MRENCLAVE
// not listed) learn nothing, and nothing in the data dir changes.
func TestKMSDHandoffToASuccessorBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kmsd processes")
	}
	tmp := t.TempDir()
	simA, data := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	ct, tok, shares := firstStart(t, tmp, simA, data)
	exe := rebuilt(t, tmp)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--simulation", "--sim-dir", simA, "--data-dir", data, "--audit-log", filepath.Join(tmp, "audit.log")}

	// Successors the policy refuses.
	other := strings.Repeat("ab", 32)
	refusals := []struct{ name, policy, rule string }{
		{"below the minimum SVN", fmt.Sprintf("[peers]\nmrsigner = [%q]\nisvprodid = 3\nmin_isvsvn = 2\nallow_simulated = true\n", be.Platform.MRSigner()), "ISVSVN 1 is below the minimum 2"},
		{"another signer", fmt.Sprintf("[peers]\nmrsigner = [%q]\nallow_simulated = true\n", other), "MRSIGNER"},
		{"MRENCLAVE not listed", fmt.Sprintf("[peers]\nmrenclave = [%q]\nallow_simulated = true\n", other), "MRENCLAVE"},
	}
	for i, r := range refusals {
		pol := writePolicy(t, tmp, fmt.Sprintf("refuse%d.toml", i), r.policy)
		addr, pred, plogs := predecessor(t, append(base, "--handoff-policy", pol)...)
		before := custodytest.HashDir(t, data)
		out := runFails(t, exe, append(base, "--listen", "127.0.0.1:0", "--handoff-from", addr)...)
		if !strings.Contains(out, "hand-off") || !strings.Contains(out, r.rule) {
			t.Fatalf("%s: the successor's error does not say why:\n%s", r.name, out)
		}
		if custodytest.HashDir(t, data) != before {
			t.Fatalf("%s: the data dir changed after a refused hand-off", r.name)
		}
		if !strings.Contains(plogs.String(), "refused or failed") {
			t.Fatalf("%s: the predecessor did not log the refusal:\n%s", r.name, plogs)
		}
		pred.Process.Kill()
		pred.Wait()
	}

	// Without a predecessor the successor says what to do.
	if out := runFails(t, exe, append(base, "--listen", "127.0.0.1:0", "--handoff-from", "127.0.0.1:1")...); !strings.Contains(out, "--handoff-listen") {
		t.Fatalf("no predecessor: %s", out)
	}

	// The default policy: same signer and product, SVN at least the old one.
	addr, pred, plogs := predecessor(t, base...)
	ch := startChild(t, exe, append(base, "--listen", "127.0.0.1:0", "--handoff-from", addr)...)
	if ch.sealed {
		t.Fatal("the successor started sealed after the hand-off")
	}
	decryptHello(t, vaultOverRATLS(t, ch.addr, tok, be, be.DefaultPolicy), ct)
	waitExit(t, pred, plogs)
	ch.cmd.Process.Signal(syscall.SIGTERM)
	ch.cmd.Wait()

	// The successor's next start opens alone; the old build's wrapping is
	// gone (it would start sealed and ask for recovery shares).
	ch = startChild(t, exe, append(base, "--listen", "127.0.0.1:0")...)
	if ch.sealed {
		t.Fatal("the successor's restart is sealed")
	}
	decryptHello(t, vaultOverRATLS(t, ch.addr, tok, be, be.DefaultPolicy), ct)
	ch.cmd.Process.Signal(syscall.SIGTERM)
	ch.cmd.Wait()
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte(tok)), data)
}

func waitExit(t *testing.T, cmd *exec.Cmd, logs *syncBuf) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the predecessor exited with %v:\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the predecessor did not exit after the hand-off:\n%s", logs)
	}
}

// TestKMSDHandoffKill9 kills the successor with SIGKILL at several
// moments of a hand-off. After every kill the data dir opens under the
// old build's wrapping (the successor, started again, takes the key
// again) or the new one (it opens alone), never neither, and the key
// encrypted by the old build still decrypts.
func TestKMSDHandoffKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	tmp := t.TempDir()
	simA, data := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	ct, tok, _ := firstStart(t, tmp, simA, data)
	exe := rebuilt(t, tmp)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	pristine := filepath.Join(tmp, "pristine")
	copyDir(t, data, pristine)
	base := []string{"--simulation", "--sim-dir", simA, "--data-dir", data, "--audit-log", filepath.Join(tmp, "audit.log")}
	old, renewed := 0, 0
	for round, delay := range []time.Duration{0, 2, 5, 10, 20, 40, 80} {
		os.RemoveAll(data)
		copyDir(t, pristine, data)
		addr, pred, _ := predecessor(t, base...)
		cmd := exec.Command(exe, append(base, "--listen", "127.0.0.1:0", "--handoff-from", addr)...)
		cmd.Env = append(os.Environ(), "KMSD_TEST_CHILD=1")
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// Which wrapping did the kill leave? The old custody file, or the
		// successor's.
		was, _ := os.ReadFile(filepath.Join(pristine, startup.CustodyFile))
		now, err := os.ReadFile(filepath.Join(data, startup.CustodyFile))
		if err != nil {
			t.Fatalf("round %d: custody file: %v", round, err)
		}
		if _, err := custody.ParseFile(now); err != nil {
			t.Fatalf("round %d: custody file after the kill: %v", round, err)
		}
		// Start the successor again (the predecessor waits on while the
		// key has not been confirmed stored): it must open either way.
		ch := startChild(t, exe, append(base, "--listen", "127.0.0.1:0", "--handoff-from", addr)...)
		if ch.sealed {
			t.Fatalf("round %d: sealed after the kill", round)
		}
		decryptHello(t, vaultOverRATLS(t, ch.addr, tok, be, be.DefaultPolicy), ct)
		ch.cmd.Process.Signal(syscall.SIGKILL)
		ch.cmd.Wait()
		pred.Process.Kill()
		pred.Wait()
		if bytes.Equal(was, now) {
			old++
		} else {
			renewed++
		}
	}
	t.Logf("7 SIGKILLs during hand-offs: %d left the old wrapping, %d the new one; every data dir opened", old, renewed)
}
