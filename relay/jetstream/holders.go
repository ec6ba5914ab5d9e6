package jetstream

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/relay"
)

// holderKind is the seal kind of a holder record (the holding node's id).
const holderKind = "relay/cluster-holder"

// Holders implements relay.Holders in the SE_RELAY_HOLDERS bucket: a lease
// per held id, taken with KV Create (exactly one node wins; the bucket's
// TTL frees it Config.Lease after its last renewal), renewed every
// Lease/3 by compare-and-set on the revision it wrote last.
//
// The node counts its lease from the moment it sent the request that
// wrote it, which is before JetStream stamped it: it gives the id up
// (calls lost) once Lease·8/10 has passed without a renewal, so it stops
// before the bucket can free the id for another node.
type Holders struct {
	b *Backend
}

var _ relay.Holders = (*Holders)(nil)

// Hold implements relay.Holders.
func (h *Holders) Hold(id string, lost func()) (func(), error) {
	b := h.b
	key := b.token(id)
	val, err := b.sealer.Seal(holderKind, []byte(key), 0, b.node[:])
	if err != nil {
		return nil, err
	}
	sent := time.Now()
	ctx, cancel := b.ctx()
	rev, err := b.holders.Create(ctx, key, val)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrKeyExists) || wrongLastSeq(err):
		return nil, relay.ErrHeld
	case err != nil:
		return nil, fmt.Errorf("relay/jetstream: taking the lease: %w", err)
	}
	l := &lease{h: h, key: key, val: val, rev: rev, renewed: sent, lost: lost, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l.release, nil
}

type lease struct {
	h        *Holders
	key      string
	val      []byte
	lost     func()
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	rev      uint64
	renewed  time.Time
	lostOnce sync.Once
}

func (l *lease) giveUp() { l.lostOnce.Do(l.lost) }

func (l *lease) run() {
	defer close(l.done)
	b := l.h.b
	every := b.cfg.Lease / 3
	limit := b.cfg.Lease * 8 / 10
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-b.stop:
			l.giveUp()
			return
		case <-t.C:
		}
		sent := time.Now()
		l.mu.Lock()
		rev := l.rev
		l.mu.Unlock()
		ctx, cancel := b.ctx()
		ctx2, cancel2 := contextBefore(ctx, l.renewedAt().Add(limit))
		nrev, err := b.holders.Update(ctx2, l.key, l.val, rev)
		cancel2()
		cancel()
		switch {
		case err == nil:
			l.mu.Lock()
			l.rev, l.renewed = nrev, sent
			l.mu.Unlock()
			t.Reset(every)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLastSeq(err):
			b.log.Warn("an id's lease was lost: another node took it after it expired; ending its session")
			l.giveUp()
			return
		case time.Since(l.renewedAt()) >= limit:
			b.log.Warn("an id's lease could not be renewed in time; ending its session", "err", err)
			l.giveUp()
			return
		default:
			t.Reset(every / 4)
		}
	}
}

func (l *lease) renewedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

// release stops renewing and deletes the holder record if it is still
// this lease's.
func (l *lease) release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		rev := l.rev
		l.mu.Unlock()
		ctx, cancel := l.h.b.ctx()
		defer cancel()
		if err := l.h.b.holders.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil && !wrongLastSeq(err) {
			l.h.b.log.Info("releasing an id's lease failed; it expires by itself", "err", err)
		}
	})
}
