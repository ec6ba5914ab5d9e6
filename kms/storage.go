package kms

import (
	"context"
	"errors"
	"sync"

	"github.com/sharedenclave/sharedenclave/store"
)

// Storage is where a Service keeps its records: the embedded Pebble store
// (Config.Store, one kmsd) or a shared one that several replicas write
// (Config.Storage, e.g. package kms/jetstream: a JetStream key-value
// bucket). Records are named by a kind ("kms/key", "kms/token", …) and a
// key (a blinded name, a token hash). Every write is a compare-and-set on
// the record's revision, so that two replicas never both turn version 2
// of a key into two different version 3s: the loser gets ErrConflict,
// reloads and tries again.
type Storage interface {
	// Blind returns the record key for a name that the storage's
	// operator must not read (a keyed hash).
	Blind(name string) []byte
	// Get returns a record's value and revision, or an error wrapping
	// store.ErrNotFound.
	Get(kind string, key []byte) (value []byte, rev uint64, err error)
	// Put stores value if the record's revision is still rev (0: the
	// record has never existed here, or this replica has not seen it)
	// and returns the new revision; ErrConflict if it has changed.
	Put(kind string, key, value []byte, rev uint64) (uint64, error)
	// Delete removes the record under the same condition and returns the
	// revision of the deletion.
	Delete(kind string, key []byte, rev uint64) (uint64, error)
	// Scan calls fn for every record of kind, with the error that refused
	// it if it does not open.
	Scan(kind string, fn func(key, value []byte, rev uint64, err error) error) error
}

// Shared is a Storage that other replicas write too. A Service on one
// keeps a copy of every record, fed by Watch, and calls Barrier before
// every request, so that it serves what every replica committed before
// the request arrived: a token revoked on one replica is refused by all
// once the revocation has returned, and a key rotated on one is used at
// its new version by the next request anywhere.
type Shared interface {
	Storage
	// Watch calls apply for every record and then for every change, in
	// commit order, from one goroutine; value nil means deleted. It
	// returns once the watch is set up.
	Watch(apply func(kind string, key, value []byte, rev uint64)) error
	// Barrier returns once apply has been called for every change
	// committed before Barrier was called, or the context's error.
	Barrier(ctx context.Context) error
}

// ErrConflict: the record changed since the revision the write expected
// (another replica wrote it). The Service reloads and retries.
var ErrConflict = errors.New("kms: the record was changed by another replica")

// maxConflictRetries bounds how often a request is retried after a
// conflict before it is answered 503.
const maxConflictRetries = 32

// recInfo is what the service knows of a stored record besides its value:
// its revision and, for keys and policies, the name whose blind is its
// key (so that a deletion seen from another replica can be applied).
type recInfo struct {
	rev  uint64
	name string
}

func recKey(kind string, key []byte) string { return kind + "\x00" + string(key) }

// barrier waits, on shared storage, until this replica has seen every
// change committed before the call.
func (s *Service) barrier(ctx context.Context) error {
	if s.shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StorageTimeout)
	defer cancel()
	if err := s.shared.Barrier(ctx); err != nil {
		s.log.Error("cluster storage barrier failed", "err", err)
		return errStorageUnavailable
	}
	return nil
}

var errStorageUnavailable = &Error{Status: 503, Msg: "the cluster storage did not answer in time: the request was not performed; retry (and check the NATS cluster)"}

var errTooManyConflicts = &Error{Status: 503, Msg: "the record was changed by other replicas at every try: the request was not performed; retry"}

// retry runs fn until it does not fail with ErrConflict, waiting for the
// storage barrier between tries.
func (s *Service) retry(ctx context.Context, fn func() error) error {
	for i := 0; ; i++ {
		err := fn()
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if i == maxConflictRetries {
			return errTooManyConflicts
		}
		if berr := s.barrier(ctx); berr != nil {
			return berr
		}
	}
}

// persistRec writes a record (compare-and-set on the revision this
// service last saw) and records its new revision; s.mu is held.
func (s *Service) persistRec(kind string, key []byte, name string, b []byte) error {
	if s.st == nil {
		return nil
	}
	rk := recKey(kind, key)
	rev, err := s.st.Put(kind, key, b, s.recs[rk].rev)
	if err != nil {
		return err
	}
	s.recs[rk] = recInfo{rev: rev, name: name}
	return nil
}

// removeRec deletes a record (compare-and-set); s.mu is held.
func (s *Service) removeRec(kind string, key []byte) error {
	if s.st == nil {
		return nil
	}
	rk := recKey(kind, key)
	rev, err := s.st.Delete(kind, key, s.recs[rk].rev)
	if err != nil {
		return err
	}
	s.recs[rk] = recInfo{rev: rev}
	return nil
}

// op is one write of a group (revocations, a new root token).
type op struct {
	kind  string
	key   []byte
	name  string
	value []byte // nil: delete
}

// batcher is storage that commits a group of writes atomically (Pebble).
type batcher interface {
	commit(ops []op, revs []uint64) ([]uint64, error)
}

// write commits ops: atomically where the storage can (Pebble), else one
// by one in the order given (callers order them so that a failure part
// way leaves nothing weaker than before: children revoked before their
// parent). s.mu is held.
func (s *Service) write(ops []op) error {
	if s.st == nil {
		return nil
	}
	if b, ok := s.st.(batcher); ok {
		revs := make([]uint64, len(ops))
		for i, o := range ops {
			revs[i] = s.recs[recKey(o.kind, o.key)].rev
		}
		out, err := b.commit(ops, revs)
		if err != nil {
			return err
		}
		for i, o := range ops {
			s.recs[recKey(o.kind, o.key)] = recInfo{rev: out[i], name: o.name}
		}
		return nil
	}
	for _, o := range ops {
		var err error
		if o.value == nil {
			err = s.removeRec(o.kind, o.key)
		} else {
			err = s.persistRec(o.kind, o.key, o.name, o.value)
		}
		if err != nil {
			return err
		}
		// Each write that succeeded shows at once in this replica's copy,
		// even if a later one fails: the watch skips revisions the copy
		// already has.
		if o.value == nil {
			s.unload(o.kind, o.key, o.name)
		} else if _, err := s.load(o.kind, o.key, o.value); err != nil {
			return err
		}
	}
	return nil
}

// apply takes a change seen on shared storage into the service's copy,
// unless this replica already has that revision or a newer one.
func (s *Service) apply(kind string, key, value []byte, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rk := recKey(kind, key)
	cur := s.recs[rk]
	if rev <= cur.rev {
		return
	}
	if value == nil {
		s.unload(kind, key, cur.name)
		s.recs[rk] = recInfo{rev: rev}
		return
	}
	name, err := s.load(kind, key, value)
	if err != nil {
		s.log.Error("refusing a record from the cluster storage", "kind", kind, "err", err)
		return
	}
	s.recs[rk] = recInfo{rev: rev, name: name}
}

// unload drops a deleted record from the copy; s.mu is held.
func (s *Service) unload(kind string, key []byte, name string) {
	switch kind {
	case kindKey:
		delete(s.keys, name)
	case kindPolicy:
		delete(s.policies, name)
	case kindToken:
		if len(key) == 32 {
			s.dropToken([32]byte(key))
		}
	case kindRecovery:
		s.recovery = nil
	}
	// The wrapping key, once read, stays: kmsd never deletes it.
}

// pebbleStorage is Storage over the embedded store. One process owns a
// Pebble directory (Pebble locks it), so revisions are a counter kept in
// memory: the compare-and-set holds against this process's own writes.
type pebbleStorage struct {
	st   *store.Store
	mu   sync.Mutex
	revs map[string]uint64
	next uint64
}

func newPebbleStorage(st *store.Store) *pebbleStorage {
	return &pebbleStorage{st: st, revs: map[string]uint64{}}
}

func (p *pebbleStorage) Blind(name string) []byte { return p.st.Sealer().Blind("kms", []byte(name)) }

func (p *pebbleStorage) Get(kind string, key []byte) ([]byte, uint64, error) {
	v, err := p.st.Get(kind, key)
	if err != nil {
		return nil, 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return v, p.revLocked(recKey(kind, key)), nil
}

// revLocked is a record's revision, numbered on first sight; p.mu is held.
func (p *pebbleStorage) revLocked(rk string) uint64 {
	r, ok := p.revs[rk]
	if !ok {
		p.next++
		r = p.next
		p.revs[rk] = r
	}
	return r
}

func (p *pebbleStorage) Put(kind string, key, value []byte, rev uint64) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rk := recKey(kind, key)
	if p.revs[rk] != rev {
		return 0, ErrConflict
	}
	if err := p.st.Put(kind, key, value, store.Sync); err != nil {
		return 0, err
	}
	p.next++
	p.revs[rk] = p.next
	return p.next, nil
}

func (p *pebbleStorage) Delete(kind string, key []byte, rev uint64) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rk := recKey(kind, key)
	if p.revs[rk] != rev {
		return 0, ErrConflict
	}
	if err := p.st.Delete(kind, key, store.Sync); err != nil {
		return 0, err
	}
	p.next++
	p.revs[rk] = p.next
	return p.next, nil
}

func (p *pebbleStorage) Scan(kind string, fn func(key, value []byte, rev uint64, err error) error) error {
	return p.st.Scan(kind, nil, func(k, v []byte, err error) error {
		p.mu.Lock()
		rev := p.revLocked(recKey(kind, k))
		p.mu.Unlock()
		return fn(k, v, rev, err)
	})
}

// commit writes ops in one synced Pebble batch.
func (p *pebbleStorage) commit(ops []op, revs []uint64) ([]uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, o := range ops {
		if p.revs[recKey(o.kind, o.key)] != revs[i] {
			return nil, ErrConflict
		}
	}
	b := p.st.NewBatch()
	var err error
	for _, o := range ops {
		if err == nil {
			if o.value == nil {
				err = b.Delete(o.kind, o.key)
			} else {
				err = b.Put(o.kind, o.key, o.value)
			}
		}
	}
	if err == nil {
		err = b.Commit(store.Sync)
	}
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(ops))
	for i, o := range ops {
		p.next++
		p.revs[recKey(o.kind, o.key)] = p.next
		out[i] = p.next
	}
	return out, nil
}
