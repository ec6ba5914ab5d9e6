package startup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/internal/durable"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
	"github.com/sharedenclave/sharedenclave/store/snapshot"
)

// CustodyFile is the file in a data directory that keeps its data key,
// sealed under the enclave's seal key, and its recovery record
// (custody.File).
const CustodyFile = "custody.json"

// custodyPurpose separates the key that seals the data key from every
// other key derived from the seal root.
func custodyPurpose(purpose string) string { return "custody/" + purpose }

// Sealed is a data directory whose data key does not open here (another
// CPU, another enclave identity) but that operators can recover with
// their shares: the service starts sealed and serves only its attestation
// and the recovery endpoint (package custody/unseal). Nothing was read
// from the store or written to the directory.
type Sealed struct {
	// Recovery is the directory's recovery record.
	Recovery *custody.Recovery

	s       *Server
	purpose string
	sealer  *seal.Sealer // this enclave's custody sealer
	log     *slog.Logger
}

// Open opens the store with a data key the operators recovered. It
// first checks that the store opens with it; only then does it re-seal
// the key under this enclave's seal key and replace the custody file (a
// new file renamed over the old one: a crash leaves the old wrapping or
// the new one). The caller owns the store.
func (z *Sealed) Open(dk *custody.DataKey) (*store.Store, error) {
	root, err := dk.Root()
	if err != nil {
		return nil, err
	}
	st, err := z.s.openStore(store.Options{Dir: z.s.DataDir, Root: root, Purpose: z.purpose, Logger: z.log})
	if err != nil {
		return nil, err
	}
	sealed, err := dk.Seal(z.sealer)
	if err == nil {
		err = writeCustody(z.s.DataDir, &custody.File{Version: 1, Sealed: sealed, Recovery: z.Recovery})
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("re-sealing the recovered data key: %w", err)
	}
	z.log.Info("data key recovered and re-sealed under this enclave's seal key", "data_dir", z.s.DataDir, "seal_policy", z.s.SealPolicy)
	return st, nil
}

// OpenStore opens the sealed store in s.DataDir for purpose ("relay",
// "kms") under s.SealPolicy, through the directory's data key:
//
//   - a new (missing or empty) directory gets a data key generated here,
//     sealed under the seal key, and, with --recovery-recipients, a
//     recovery record and one share file per operator, written before
//     anything is committed;
//   - a directory with a custody file opens with its sealed data key; if
//     that key does not open here and the directory has recovery shares,
//     OpenStore returns a *Sealed instead of a store;
//   - a directory made before custody opens, as before, directly under
//     the seal key (no recovery is possible for it).
//
// A directory sealed by another enclave identity without recovery is
// refused with one line saying so, naming the other seal policy if that
// one opens it: nothing is read from or written to it.
func (s *Server) OpenStore(be *backend.Backend, purpose string, log *slog.Logger) (*store.Store, *Sealed, error) {
	root, err := be.SealRoot(s.SealPolicy)
	if err != nil {
		return nil, nil, fmt.Errorf("seal key (--seal-policy %s): %w", s.SealPolicy, err)
	}
	var alts []store.Alternate
	for _, p := range []string{backend.SealMREnclave, backend.SealMRSigner} {
		if p == s.SealPolicy {
			continue
		}
		if r, err := be.SealRoot(p); err == nil {
			alts = append(alts, store.Alternate{Name: "--seal-policy " + p, Root: r})
		}
	}
	sealer, err := seal.NewSealer(root, custodyPurpose(purpose), 1)
	if err != nil {
		return nil, nil, err
	}
	state, err := dataDirState(s.DataDir)
	if err != nil {
		return nil, nil, err
	}
	switch state {
	case dirLegacy:
		if s.Handoff.From != "" {
			return nil, nil, fmt.Errorf("--handoff-from: %s was made before custody and has no data key to hand off", s.DataDir)
		}
		if s.RecoveryRecipients != "" {
			return nil, nil, fmt.Errorf("--recovery-recipients: %s was made before custody (its records are sealed directly under the seal key), so it has no data key to share; "+
				"drop the recovery flags to keep using it, or see docs/DEPLOY.md (\"Data dirs made before custody\")", s.DataDir)
		}
		log.Warn("data dir predates custody: its records are sealed directly under the seal key, so it cannot be recovered on another machine or build; see docs/DEPLOY.md",
			"data_dir", s.DataDir)
		st, err := s.openStore(store.Options{Dir: s.DataDir, Root: root, Purpose: purpose, Logger: log, Alternates: alts})
		return st, nil, err
	case dirNew:
		if s.Handoff.Join != "" {
			dk, err := s.JoinKey(context.Background(), be, purpose, log)
			if err != nil {
				return nil, nil, err
			}
			root, err := dk.Root()
			if err != nil {
				return nil, nil, err
			}
			st, err := s.openStore(store.Options{Dir: s.DataDir, Root: root, Purpose: purpose, Logger: log})
			return st, nil, err
		}
		if s.Handoff.From != "" {
			return nil, nil, fmt.Errorf("--handoff-from: %s is empty: a successor takes over the predecessor's data, so run it on the predecessor's data dir (or a copy of it, made while the predecessor was stopped)", s.DataDir)
		}
		st, err := s.createCustody(sealer, purpose, log)
		return st, nil, err
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, CustodyFile))
	if err != nil {
		return nil, nil, err
	}
	f, err := custody.ParseFile(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(s.DataDir, CustodyFile), err)
	}
	dk, err := custody.OpenSealed(sealer, f.Sealed)
	if err != nil {
		for _, a := range alts {
			alt, aerr := seal.NewSealer(a.Root, custodyPurpose(purpose), 1)
			if aerr != nil {
				continue
			}
			if _, aerr := custody.OpenSealed(alt, f.Sealed); aerr == nil {
				return nil, nil, fmt.Errorf("the data key of %s was sealed under the other seal policy: it opens with %s", s.DataDir, a.Name)
			}
		}
		if s.Handoff.From != "" {
			if s.RecoveryRecipients != "" && f.Recovery != nil && !f.Recovery.SameRecovery(s.recipients, s.RecoveryThreshold) {
				return nil, nil, errors.New("--recovery-recipients and --recovery-threshold differ from the recovery record of the data dir; a hand-off keeps the recovery shares it has (drop the recovery flags)")
			}
			log.Warn("the data key does not open with this build's seal key; taking it from the predecessor (--handoff-from)", "data_dir", s.DataDir, "from", s.Handoff.From)
			st, err := s.receiveHandoff(be, &Sealed{Recovery: f.Recovery, s: s, purpose: purpose, sealer: sealer, log: log})
			return st, nil, err
		}
		if f.Recovery == nil {
			return nil, nil, fmt.Errorf("the data key of %s does not open here: it was sealed by another enclave identity or on another CPU, and no recovery shares were made for it "+
				"(--recovery-recipients at its first start); run the build that sealed it, on its machine, or start with an empty directory", s.DataDir)
		}
		if s.RecoveryRecipients != "" && !f.Recovery.SameRecovery(s.recipients, s.RecoveryThreshold) {
			return nil, nil, errors.New("--recovery-recipients and --recovery-threshold differ from the recovery record of the data dir; recover with the shares it has (drop the recovery flags, or give the ones of its first start)")
		}
		log.Warn("SEALED: the data key does not open with this enclave's seal key (another CPU or another build); waiting for the operators' recovery shares",
			"data_dir", s.DataDir, "deployment", f.Recovery.Deployment, "threshold", f.Recovery.Threshold, "shares", f.Recovery.Shares)
		return nil, &Sealed{Recovery: f.Recovery, s: s, purpose: purpose, sealer: sealer, log: log}, nil
	}
	if s.Handoff.Join != "" {
		log.Info("--join: the data dir already holds the cluster data key (an earlier join completed); no join needed", "data_dir", s.DataDir)
	}
	if s.Handoff.From != "" {
		log.Info("--handoff-from: the data key already opens under this build's seal key (an earlier hand-off completed); no hand-off needed", "data_dir", s.DataDir)
	}
	if s.RecoveryRecipients != "" && f.Recovery != nil && !f.Recovery.SameRecovery(s.recipients, s.RecoveryThreshold) {
		return nil, nil, fmt.Errorf("--recovery-recipients, --recovery-threshold: the data dir already has recovery shares (%d-of-%d, deployment %s) for other recipients or another threshold; "+
			"changing them is not supported yet: give the flags of its first start, or drop them", f.Recovery.Threshold, f.Recovery.Shares, f.Recovery.Deployment)
	}
	dr, err := dk.Root()
	if err != nil {
		return nil, nil, err
	}
	st, err := s.openStore(store.Options{Dir: s.DataDir, Root: dr, Purpose: purpose, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	// Shares are made only for a data key the store opens with.
	if s.RecoveryRecipients != "" && f.Recovery == nil {
		if err := s.addRecovery(dk, f, purpose, log); err != nil {
			st.Close()
			return nil, nil, err
		}
	}
	return st, nil, nil
}

type dirState int

const (
	dirNew dirState = iota
	dirCustody
	dirLegacy
)

// dataDirState says what dir holds: a custody file; a store made before
// custody (Pebble's files, and no custody file); or
// nothing of ours (missing, empty, a fresh file system's lost+found, a
// temporary custody file left by a crash).
func dataDirState(dir string) (dirState, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dirNew, nil
	}
	if err != nil {
		return 0, fmt.Errorf("--data-dir: %w", err)
	}
	state := dirNew
	for _, e := range ents {
		switch n := e.Name(); {
		case n == CustodyFile:
			return dirCustody, nil
		case isPebbleFile(n):
			state = dirLegacy
		}
	}
	return state, nil
}

// isPebbleFile reports whether name is one of the files a Pebble store
// keeps in its directory.
func isPebbleFile(name string) bool {
	for _, p := range []string{"MANIFEST-", "OPTIONS-", "marker.", "CURRENT", "LOCK"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".log")
}

// createCustody makes a new data dir's data key, writes its recovery
// shares (if asked) and then the custody file, and opens the store. The
// custody file is the commit: until it is on disk nothing else is, and
// share files written for a start that failed are removed.
func (s *Server) createCustody(sealer *seal.Sealer, purpose string, log *slog.Logger) (*store.Store, error) {
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	dk, err := custody.NewDataKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	f := &custody.File{Version: 1}
	if f.Sealed, err = dk.Seal(sealer); err != nil {
		return nil, err
	}
	var written []string
	if s.RecoveryRecipients != "" {
		if f.Recovery, written, err = s.writeShares(dk, purpose, log); err != nil {
			return nil, err
		}
	}
	if err := writeCustody(s.DataDir, f); err != nil {
		removeAll(written)
		return nil, fmt.Errorf("--data-dir: writing the data key: %w", err)
	}
	root, err := dk.Root()
	if err != nil {
		return nil, err
	}
	st, err := s.openStore(store.Options{Dir: s.DataDir, Root: root, Purpose: purpose, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("new data dir: data key generated in the enclave and sealed", "data_dir", s.DataDir, "seal_policy", s.SealPolicy, "recovery", f.Recovery != nil)
	return st, nil
}

// addRecovery gives an existing data dir without recovery its shares.
func (s *Server) addRecovery(dk *custody.DataKey, f *custody.File, purpose string, log *slog.Logger) error {
	rec, written, err := s.writeShares(dk, purpose, log)
	if err != nil {
		return err
	}
	if err := writeCustody(s.DataDir, &custody.File{Version: 1, Sealed: f.Sealed, Recovery: rec}); err != nil {
		removeAll(written)
		return fmt.Errorf("--data-dir: writing the recovery record: %w", err)
	}
	f.Recovery = rec
	return nil
}

// writeShares makes the recovery record and writes one share file per
// recipient into --recovery-shares-dir: new files, mode 0600, fsynced
// with their directory. On error it removes what it wrote.
func (s *Server) writeShares(dk *custody.DataKey, purpose string, log *slog.Logger) (*custody.Recovery, []string, error) {
	rec, enc, err := custody.NewRecovery(dk, s.recipients, s.RecoveryThreshold, rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("--recovery-recipients, --recovery-threshold: %w", err)
	}
	if err := os.MkdirAll(s.RecoverySharesDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("--recovery-shares-dir: %w", err)
	}
	var written []string
	for i, e := range enc {
		path := filepath.Join(s.RecoverySharesDir, fmt.Sprintf("%s-%s-share-%d-of-%d.age", purpose, rec.Deployment[:8], i+1, rec.Shares))
		if err := writeNewSynced(path, e); err != nil {
			removeAll(written)
			return nil, nil, fmt.Errorf("--recovery-shares-dir: %w", err)
		}
		written = append(written, path)
	}
	if err := durable.SyncDir(s.RecoverySharesDir); err != nil {
		removeAll(written)
		return nil, nil, fmt.Errorf("--recovery-shares-dir: %w", err)
	}
	for i, p := range written {
		log.Info("recovery share written, encrypted to its operator", "file", p, "recipient", rec.Recipients[i])
	}
	log.Info("recovery shares made", "deployment", rec.Deployment, "threshold", rec.Threshold, "shares", rec.Shares)
	return rec, written, nil
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// writeNewSynced creates path (it must not exist), writes b, fsyncs.
func writeNewSynced(path string, b []byte) error {
	err := durable.WriteNew(path, bytes.NewReader(b))
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists and is never overwritten: move it away if it is from a start that did not finish, or choose another directory", path)
	}
	return err
}

// writeCustody replaces dir's custody file with f: a temporary file,
// fsynced, renamed over the old one, and the directory fsynced.
func writeCustody(dir string, f *custody.File) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, CustodyFile+".tmp")
	os.Remove(tmp)
	if err := writeNewSynced(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, CustodyFile)); err != nil {
		os.Remove(tmp)
		return err
	}
	return durable.SyncDir(dir)
}

// readRecipients reads --recovery-recipients: one age X25519 recipient
// per line; blank lines and lines starting with # are skipped.
func readRecipients(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--recovery-recipients: %v", err)
	}
	if len(b) > 64<<10 {
		return nil, fmt.Errorf("--recovery-recipients: %s is larger than 64 KiB", path)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := age.ParseX25519Recipient(line)
		if err != nil {
			return nil, fmt.Errorf("--recovery-recipients: %s line %d: not an age X25519 recipient (age1…, as `enclavectl custody keygen` prints): %v", path, n, err)
		}
		out = append(out, r.String())
	}
	return out, nil
}

// Backup writes a consistent copy of the open store st of s.DataDir into
// dir (which must not exist): a Pebble checkpoint of the sealed records,
// the custody file, then SHA256SUMS and SHA256SUMS.sealed (package
// store/snapshot), fsynced. The copy is a data dir: it opens where the
// data key's seal opens, and anywhere else through recovery. A data dir
// made before custody is copied too, but opens only on the same machine
// and build. It works on a running service: the checkpoint holds every
// write acknowledged before it began.
func (s *Server) Backup(st *store.Store, dir string, log *slog.Logger) error {
	if err := s.backup(st, dir, log); err != nil {
		return fmt.Errorf("--backup-to: %w", err)
	}
	return nil
}

func (s *Server) backup(st *store.Store, dir string, log *slog.Logger) (err error) {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s already exists; name a new directory", dir)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := st.Checkpoint(dir); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, CustodyFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		log.Warn("backup of a data dir made before custody: it opens only on this machine and build", "backup", dir)
	case err != nil:
		return err
	default:
		if err := writeNewSynced(filepath.Join(dir, CustodyFile), b); err != nil {
			return err
		}
	}
	if err := durable.SyncDir(dir); err != nil {
		return err
	}
	if err := snapshot.Finish(dir, st.Root(), snapshot.Meta{Purpose: st.Purpose(), Sequence: st.Sequence(), Taken: time.Now().UTC()}); err != nil {
		return err
	}
	log.Info("backup written", "backup", dir, "data_dir", s.DataDir, "sequence", st.Sequence())
	return nil
}

// WriteSnapshot takes a backup of the running service's store st and
// writes it to w as one archive (package store/snapshot: what `vault
// operator raft snapshot save` stores); PrepareSnapshot then the
// function it returns.
func (s *Server) WriteSnapshot(st *store.Store, w io.Writer, log *slog.Logger) error {
	write, err := s.PrepareSnapshot(st, log)
	if err != nil {
		return err
	}
	return write(w)
}

// PrepareSnapshot takes a backup of the running service's store st into
// a temporary directory inside the data dir (Pebble ignores it; the data
// dir is the one place a Gramine manifest is sure to let the enclave
// write, and hard links need the same file system) and returns the
// function that writes it as an archive and removes the directory. The
// backup is taken here, so that a failure (a full disk) is an error the
// caller can still answer; an error while writing leaves the archive
// without its last file, which readers refuse. A directory whose write
// never runs (the process killed) is removed at the next start.
func (s *Server) PrepareSnapshot(st *store.Store, log *slog.Logger) (func(io.Writer) error, error) {
	tmp, err := os.MkdirTemp(s.DataDir, ".snapshot-")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "backup")
	if err := s.backup(st, dir, log); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return func(w io.Writer) error {
		defer os.RemoveAll(tmp)
		return snapshot.Write(w, dir)
	}, nil
}

// checkRestored runs before a data dir's store is opened with the data
// key's root: a restored backup (it has SHA256SUMS.sealed) must be the
// one its sealed record describes, file for file; then the two sums
// files are removed (the store's files change once it is open) and the
// backup's sequence and time are logged. Whoever holds the files can
// remove SHA256SUMS.sealed first; docs/SECURITY.md says what that means.
func (s *Server) checkRestored(root *seal.Root, purpose string, log *slog.Logger) error {
	m, err := snapshot.OpenMeta(s.DataDir, root, purpose)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = snapshot.VerifyFiles(s.DataDir)
	}
	if err != nil {
		return fmt.Errorf("%s is a restored backup that does not check out: %w\nhint: restore the archive again (enclavectl backup restore); "+
			"to open the files as they are, remove %s and %s from it", s.DataDir, err, snapshot.SealedFile, snapshot.SumsFile)
	}
	for _, f := range []string{snapshot.SealedFile, snapshot.SumsFile} {
		if err := os.Remove(filepath.Join(s.DataDir, f)); err != nil {
			return err
		}
	}
	if err := durable.SyncDir(s.DataDir); err != nil {
		return err
	}
	log.Warn("opening a restored backup: its state is the one of when the backup was taken (later changes are not in it)",
		"data_dir", s.DataDir, "taken", m.Taken.Format(time.RFC3339), "sequence", m.Sequence)
	return nil
}
