package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/kms"
	"github.com/sharedenclave/sharedenclave/kms/kmstest"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
	"github.com/sharedenclave/sharedenclave/store/snapshot"
)

// TestBackupCommands: save a snapshot from a KMS after verifying its
// quote, check it, restore it into a new dir whose store opens with the
// same key and holds the record; every misuse is refused and writes
// nothing.
func TestBackupCommands(t *testing.T) {
	tmp := t.TempDir()
	root, err := seal.NewRoot(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(tmp, "live"), Root: root, Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put("k", []byte("name"), []byte("the record"), store.Sync); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(tmp, "backup")
	if err := st.Checkpoint(backup); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := snapshot.Finish(backup, root, snapshot.Meta{Purpose: "kms", Taken: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sim := filepath.Join(tmp, "sim")
	addr, tok := kmstest.StartSimConfig(t, sim, kms.Config{Snapshot: func() (func(io.Writer) error, error) {
		return func(w io.Writer) error { return snapshot.Write(w, backup) }, nil
	}})
	tokFile := filepath.Join(tmp, "tok")
	os.WriteFile(tokFile, []byte(tok+"\n"), 0o600)
	common := []string{"--addr", addr, "--simulation", "--sim-dir", sim, "--token-file", tokFile}
	out := filepath.Join(tmp, "kms.snap")

	code, stdout, stderr := runCmd(t, append([]string{"backup", "save", "--out", out}, common...)...)
	if code != 0 || !strings.Contains(stdout, "saved "+out) {
		t.Fatalf("backup save: %d %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, append([]string{"backup", "save", "--out", out}, common...)...); code != 2 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("backup save over an existing file: %d %q", code, stderr)
	}
	if code, stdout, _ := runCmd(t, "backup", "check", out); code != 0 || !strings.Contains(stdout, "complete") {
		t.Fatalf("backup check: %d %q", code, stdout)
	}
	dir := filepath.Join(tmp, "restored")
	if code, stdout, stderr := runCmd(t, "backup", "restore", out, "--data-dir", dir); code != 0 || !strings.Contains(stdout, "restored") {
		t.Fatalf("backup restore: %d %q %q", code, stdout, stderr)
	}
	rs, err := store.Open(store.Options{Dir: dir, Root: root, Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rs.Get("k", []byte("name")); err != nil || string(v) != "the record" {
		t.Fatalf("restored record: %q %v", v, err)
	}
	rs.Close()
	if code, _, stderr := runCmd(t, "backup", "restore", out, "--data-dir", dir); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("restore into an existing dir: %d %q", code, stderr)
	}

	// A damaged archive: check and restore refuse it, restore leaves nothing.
	b, _ := os.ReadFile(out)
	bad := filepath.Join(tmp, "bad.snap")
	os.WriteFile(bad, b[:len(b)-40], 0o600)
	if code, _, stderr := runCmd(t, "backup", "check", bad); code != 1 || !strings.Contains(stderr, "incomplete or altered") {
		t.Fatalf("check a cut archive: %d %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "backup", "restore", bad, "--data-dir", filepath.Join(tmp, "r2")); code != 1 {
		t.Fatal("restored a cut archive")
	}
	if _, err := os.Stat(filepath.Join(tmp, "r2")); !os.IsNotExist(err) {
		t.Fatal("a refused restore left a directory")
	}

	// A KMS without a data dir has nothing to snapshot; no file is left.
	maddr, mtok := kmstest.StartSim(t, sim)
	os.WriteFile(tokFile, []byte(mtok), 0o600)
	none := filepath.Join(tmp, "none.snap")
	if code, _, stderr := runCmd(t, "backup", "save", "--out", none, "--addr", maddr, "--simulation", "--sim-dir", sim, "--token-file", tokFile); code != 1 || !strings.Contains(stderr, "memory-only") {
		t.Fatalf("save from a memory-only kms: %d %q", code, stderr)
	}
	if ents, _ := filepath.Glob(filepath.Join(tmp, "*none.snap*")); len(ents) != 0 {
		t.Fatalf("a failed save left %v", ents)
	}
	for _, args := range [][]string{{"backup", "save"}, {"backup", "restore", out}, {"backup", "check"}, {"backup", "bogus"}} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
