package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/internal/jsplace"
	"github.com/sharedenclave/sharedenclave/seal"
)

// Config configures a Backend. Conn and Key are required.
type Config struct {
	// Conn is a connection to the NATS cluster (the caller dials it, with
	// every server's URL so that it moves to another when one goes away).
	Conn *nats.Conn
	// Key is the cluster data key: every node of one relay holds the same.
	Key *custody.DataKey
	// Replicas of the stream and buckets; default 3.
	Replicas int
	// Lease is how long an id stays held after its node last renewed it;
	// default 10 s. Renewals run every Lease/3.
	Lease time.Duration
	// MaxMessages per mailbox (default 1024), MaxBytes of all mailboxes
	// together (default 1 GiB), DedupWindow of message ids (default 2
	// minutes). A stream that exists must have been made with the same.
	MaxMessages int64
	MaxBytes    int64
	DedupWindow time.Duration
	// Timeout bounds each JetStream request; default 5 s.
	Timeout time.Duration
	// Logger receives errors and events, never ids or payloads.
	Logger *slog.Logger
	// Rand is the source of the node's epoch and ids; default crypto/rand.
	Rand io.Reader
}

// Names of what the backend keeps in JetStream.
const (
	StreamName    = "SE_RELAY"
	IDsBucket     = "SE_RELAY_IDS"
	HoldersBucket = "SE_RELAY_HOLDERS"
	ClusterBucket = "SE_RELAY_CLUSTER"
	msgSubjects   = "se.relay.m.*"
	msgPrefix     = "se.relay.m."
	notifyPrefix  = "se.relay.n."
	checkKey      = "check"
	checkKind     = "relay/cluster-check"
	checkText     = "shared-enclave relay cluster key check v1"
	sealPurpose   = "relay-cluster"
)

// Errors callers branch on.
var (
	// ErrOtherKey: the cluster's check record does not open with this
	// node's key: the node belongs to another cluster (or the check was
	// replaced by someone without the key).
	ErrOtherKey = errors.New("relay/jetstream: this node's cluster key is not the key of the relay cluster in JetStream")
	// ErrConfigMismatch: the stream exists with other limits.
	ErrConfigMismatch = errors.New("relay/jetstream: the cluster's stream was made with other settings")
)

// Backend is one relay node's connection to the cluster's state.
type Backend struct {
	cfg     Config
	js      jetstream.JetStream
	stream  jetstream.Stream
	ids     jetstream.KeyValue
	holders jetstream.KeyValue
	sealer  *seal.Sealer
	log     *slog.Logger
	epoch   [8]byte
	node    [16]byte

	mb      *Mailboxes
	hd      *Holders
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

func (c *Config) defaults() error {
	if c.Conn == nil || c.Key == nil {
		return errors.New("relay/jetstream: Config.Conn and Config.Key are required")
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("relay/jetstream: replicas %d: JetStream allows 1 to 5", c.Replicas)
	}
	if c.Lease == 0 {
		c.Lease = 10 * time.Second
	}
	if c.Lease < time.Second {
		return fmt.Errorf("relay/jetstream: lease %v is under one second", c.Lease)
	}
	if c.MaxMessages == 0 {
		c.MaxMessages = 1024
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 2 * time.Minute
	}
	if c.MaxMessages < 0 || c.MaxBytes < 0 || c.DedupWindow < 0 {
		return errors.New("relay/jetstream: negative limit")
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	return nil
}

// Initialized reports whether a relay cluster's state already exists in
// the JetStream nc connects to (its check record), so that a node with no
// cluster key knows it must join rather than start a new cluster.
func Initialized(ctx context.Context, nc *nats.Conn) (bool, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return false, err
	}
	kv, err := js.KeyValue(ctx, ClusterBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = kv.Get(ctx, checkKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Open makes (first node) or binds the stream and buckets, checks that
// the cluster key is the cluster's (ErrOtherKey otherwise; the first node
// writes the check record), and starts listening for arrivals.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	root, err := cfg.Key.Root()
	if err != nil {
		return nil, err
	}
	sealer, err := seal.NewSealer(root, sealPurpose, 1)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, js: js, sealer: sealer, log: cfg.Logger, stop: make(chan struct{})}
	if _, err := io.ReadFull(cfg.Rand, b.epoch[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(cfg.Rand, b.node[:]); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 4*cfg.Timeout)
	defer cancel()
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if b.stream, err = b.openStream(ctx); err != nil {
		return nil, err
	}
	if b.ids, err = b.bucket(ctx, jetstream.KeyValueConfig{Bucket: IDsBucket, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage}); err != nil {
		return nil, err
	}
	if b.holders, err = b.bucket(ctx, jetstream.KeyValueConfig{Bucket: HoldersBucket, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage, TTL: cfg.Lease}); err != nil {
		return nil, err
	}
	if st, err := b.holders.Status(ctx); err == nil && st.TTL() != cfg.Lease {
		return nil, fmt.Errorf("%w: the holders' lease is %v, this node's %v (give every node the same --cluster-lease)", ErrConfigMismatch, st.TTL(), cfg.Lease)
	}
	b.mb = &Mailboxes{b: b, boxes: map[string]*box{}, byToken: map[string]string{}}
	b.hd = &Holders{b: b}
	b.wg.Add(1)
	go b.mb.sweep()
	return b, nil
}

// Mailboxes returns the node's relay.Mailboxes.
func (b *Backend) Mailboxes() *Mailboxes { return b.mb }

// Holders returns the node's relay.Holders.
func (b *Backend) Holders() *Holders { return b.hd }

// Close stops listening and renewing; the leases this node held expire.
// It does not close Config.Conn.
func (b *Backend) Close() {
	b.stopped.Do(func() {
		close(b.stop)
		if b.mb != nil {
			b.mb.mu.Lock()
			boxes := make([]*box, 0, len(b.mb.boxes))
			for _, bx := range b.mb.boxes {
				boxes = append(boxes, bx)
			}
			b.mb.mu.Unlock()
			for _, bx := range boxes {
				bx.stopPrefetch()
				if bx.sub != nil {
					bx.sub.Unsubscribe()
				}
			}
		}
	})
	b.wg.Wait()
}

// token is the hex of id's keyed hash: the subject token and KV key of
// id's mailbox.
func (b *Backend) token(id string) string {
	return hex.EncodeToString(b.sealer.Blind("relay/mailbox", []byte(id)))
}

func (b *Backend) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.cfg.Timeout)
}

// check writes the cluster's check record (the first node) or opens it.
func (b *Backend) check(ctx context.Context) error {
	kv, err := b.bucket(ctx, jetstream.KeyValueConfig{Bucket: ClusterBucket, History: 1, Replicas: b.cfg.Replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return err
	}
	sealed, err := b.sealer.Seal(checkKind, []byte(checkKey), 1, []byte(checkText))
	if err != nil {
		return err
	}
	_, err = kv.Create(ctx, checkKey, sealed)
	if err == nil {
		b.log.Info("relay cluster created in JetStream: this node wrote the cluster key's check record")
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) && !wrongLastSeq(err) {
		return fmt.Errorf("relay/jetstream: writing the cluster check record: %w", err)
	}
	e, err := kv.Get(ctx, checkKey)
	if err != nil {
		return fmt.Errorf("relay/jetstream: reading the cluster check record: %w", err)
	}
	pt, err := b.sealer.Open(checkKind, []byte(checkKey), 1, e.Value())
	if err != nil || !seal.Equal(pt, []byte(checkText)) {
		return ErrOtherKey
	}
	return nil
}

func (b *Backend) openStream(ctx context.Context) (jetstream.Stream, error) {
	want := jetstream.StreamConfig{
		Name: StreamName, Subjects: []string{msgSubjects},
		Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas, Retention: jetstream.LimitsPolicy,
		Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
		MaxMsgsPerSubject: b.cfg.MaxMessages, MaxBytes: b.cfg.MaxBytes, Duplicates: b.cfg.DedupWindow,
		MaxAge: 0, AllowDirect: false,
	}
	var s jetstream.Stream
	err := jsplace.Retry(ctx, func() (err error) { s, err = b.js.CreateStream(ctx, want); return err })
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("relay/jetstream: creating stream %s: %w", StreamName, err)
	}
	if s, err = b.js.Stream(ctx, StreamName); err != nil {
		return nil, err
	}
	got := s.CachedInfo().Config
	switch {
	case got.Replicas != want.Replicas:
		return nil, fmt.Errorf("%w: replicas %d, this node asks for %d (--cluster-replicas)", ErrConfigMismatch, got.Replicas, want.Replicas)
	case got.MaxMsgsPerSubject != want.MaxMsgsPerSubject:
		return nil, fmt.Errorf("%w: %d messages per mailbox, this node asks for %d (--mailbox-messages)", ErrConfigMismatch, got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	case got.MaxBytes != want.MaxBytes:
		return nil, fmt.Errorf("%w: %d bytes in all, this node asks for %d (--mailbox-total-bytes)", ErrConfigMismatch, got.MaxBytes, want.MaxBytes)
	case got.Duplicates != want.Duplicates:
		return nil, fmt.Errorf("%w: de-duplication window %v, this node asks for %v (--dedup-window)", ErrConfigMismatch, got.Duplicates, want.Duplicates)
	case got.AllowDirect || !got.DiscardNewPerSubject || got.Discard != jetstream.DiscardNew:
		return nil, fmt.Errorf("%w: direct get or discard policy changed by hand; restore them (docs/DEPLOY.md)", ErrConfigMismatch)
	}
	return s, nil
}

// bucket makes or binds a key-value bucket whose reads go to the stream
// leader (no direct get from a replica that may lag: a node must see an id
// another node created a moment ago).
func (b *Backend) bucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	err := jsplace.Retry(ctx, func() error { _, err := b.js.CreateKeyValue(ctx, cfg); return err })
	if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return nil, fmt.Errorf("relay/jetstream: bucket %s: %w", cfg.Bucket, err)
	}
	s, err := b.js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("relay/jetstream: bucket %s: %w", cfg.Bucket, err)
	}
	if sc := s.CachedInfo().Config; sc.AllowDirect {
		sc.AllowDirect = false
		if _, err := b.js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("relay/jetstream: bucket %s: turning direct get off: %w", cfg.Bucket, err)
		}
	}
	return b.js.KeyValue(ctx, cfg.Bucket)
}

// wrongLastSeq reports a compare-and-set conflict.
func wrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// contextBefore bounds ctx by deadline as well.
func contextBefore(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, deadline)
}
