package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
)

// TestRelaydRefusesDataDirOfAnotherEnclave is issue 12 item 2: after a
// rebuild (another MRENCLAVE) relayd used to start on the old data dir,
// refuse its records one by one, and store new ones beside them. It must
// refuse to start, in one line that says which seal policy would open the
// directory, or that none does.
func TestRelaydRefusesDataDirOfAnotherEnclave(t *testing.T) {
	tmp := t.TempDir()
	simDir := filepath.Join(tmp, "sim")
	p, err := sim.Init(simDir, sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sealWith := func(dir string, root *seal.Root) {
		st, err := store.Open(store.Options{Dir: dir, Root: root, Purpose: "relay"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put("relay/test", []byte("k"), []byte("bob"), store.Sync); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	// Sealed under the signer policy, by any build of this signer.
	bySigner := filepath.Join(tmp, "by-signer")
	signerRoot, err := p.SealRoot(p.MRSigner())
	if err != nil {
		t.Fatal(err)
	}
	sealWith(bySigner, signerRoot)
	// Sealed under the enclave policy by another build.
	byOtherBuild := filepath.Join(tmp, "by-other-build")
	otherRoot, err := p.SealRoot(attest.Hash32{0x42})
	if err != nil {
		t.Fatal(err)
	}
	sealWith(byOtherBuild, otherRoot)

	refused := func(data, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out syncBuf
		ready := make(chan string, 1)
		code := run(ctx, []string{"--simulation", "--sim-dir", simDir, "--data-dir", data, "--listen", "127.0.0.1:0", "--log-level", "error"}, noEnv, io.Discard, &out, ready)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if code != 1 || len(ready) != 0 {
			t.Fatalf("relayd on %s: exit %d, want 1 without listening:\n%s", filepath.Base(data), code, out.String())
		}
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "relayd: ") || !strings.Contains(last, "sealed by another enclave identity") || !strings.Contains(last, want) {
			t.Fatalf("relayd on %s said %q, want one line naming %q", filepath.Base(data), last, want)
		}
		for _, l := range lines[:len(lines)-1] {
			if strings.Contains(l, "refusing") {
				t.Errorf("records refused one by one: %s", l)
			}
		}
	}
	refused(bySigner, "it opens with --seal-policy mrsigner")
	refused(byOtherBuild, "run the build that sealed it")

	// The hint is right: with it, relayd starts and the record is there.
	_, logs, stop := startRun(t, "--simulation", "--sim-dir", simDir, "--data-dir", bySigner, "--seal-policy", "mrsigner", "--listen", "127.0.0.1:0")
	stop()
	if strings.Contains(logs.String(), "refusing") {
		t.Errorf("relayd with --seal-policy mrsigner refused records:\n%s", logs.String())
	}
	// Nothing was written into the other build's directory: it still opens
	// for that build, with its one record.
	st, err := store.Open(store.Options{Dir: byOtherBuild, Root: otherRoot, Purpose: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	st.Scan("relay/test", nil, func(_, v []byte, err error) error {
		if err != nil || string(v) != "bob" {
			t.Errorf("record %q %v", v, err)
		}
		n++
		return nil
	})
	for _, kind := range []string{"relay/mailbox", "relay/msg"} {
		st.Scan(kind, nil, func(_, _ []byte, _ error) error { n++; return nil })
	}
	if n != 1 {
		t.Fatalf("%d records in the other build's directory, want its 1", n)
	}
}
