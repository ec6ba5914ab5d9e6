package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sharedenclave/sharedenclave/store/snapshot"
)

const backupUsage = `Usage: enclavectl backup COMMAND

The operator's side of backups (docs/DEPLOY.md, "Backups"). A backup is one
archive of a data dir's sealed files: nothing in it opens without the
enclave's seal key or k operators' recovery shares.

Commands:
  enclavectl backup save --out FILE [--addr HOST:PORT] [--policy FILE] [flags]
        take a snapshot of a running kmsd (Vault's sys/storage/raft/snapshot)
        after verifying its quote; the token (root, or sudo on that path)
        comes from --token-file or $SHARED_ENCLAVE_TOKEN. For a running
        relayd: curl -X POST http://METRICS-ADDR/backup (relayd --backup-dir)
  enclavectl backup check SNAPSHOT
        check that an archive is complete and every file matches its
        SHA256SUMS (no key is needed, nothing is written)
  enclavectl backup restore SNAPSHOT --data-dir DIR
        unpack an archive into the new directory DIR, all or nothing; then
        start kmsd or relayd on DIR: on the machine and build that took it
        it opens at once, anywhere else through recovery
`

func backupCmd(ctx context.Context, sub string, args []string, env func(string) string, stdout, stderr io.Writer) int {
	switch sub {
	case "save":
		return backupSave(ctx, args, env, stdout, stderr)
	case "check", "restore":
		return backupLocal(sub, args, stdout, stderr)
	}
	return unknownSub(stderr, "backup", sub)
}

func backupSave(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("backup save", "backup save --out FILE [flags]", args, stdout, stderr)
	kf := addKMSFlags(fs)
	out := fs.String("out", "", "file to write the snapshot to (must not exist; written whole or not at all)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, "unexpected arguments %q", pos)
	}
	if *out == "" {
		return usageErr(stderr, fs, "--out FILE is required")
	}
	if _, err := os.Lstat(*out); err == nil {
		return usageErr(stderr, fs, "--out %s already exists: name a new file", *out)
	}
	tok, err := kf.token(env)
	if errors.Is(err, errNoToken) {
		return usageErr(stderr, fs, "%v", err)
	}
	if err != nil {
		return fail(stderr, "backup save", err, "give a readable file holding the token")
	}
	c, err := kf.client(tok)
	if err != nil {
		hint, e := kmsError(err, kf)
		return fail(stderr, "backup save", e, hint)
	}
	// A snapshot of a large store takes longer than an API call.
	c.SetClientTimeout(time.Hour)
	f, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-")
	if err != nil {
		return fail(stderr, "backup save", err, "")
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := c.Sys().RaftSnapshotWithContext(ctx, f); err != nil {
		hint, e := kmsError(err, kf)
		if hint == "" {
			hint = "nothing was written; try again"
		}
		return fail(stderr, "backup save", e, hint)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(stderr, "backup save", err, "")
	}
	sum, err := snapshot.Check(f, snapshot.Limits{})
	if err != nil {
		return fail(stderr, "backup save", err, "kmsd sent an archive that does not check out; nothing was written")
	}
	if err := f.Sync(); err != nil {
		return fail(stderr, "backup save", err, "")
	}
	if err := f.Close(); err != nil {
		return fail(stderr, "backup save", err, "")
	}
	if err := os.Link(f.Name(), *out); err != nil { // never replaces an existing file
		return fail(stderr, "backup save", err, "")
	}
	os.Remove(f.Name())
	done = true
	fmt.Fprintf(stdout, "saved %s: %d files, %d bytes before compression\n", *out, sum.Files, sum.Bytes)
	return 0
}

func backupLocal(sub string, args []string, stdout, stderr io.Writer) int {
	synopsis := "backup check SNAPSHOT"
	if sub == "restore" {
		synopsis = "backup restore SNAPSHOT --data-dir DIR"
	}
	fs := newFlagsHelpOut("backup "+sub, synopsis, args, stdout, stderr)
	var dir *string
	if sub == "restore" {
		dir = fs.String("data-dir", "", "the new data dir to unpack into (must not exist)")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, fs, "want the SNAPSHOT file, got %d arguments", len(pos))
	}
	if dir != nil && *dir == "" {
		return usageErr(stderr, fs, "--data-dir DIR is required: the new directory to restore into")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fail(stderr, "backup "+sub, err, "")
	}
	defer f.Close()
	if sub == "check" {
		sum, err := snapshot.Check(f, snapshot.Limits{})
		if err != nil {
			return fail(stderr, "backup check", err, "the archive is incomplete or altered: take another backup")
		}
		fmt.Fprintf(stdout, "complete: %d files, %d bytes before compression, each matching SHA256SUMS\n", sum.Files, sum.Bytes)
		return 0
	}
	sum, err := snapshot.Extract(f, *dir, snapshot.Limits{})
	if err != nil {
		return fail(stderr, "backup restore", err, "nothing was written; check the archive with `enclavectl backup check`")
	}
	fmt.Fprintf(stdout, "restored %d files into %s; start the service with --data-dir %s (elsewhere it starts sealed and opens through recovery)\n", sum.Files, *dir, *dir)
	return 0
}
