package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sharedenclave/sharedenclave/seal"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt: a record was read and does not open (authentication of
	// the sealed envelope failed, or the envelope is malformed). It will
	// never open; callers refuse it and may delete it.
	ErrCorrupt = errors.New("store: record refused")
	// ErrIO: the storage could not be read (an I/O error, or a damaged
	// file Pebble detected). The record may be fine; callers must keep it
	// and report the error, never treat it as ErrCorrupt.
	ErrIO = errors.New("store: storage could not be read")
)

// Store is an embedded, durable key-value store (Pebble) that holds only
// sealed values. Keys are kind ‖ 0x00 ‖ key; callers blind keys that would
// reveal names (seal.Sealer.Blind). Every value is sealed with its kind and
// key in the associated data, so the host cannot swap or move records.
type Store struct {
	db      *pebble.DB
	root    *seal.Root
	purpose string
	sealer  atomic.Pointer[seal.Sealer]
	log     *slog.Logger
	seq     uint64
}

// Options configure Open.
type Options struct {
	Dir string
	// Root is the enclave's seal root; Purpose separates the keys of
	// different services ("relay", "kms") derived from it.
	Root    *seal.Root
	Purpose string
	Logger  *slog.Logger
	// FS is the filesystem Pebble uses; default the operating system's.
	// Tests inject failures through it (Pebble's vfs/errorfs).
	FS vfs.FS
	// CacheSize is Pebble's block cache in bytes; default 8 MiB.
	CacheSize int64
	// Alternates are other seal roots this enclave can derive (the other
	// seal policy). They never open data: when Dir was sealed by another
	// identity, Open tries them only to name, in its error, the one that
	// would open it.
	Alternates []Alternate
}

// Alternate is a seal root Open may name in a *SealedElsewhereError. Name
// is what the operator would change to use it, e.g. "--seal-policy mrsigner".
type Alternate struct {
	Name string
	Root *seal.Root
}

// ErrSealedElsewhere: the store was sealed by another enclave identity;
// none of its records open with this one's seal key.
var ErrSealedElsewhere = errors.New("store: sealed by another enclave identity")

// SealedElsewhereError is Open's refusal of a store sealed by another
// enclave identity. Nothing was read from it or written to it.
type SealedElsewhereError struct {
	Dir string
	// OpensWith is the Name of the Alternate that opens it, or "".
	OpensWith string
	// Tried are the names of the alternates tried.
	Tried []string
}

func (e *SealedElsewhereError) Error() string {
	msg := fmt.Sprintf("store: %s was sealed by another enclave identity: its records do not open with this enclave's seal key, so it is neither read nor written", e.Dir)
	if e.OpensWith != "" {
		return msg + "; it opens with " + e.OpensWith
	}
	if len(e.Tried) > 0 {
		msg += " (nor with " + strings.Join(e.Tried, ", ") + ")"
	}
	return msg + "; run the build that sealed it, or recover its data with that build, or start with an empty directory"
}

// Unwrap returns ErrSealedElsewhere.
func (e *SealedElsewhereError) Unwrap() error { return ErrSealedElsewhere }

// metaGeneration holds the current seal key generation, a big-endian
// u32, in the clear: it is not secret, and a host that rolls it back only
// makes newer records fail to open (refused), which it could do anyway.
var metaGeneration = []byte("store-meta\x00generation")

// metaCheck is a sealed record written when a store is created (or first
// opened by this version): Open checks it opens before anything else is
// read or written, so a store sealed by another enclave identity is
// refused at once, as a whole.
var metaCheck = []byte("store-meta\x00seal-check")

// metaSequence is a sealed counter, raised by one (synced) every time the
// store is opened: [Store.Sequence]. A copy of the store that is older
// than another has a lower sequence, which is how a rollback shows to
// whoever watches it (the enclave alone cannot tell an old copy from the
// latest one).
var metaSequence = []byte("sequence")

const metaKind = "store-meta"

// probeLimit is how many records Open tries on a store without metaCheck
// (made before it existed) before it concludes none opens.
const probeLimit = 64

// Open opens (or creates) the store in Dir.
func Open(o Options) (*Store, error) {
	if o.Root == nil {
		return nil, errors.New("store: no seal root: everything on disk is sealed")
	}
	if o.Purpose == "" {
		return nil, errors.New("store: no purpose")
	}
	if o.Dir == "" {
		return nil, errors.New("store: no directory")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger
	db, err := pebble.Open(o.Dir, &pebble.Options{
		FS:        o.FS,
		CacheSize: o.CacheSize,
		Logger:    pebbleLogger{o.Logger},
		EventListener: &pebble.EventListener{
			// Pebble's default is to exit the process. The host can corrupt
			// files at will; the affected reads fail (an error wrapping
			// ErrIO: the record is kept) and we say so, and keep serving the rest.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("storage corruption detected; affected records are refused", "path", info.Path, "err", info.Details)
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", o.Dir, err)
	}
	s := &Store{db: db, root: o.Root, purpose: o.Purpose, log: o.Logger}
	gen := uint32(1)
	if v, closer, err := db.Get(metaGeneration); err == nil {
		if len(v) == 4 {
			gen = binary.BigEndian.Uint32(v)
		}
		closer.Close()
		if gen == 0 {
			db.Close()
			return nil, fmt.Errorf("%w: seal generation 0 in %s", ErrCorrupt, o.Dir)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	sealer, err := seal.NewSealer(o.Root, o.Purpose, gen)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.sealer.Store(sealer)
	switch ok, err := s.opensWith(sealer); {
	case err != nil:
		db.Close()
		return nil, err
	case !ok:
		e := &SealedElsewhereError{Dir: o.Dir}
		for _, a := range o.Alternates {
			e.Tried = append(e.Tried, a.Name)
			alt, err := seal.NewSealer(a.Root, o.Purpose, gen)
			if err != nil {
				continue
			}
			if ok, _ := s.opensWith(alt); ok {
				e.OpensWith, e.Tried = a.Name, nil
				break
			}
		}
		db.Close()
		return nil, e
	}
	if _, closer, err := db.Get(metaCheck); errors.Is(err, pebble.ErrNotFound) {
		if err := s.Put(metaKind, metaCheck[len(metaKind)+1:], []byte(o.Purpose), Sync); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: writing the seal check record: %w", err)
		}
	} else if err == nil {
		closer.Close()
	}
	switch v, err := s.Get(metaKind, metaSequence); {
	case err == nil && len(v) == 8:
		s.seq = binary.BigEndian.Uint64(v)
	case err == nil:
		db.Close()
		return nil, fmt.Errorf("%w: the sequence record of %s", ErrCorrupt, o.Dir)
	case !errors.Is(err, ErrNotFound):
		db.Close()
		return nil, err
	}
	s.seq++
	if err := s.Put(metaKind, metaSequence, binary.BigEndian.AppendUint64(nil, s.seq), Sync); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: writing the sequence record: %w", err)
	}
	return s, nil
}

// Sequence is how many times this store has been opened, this time
// included (a sealed counter in the store). A backup records it.
func (s *Store) Sequence() uint64 { return s.seq }

// Purpose is the service the store belongs to ("relay", "kms").
func (s *Store) Purpose() string { return s.purpose }

// opensWith reports whether the store's records open with sealer: the
// seal check record if there is one; otherwise (an empty store, or one
// made before the check record existed) whether any of the first
// probeLimit records opens, or there are none.
func (s *Store) opensWith(sealer *seal.Sealer) (bool, error) {
	v, closer, err := s.db.Get(metaCheck)
	if err == nil {
		defer closer.Close()
		_, oerr := sealer.Open(metaKind, metaCheck, 0, v)
		if errors.Is(oerr, seal.ErrUnknownGeneration) {
			return false, fmt.Errorf("%w: the seal check record is of a newer key generation than the store says (rolled back?): %v", ErrCorrupt, oerr)
		}
		return oerr == nil, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return false, fmt.Errorf("%w: %w", ErrIO, err)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrIO, err)
	}
	defer it.Close()
	tried := 0
	for it.First(); it.Valid() && tried < probeLimit; it.Next() {
		k := it.Key()
		i := bytes.IndexByte(k, 0)
		if i < 0 || bytes.Equal(k, metaGeneration) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrIO, err)
		}
		tried++
		if _, err := sealer.Open(string(k[:i]), k, 0, v); err == nil {
			return true, nil
		}
	}
	if err := it.Error(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrIO, err)
	}
	return tried == 0, nil
}

// Rotate moves to a new seal key generation and re-seals every record
// under it. The new generation is recorded first, so a crash part way
// leaves records of both generations, all of which open; running Rotate
// again finishes the job. It returns how many records were re-sealed.
func (s *Store) Rotate() (int, error) {
	old := s.sealer.Load()
	next := old.Generation() + 1
	sealer, err := seal.NewSealer(s.root, s.purpose, next)
	if err != nil {
		return 0, err
	}
	if err := s.db.Set(metaGeneration, binary.BigEndian.AppendUint32(nil, next), pebble.Sync); err != nil {
		return 0, err
	}
	s.sealer.Store(sealer)
	it, err := s.db.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	b := s.db.NewBatch()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		i := bytes.IndexByte(k, 0)
		if i < 0 || bytes.Equal(k, metaGeneration) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			continue
		}
		if !sealer.NeedsReseal(v) {
			continue
		}
		kind := string(k[:i])
		p, err := old.Open(kind, k, 0, v)
		if err != nil {
			s.log.Error("not re-sealing a record that does not open", "kind", kind, "err", err)
			continue
		}
		c, err := sealer.Seal(kind, k, 0, p)
		if err != nil {
			return n, err
		}
		b.Set(bytes.Clone(k), c, nil)
		if kind != metaKind {
			n++
		}
		if b.Len() > 1<<20 {
			if err := b.Commit(pebble.Sync); err != nil {
				return n, err
			}
			b = s.db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return n, err
	}
	return n, it.Error()
}

// Close flushes and closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Root returns the seal root the store was opened with: the data key's,
// for a data dir with custody (kmsd --cluster seals its bucket under it).
func (s *Store) Root() *seal.Root { return s.root }

// Sealer returns the store's sealer (for blinding names).
func (s *Store) Sealer() *seal.Sealer { return s.sealer.Load() }

func dbKey(kind string, key []byte) []byte {
	k := make([]byte, 0, len(kind)+1+len(key))
	k = append(k, kind...)
	k = append(k, 0)
	return append(k, key...)
}

// Durability of a write.
type Durability bool

// Sync waits until the write is on disk (concurrent synced writes share
// one fsync: Pebble's group commit); NoSync returns once it is in the log
// buffer.
const (
	Sync   Durability = true
	NoSync Durability = false
)

func writeOpts(d Durability) *pebble.WriteOptions {
	if d {
		return pebble.Sync
	}
	return pebble.NoSync
}

// Put seals value and stores it under kind/key.
func (s *Store) Put(kind string, key, value []byte, d Durability) error {
	k := dbKey(kind, key)
	sealed, err := s.Sealer().Seal(kind, k, 0, value)
	if err != nil {
		return err
	}
	return s.db.Set(k, sealed, writeOpts(d))
}

// Get returns the opened value under kind/key: ErrNotFound; an error
// wrapping ErrCorrupt if the record was read and does not open; an error
// wrapping ErrIO if it could not be read.
func (s *Store) Get(kind string, key []byte) ([]byte, error) {
	k := dbKey(kind, key)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%x: %w", ErrIO, kind, key, err)
	}
	defer closer.Close()
	return s.open(kind, k, v)
}

func (s *Store) open(kind string, k, v []byte) ([]byte, error) {
	p, err := s.Sealer().Open(kind, k, 0, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%x: %v", ErrCorrupt, kind, k[len(kind)+1:], err)
	}
	return p, nil
}

// Sync makes every write made so far durable: one fsync of the log,
// shared with concurrent callers (group commit). Writes made with NoSync
// followed by Sync are as durable as writes made with Sync.
func (s *Store) Sync() error {
	return s.db.LogData(nil, pebble.Sync)
}

// Checkpoint writes a consistent snapshot of the store into dir, which
// must not exist: every write acknowledged before the call, sealed as it
// is on disk (hard links where the file system allows them). The snapshot
// is a store directory that Open opens with the same root.
func (s *Store) Checkpoint(dir string) error {
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

// Delete removes kind/key.
func (s *Store) Delete(kind string, key []byte, d Durability) error {
	return s.db.Delete(dbKey(kind, key), writeOpts(d))
}

// Batch groups writes into one atomic commit.
type Batch struct {
	s *Store
	b *pebble.Batch
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, b: s.db.NewBatch()} }

// Put adds a sealed Put to the batch.
func (b *Batch) Put(kind string, key, value []byte) error {
	k := dbKey(kind, key)
	sealed, err := b.s.Sealer().Seal(kind, k, 0, value)
	if err != nil {
		return err
	}
	return b.b.Set(k, sealed, nil)
}

// Delete adds a Delete to the batch.
func (b *Batch) Delete(kind string, key []byte) error { return b.b.Delete(dbKey(kind, key), nil) }

// Commit writes the batch atomically.
func (b *Batch) Commit(d Durability) error {
	defer b.b.Close()
	return b.b.Commit(writeOpts(d))
}

// Scan calls fn for every record of kind whose key starts with prefix, in
// key order, with the opened value or the error that refused it (wrapping
// ErrCorrupt if it does not open, ErrIO if its value could not be read).
// A record that does not open is never given to fn as data. An iteration
// that cannot go on returns an error wrapping ErrIO.
// fn's slices are valid only during the call.
func (s *Store) Scan(kind string, prefix []byte, fn func(key, value []byte, err error) error) error {
	lower := dbKey(kind, prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		v, verr := it.ValueAndErr()
		var p []byte
		if verr != nil {
			verr = fmt.Errorf("%w: %s/%x: %w", ErrIO, kind, k[len(kind)+1:], verr)
		} else {
			p, verr = s.open(kind, k, v)
		}
		if err := fn(k[len(kind)+1:], p, verr); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return nil
}

// prefixEnd is the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// pebbleLogger routes Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
