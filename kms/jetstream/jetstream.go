package jetstream

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/internal/jsplace"
	"github.com/sharedenclave/sharedenclave/kms"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
)

// DefaultBucket is the bucket's name when Options.Bucket is empty.
const DefaultBucket = "sharedenclave-kms"

// Errors callers branch on.
var (
	// ErrNotClusterKey: the bucket was made with another data key than
	// the one given: this replica is not a member of the cluster that
	// owns it (a joining replica gets the cluster's data key only
	// through the attested hand-off).
	ErrNotClusterKey = errors.New("kms/jetstream: the bucket belongs to a cluster with another data key")
	// ErrBucketConfig: a stream of the bucket's name exists with a
	// configuration this package does not use.
	ErrBucketConfig = errors.New("kms/jetstream: the bucket's stream has another configuration")
)

// Options configure Open.
type Options struct {
	// Conn is a connection to the NATS cluster (JetStream enabled).
	Conn *nats.Conn
	// Bucket names the key-value bucket; default DefaultBucket.
	Bucket string
	// Replicas is the bucket's replication factor; default 3.
	Replicas int
	// Root is the cluster data key's seal root (custody.DataKey.Root).
	Root   *seal.Root
	Logger *slog.Logger
	// Timeout bounds every request to JetStream; default 10 s.
	Timeout time.Duration
}

// Store is a kms.Shared in a JetStream key-value bucket.
type Store struct {
	js      js.JetStream
	kv      js.KeyValue
	stream  js.Stream
	sealer  *seal.Sealer
	bucket  string
	subject string // "$KV.<bucket>."
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	applied uint64        // highest stream sequence handed to apply
	advance chan struct{} // closed and replaced when applied grows
	// last is, per KV key, the newest revision this replica has seen
	// (a value or a deletion): a value claiming to replace an older one
	// is a replay and is refused.
	last map[string]lastSeen
	// names maps a KV key to the record it holds, to report deletions.
	names map[string]record

	watcher js.KeyWatcher
	refused atomic.Int64
	closed  atomic.Bool

	// Barrier rounds (see Barrier), under bmu.
	bmu       sync.Mutex
	nextRound *round
	inflight  bool
}

type lastSeen struct {
	rev     uint64
	deleted bool
}

type record struct {
	kind string
	key  []byte
}

var _ kms.Shared = (*Store)(nil)

// The check record: present from the first replica's start, sealed with
// the cluster data key, so that a replica with another key is refused
// before it reads or writes anything else.
const (
	checkKind = "cluster/check"
	checkText = "sharedenclave kms cluster v1"
	// checkKV is the check record's bucket key: the same whatever the
	// data key, so that a replica with another key finds it.
	checkKV = "check"
)

// Open binds the bucket (creating its stream, R Options.Replicas, on
// first use) and checks that it belongs to the data key given: a new
// bucket gets a check record sealed with it; an existing one whose check
// record does not open is refused with ErrNotClusterKey.
func Open(ctx context.Context, o Options) (*Store, error) {
	switch {
	case o.Conn == nil:
		return nil, errors.New("kms/jetstream: no NATS connection")
	case o.Root == nil:
		return nil, errors.New("kms/jetstream: no cluster data key")
	case o.Replicas < 0 || o.Replicas > 5:
		return nil, fmt.Errorf("kms/jetstream: replicas %d: JetStream allows 1 to 5", o.Replicas)
	}
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sealer, err := seal.NewSealer(o.Root, "kms-cluster", 1)
	if err != nil {
		return nil, err
	}
	j, err := js.New(o.Conn)
	if err != nil {
		return nil, err
	}
	s := &Store{js: j, sealer: sealer, bucket: o.Bucket, subject: "$KV." + o.Bucket + ".", timeout: o.Timeout, log: o.Logger,
		advance: make(chan struct{}), last: map[string]lastSeen{}, names: map[string]record{}}
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// A key-value bucket's stream, as nats.go makes one, except that
	// direct gets are off: every read goes to the stream leader, so it
	// sees every acknowledged write.
	cfg := js.StreamConfig{
		Name: "KV_" + o.Bucket, Subjects: []string{s.subject + ">"}, MaxMsgsPerSubject: 1, MaxBytes: -1, MaxMsgSize: -1,
		MaxMsgs: -1, MaxConsumers: -1, Storage: js.FileStorage, Replicas: o.Replicas, AllowRollup: true, DenyDelete: true,
		Duplicates: 2 * time.Minute, Discard: js.DiscardNew, AllowDirect: false,
	}
	// A cluster that has just started may not place the replicas yet.
	err = jsplace.Retry(cctx, func() (err error) { s.stream, err = j.CreateStream(cctx, cfg); return err })
	if errors.Is(err, js.ErrStreamNameAlreadyInUse) {
		if s.stream, err = j.Stream(cctx, cfg.Name); err == nil {
			c := s.stream.CachedInfo().Config
			if c.AllowDirect || c.MaxMsgsPerSubject != 1 || len(c.Subjects) != 1 || c.Subjects[0] != cfg.Subjects[0] {
				return nil, fmt.Errorf("%w: stream %s (direct gets %v, history %d, subjects %v); kmsd needs direct gets off and history 1: use another --cluster-bucket",
					ErrBucketConfig, cfg.Name, c.AllowDirect, c.MaxMsgsPerSubject, c.Subjects)
			}
			if c.Replicas != o.Replicas {
				o.Logger.Warn("the bucket's replication differs from the one asked for; keeping the bucket's", "bucket", o.Bucket, "replicas", c.Replicas, "asked", o.Replicas)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kms/jetstream: bucket %s: %w", o.Bucket, err)
	}
	if s.kv, err = j.KeyValue(cctx, o.Bucket); err != nil {
		return nil, fmt.Errorf("kms/jetstream: bucket %s: %w", o.Bucket, err)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) check() error {
	v, _, err := s.Get(checkKind, nil)
	if errors.Is(err, store.ErrNotFound) {
		_, err = s.Put(checkKind, nil, []byte(checkText), 0)
		if errors.Is(err, kms.ErrConflict) { // another replica made it first
			v, _, err = s.Get(checkKind, nil)
		} else if err == nil {
			s.log.Info("cluster bucket initialised with this replica's data key", "bucket", s.bucket)
			return nil
		}
	}
	if errors.Is(err, store.ErrCorrupt) {
		return fmt.Errorf("%w: bucket %s", ErrNotClusterKey, s.bucket)
	}
	if err != nil {
		return err
	}
	if string(v) != checkText {
		return fmt.Errorf("%w: bucket %s (unexpected check record)", ErrNotClusterKey, s.bucket)
	}
	return nil
}

// Close stops the watch.
func (s *Store) Close() error {
	s.closed.Store(true)
	if s.watcher != nil {
		return s.watcher.Stop()
	}
	return nil
}

// Refused counts the records refused so far (do not open, replayed).
func (s *Store) Refused() int64 { return s.refused.Load() }

// Blind is a keyed hash of name under the cluster data key.
func (s *Store) Blind(name string) []byte { return s.sealer.Blind("kms", []byte(name)) }

// kvKey is the bucket key of a record: a keyed hash of its kind and key,
// so that the operator sees neither (the check record: checkKV).
func (s *Store) kvKey(kind string, key []byte) string {
	if kind == checkKind {
		return checkKV
	}
	b := make([]byte, 0, len(kind)+1+len(key))
	b = append(append(append(b, kind...), 0), key...)
	return hex.EncodeToString(s.sealer.Blind("kms-kv", b))
}

// sealValue makes a bucket value: prev u64 ‖ seal(plaintext) with the
// bucket, the KV key and prev (the revision it replaces) in the
// associated data; the plaintext names the record (encodeRecord).
func (s *Store) sealValue(k, kind string, key, value []byte, prev uint64) ([]byte, error) {
	out := binary.BigEndian.AppendUint64(nil, prev)
	c, err := s.sealer.Seal("kms-kv", []byte(s.bucket+"/"+k), prev, encodeRecord(kind, key, value))
	if err != nil {
		return nil, err
	}
	return append(out, c...), nil
}

// openValue opens what sealValue made for KV key k, found at revision
// rev: it must open, name a record whose KV key is k, and claim to
// replace a revision older than rev and not older than the newest this
// replica has seen for k (else it is an old value replayed).
func (s *Store) openValue(k string, rev uint64, v []byte) (record, []byte, error) {
	if len(v) < 8 {
		return record{}, nil, fmt.Errorf("%w: value too short", store.ErrCorrupt)
	}
	prev := binary.BigEndian.Uint64(v)
	p, err := s.sealer.Open("kms-kv", []byte(s.bucket+"/"+k), prev, v[8:])
	if err != nil {
		return record{}, nil, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	kind, key, value, err := decodeRecord(p)
	if err != nil {
		return record{}, nil, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	if !hmac.Equal([]byte(s.kvKey(kind, key)), []byte(k)) {
		return record{}, nil, fmt.Errorf("%w: the record is stored under another name's key", store.ErrCorrupt)
	}
	if prev >= rev {
		return record{}, nil, fmt.Errorf("%w: revision %d claims to replace revision %d", store.ErrCorrupt, rev, prev)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A message older than the newest seen (delivered late) is not
	// judged: the service ignores older revisions anyway.
	if l := s.last[k]; rev > l.rev && prev < l.rev {
		return record{}, nil, fmt.Errorf("%w: an old value replayed: revision %d replaces %d, but this replica has seen revision %d", store.ErrCorrupt, rev, prev, l.rev)
	}
	if rev > s.last[k].rev {
		s.last[k] = lastSeen{rev: rev}
	}
	r := record{kind: kind, key: bytes.Clone(key)}
	s.names[k] = r
	return r, value, nil
}

// encodeRecord is u16 len(kind) ‖ kind ‖ u16 len(key) ‖ key ‖ value.
func encodeRecord(kind string, key, value []byte) []byte {
	b := make([]byte, 0, 4+len(kind)+len(key)+len(value))
	b = binary.BigEndian.AppendUint16(b, uint16(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// maxName bounds a record's kind and key (they are short: a kind name,
// a 16- or 32-byte key).
const maxName = 256

// decodeRecord parses what encodeRecord made; value may be empty.
func decodeRecord(p []byte) (kind string, key, value []byte, err error) {
	bad := errors.New("malformed record")
	if len(p) < 2 {
		return "", nil, nil, bad
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || n > maxName || len(p) < 2+n+2 {
		return "", nil, nil, bad
	}
	kind, p = string(p[2:2+n]), p[2+n:]
	m := int(binary.BigEndian.Uint16(p))
	if m > maxName || len(p) < 2+m {
		return "", nil, nil, bad
	}
	return kind, p[2 : 2+m], p[2+m:], nil
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// Get reads a record from the stream leader.
func (s *Store) Get(kind string, key []byte) ([]byte, uint64, error) {
	k := s.kvKey(kind, key)
	ctx, cancel := s.ctx()
	defer cancel()
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, js.ErrKeyNotFound) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", store.ErrIO, err)
	}
	_, v, err := s.openValue(k, e.Revision(), e.Value())
	if err != nil {
		s.refused.Add(1)
		return nil, 0, err
	}
	return v, e.Revision(), nil
}

// expect is the revision a write must find: rev, or for a record the
// caller has not seen (0) whose last message here is a deletion marker,
// that marker's revision.
func (s *Store) expect(k string, rev uint64) uint64 {
	if rev != 0 {
		return rev
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.last[k]; l.deleted {
		return l.rev
	}
	return 0
}

// Put publishes the sealed value with JetStream's expected last
// sequence per subject: a compare-and-set on the record's revision.
func (s *Store) Put(kind string, key, value []byte, rev uint64) (uint64, error) {
	k := s.kvKey(kind, key)
	rev = s.expect(k, rev)
	v, err := s.sealValue(k, kind, key, value, rev)
	if err != nil {
		return 0, err
	}
	return s.publish(k, &nats.Msg{Subject: s.subject + k, Data: v, Header: nats.Header{}}, rev)
}

// Delete publishes a deletion marker (the bucket keeps no old values),
// under the same compare-and-set.
func (s *Store) Delete(kind string, key []byte, rev uint64) (uint64, error) {
	k := s.kvKey(kind, key)
	rev = s.expect(k, rev)
	m := nats.NewMsg(s.subject + k)
	m.Header.Set("KV-Operation", "DEL")
	n, err := s.publish(k, m, rev)
	if err == nil {
		s.mu.Lock()
		if n > s.last[k].rev {
			s.last[k] = lastSeen{rev: n, deleted: true}
		}
		s.mu.Unlock()
	}
	return n, err
}

func (s *Store) publish(k string, m *nats.Msg, rev uint64) (uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, m, js.WithExpectLastSequencePerSubject(rev))
	var apiErr *js.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == js.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == js.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, kms.ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("kms/jetstream: write: %w", err)
	}
	s.mu.Lock()
	if ack.Sequence > s.last[k].rev && m.Data != nil {
		s.last[k] = lastSeen{rev: ack.Sequence}
	}
	s.mu.Unlock()
	return ack.Sequence, nil
}

// Scan reads every record of kind (one request per record: Service
// loads shared storage through Watch, not Scan).
func (s *Store) Scan(kind string, fn func(key, value []byte, rev uint64, err error) error) error {
	ctx, cancel := s.ctx()
	defer cancel()
	l, err := s.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrIO, err)
	}
	defer l.Stop()
	for k := range l.Keys() {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, js.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %w", store.ErrIO, err)
		}
		r, v, err := s.openValue(k, e.Revision(), e.Value())
		if err != nil {
			s.refused.Add(1)
			s.log.Error("refusing a record of the cluster bucket", "err", err)
			continue
		}
		if r.kind == kind {
			if err := fn(r.key, v, e.Revision(), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Watch hands every record, then every change, to apply from one
// goroutine, in stream order. A record that does not open, or is an old
// value replayed, is logged and skipped.
func (s *Store) Watch(apply func(kind string, key, value []byte, rev uint64)) error {
	// The watch lives until Close (its context would stop it).
	w, err := s.kv.WatchAll(context.Background())
	if err != nil {
		return fmt.Errorf("kms/jetstream: watch: %w", err)
	}
	s.watcher = w
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue // the initial values are all in
			}
			s.deliver(e, apply)
		}
		if !s.closed.Load() {
			s.log.Error("the watch of the cluster bucket stopped: every request will answer 503 until kmsd is restarted")
		}
	}()
	return nil
}

func (s *Store) deliver(e js.KeyValueEntry, apply func(kind string, key, value []byte, rev uint64)) {
	k, rev := e.Key(), e.Revision()
	defer s.advanced(rev)
	if e.Operation() != js.KeyValuePut {
		s.mu.Lock()
		r, known := s.names[k]
		if rev > s.last[k].rev {
			s.last[k] = lastSeen{rev: rev, deleted: true}
		}
		s.mu.Unlock()
		if known {
			apply(r.kind, r.key, nil, rev)
		}
		return
	}
	r, v, err := s.openValue(k, rev, e.Value())
	if err != nil {
		s.refused.Add(1)
		s.log.Error("refusing a record of the cluster bucket", "revision", rev, "err", err)
		return
	}
	if r.kind != checkKind {
		apply(r.kind, r.key, v, rev)
	}
}

func (s *Store) advanced(rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev > s.applied {
		s.applied = rev
		close(s.advance)
		s.advance = make(chan struct{})
	}
}

// Barrier asks the stream leader for the stream's last sequence and
// waits until the watch has handed it to apply. Concurrent callers share
// requests: a caller joins the next request to be sent, never one that
// was sent before it arrived, so the sequence it waits for is at least
// the last one committed before it called.
func (s *Store) Barrier(ctx context.Context) error {
	s.bmu.Lock()
	r := s.nextRound
	if r == nil {
		r = &round{done: make(chan struct{})}
		s.nextRound = r
	}
	if !s.inflight {
		s.startRound()
	}
	s.bmu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("kms/jetstream: barrier: %w", ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("kms/jetstream: barrier: %w", r.err)
	}
	for {
		s.mu.Lock()
		applied, ch := s.applied, s.advance
		s.mu.Unlock()
		if applied >= r.target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("kms/jetstream: barrier: the watch is at %d, the stream at %d: %w", applied, r.target, ctx.Err())
		}
	}
}

// round is one request for the stream's last sequence, shared by the
// Barrier calls that joined it before it was sent.
type round struct {
	done   chan struct{}
	target uint64
	err    error
}

// startRound sends the waiting round; s.bmu is held.
func (s *Store) startRound() {
	r := s.nextRound
	s.nextRound, s.inflight = nil, true
	go func() {
		ctx, cancel := s.ctx()
		info, err := s.stream.Info(ctx)
		cancel()
		if err == nil {
			r.target = info.State.LastSeq
		}
		r.err = err
		close(r.done)
		s.bmu.Lock()
		s.inflight = false
		if s.nextRound != nil {
			s.startRound()
		}
		s.bmu.Unlock()
	}()
}
