package startup

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sharedenclave/sharedenclave/internal/durable"
	"github.com/sharedenclave/sharedenclave/store"
)

// BackupDir serves online backups of a running service into a directory
// the host chose at start (relayd --backup-dir): POST /backup on the
// metrics listener writes DIR/<purpose>-<UTC time>.snap, a snapshot
// archive (package store/snapshot), through a temporary file that is
// fsynced and renamed, and answers with its name. No byte of it crosses
// the network: the caller can only make the service write a backup where
// the host already keeps its data.
type BackupDir struct {
	s       *Server
	st      *store.Store
	dir     string
	purpose string
	log     *slog.Logger
	mu      sync.Mutex
}

// NewBackupDir prepares dir (created 0700 if missing) and removes the
// partial files a killed process left in it.
func (s *Server) NewBackupDir(st *store.Store, dir string, log *slog.Logger) (*BackupDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--backup-dir: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(dir, ".*.snap.partial-*"))
	for _, f := range stale {
		if os.Remove(f) == nil {
			log.Info("removed the partial file of an interrupted backup", "file", f)
		}
	}
	return &BackupDir{s: s, st: st, dir: dir, purpose: st.Purpose(), log: log}, nil
}

// Take writes one backup and returns its path.
func (b *BackupDir) Take() (path string, size int64, err error) {
	if !b.mu.TryLock() {
		return "", 0, errBackupBusy
	}
	defer b.mu.Unlock()
	name := b.purpose + "-" + time.Now().UTC().Format("20060102T150405.000Z") + ".snap"
	f, err := os.CreateTemp(b.dir, "."+name+".partial-")
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = b.s.WriteSnapshot(b.st, f, b.log); err != nil {
		return "", 0, err
	}
	if err = f.Sync(); err != nil {
		return "", 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if err = f.Close(); err != nil {
		return "", 0, err
	}
	path = filepath.Join(b.dir, name)
	if _, serr := os.Lstat(path); serr == nil {
		return "", 0, fmt.Errorf("%s already exists", path)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return "", 0, err
	}
	return path, fi.Size(), durable.SyncDir(b.dir)
}

var errBackupBusy = fmt.Errorf("a backup is being written; try again when it is done")

// ServeHTTP answers POST /backup: 200 {"file", "bytes", "sequence"}, 409
// while another backup runs, 500 with the reason if it failed (nothing
// is left behind).
func (b *BackupDir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A large store takes longer than the metrics server's write timeout.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	w.Header().Set("Content-Type", "application/json")
	path, size, err := b.Take()
	switch {
	case err == errBackupBusy:
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
	case err != nil:
		b.log.Error("online backup failed", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]any{"error": "backup failed: " + err.Error()})
	default:
		b.log.Info("online backup written", "file", path, "bytes", size, "sequence", b.st.Sequence())
		json.NewEncoder(w).Encode(map[string]any{"file": path, "bytes": size, "sequence": b.st.Sequence()})
	}
}
