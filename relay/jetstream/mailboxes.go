package jetstream

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/relay"
)

const (
	idKind    = "relay/cluster-id"
	msgIDKind = "relay/cluster-msgid"
	// seenMax bounds the sequences of acknowledged messages a mailbox
	// remembers, to drop a record an operator puts back (replay).
	seenMax = 4096
	// sweepEvery: how often every waiting local session is woken, in
	// case a core-NATS notification was lost.
	sweepEvery = 2 * time.Second
	// prefetchBytes bounds the records a mailbox's prefetch holds, and
	// prefetchTotal those of all the node's prefetches together (enclave
	// memory): a prefetch that would go over falls back to reading the
	// stream.
	prefetchBytes = 1 << 20
	prefetchTotal = 64 << 20
	// prefetchIdle: a prefetch no Take used for this long is stopped
	// (its session has gone, or moved to another node).
	prefetchIdle = time.Minute
)

// Mailboxes implements relay.Mailboxes, relay.Acker, relay.Deduper and
// relay.Arrivals on the cluster's stream. The delivery state of a mailbox
// lives on the node whose session holds its id (relay.Holders makes it
// one node at a time); Create, called when a session registers, starts
// it afresh from the stream.
type Mailboxes struct {
	b       *Backend
	counter atomic.Uint64
	known   sync.Map // id → struct{}: ids known to exist (never removed)
	wake    atomic.Pointer[func(string)]
	pfTotal atomic.Int64

	// The stream's leader, where the prefetches are wanted (streamLeader).
	leaderMu sync.Mutex
	leader   string
	leaderAt time.Time

	mu      sync.Mutex
	boxes   map[string]*box   // id → state, for ids registered on this node
	byToken map[string]string // token → id
}

var (
	_ relay.Mailboxes = (*Mailboxes)(nil)
	_ relay.Acker     = (*Mailboxes)(nil)
	_ relay.Deduper   = (*Mailboxes)(nil)
	_ relay.Arrivals  = (*Mailboxes)(nil)
)

type box struct {
	mu      sync.Mutex
	blind   []byte
	subject string
	cursor  uint64 // the next stream sequence to look from
	// hint is the highest stream sequence a notification announced for
	// this mailbox (math.MaxUint64: unknown, read until a miss); dirty is
	// set by every notification and sweep. Take asks the stream only when
	// dirty or cursor ≤ hint, so that a session that has taken everything
	// does not pay a round trip to learn there is nothing more.
	hint     atomic.Uint64
	dirty    atomic.Bool
	held     map[uint64]held
	returned []uint64 // released, sorted; their messages are in held with released set
	seen     map[seqKey]struct{}
	seenFIFO []seqKey

	// The prefetch: an ordered consumer on the mailbox's subject pushes
	// its records here as they are stored, in stream order, so that Take
	// needs no request to the stream leader. While pfOn, pf holds every
	// record of the subject up to pfUpTo that Take has not passed; when
	// it would exceed prefetchBytes, or the consumer cannot start, pfOn
	// goes off for good and Take reads the stream as before.
	pfOn     bool
	pf       []pfRecord
	pfBytes  int
	pfTotal  *atomic.Int64 // the node's prefetched bytes (Mailboxes.pfTotal)
	pfUpTo   uint64
	cc       jetstream.ConsumeContext
	lastTake time.Time
	// notified is the highest sequence a notification announced; a
	// prefetch that stays behind it for two sweeps has stalled (its
	// consumer lost with a server) and is turned off.
	notified atomic.Uint64
	behind   time.Time
	// sub listens for notifications on se.relay.n.TOKEN (kept from one
	// box of an id to the next).
	sub *nats.Subscription
}

type pfRecord struct {
	seq  uint64
	data []byte
}

type held struct {
	d        relay.Delivery
	key      seqKey
	released bool
}

// Create implements relay.Mailboxes: it records id as known (once, KV
// Create) and starts this node's delivery state for it from the stream.
func (mb *Mailboxes) Create(id string) error {
	b := mb.b
	tok := b.token(id)
	if _, ok := mb.known.Load(id); !ok {
		val, err := b.sealer.Seal(idKind, []byte(tok), 0, []byte(id))
		if err != nil {
			return err
		}
		ctx, cancel := b.ctx()
		_, err = b.ids.Create(ctx, tok, val)
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !wrongLastSeq(err) {
			return fmt.Errorf("relay/jetstream: recording the id: %w", err)
		}
		mb.known.Store(id, struct{}{})
	}
	bx := &box{blind: b.sealer.Blind("relay/mailbox", []byte(id)), subject: msgPrefix + tok, cursor: 1,
		held: map[uint64]held{}, seen: map[seqKey]struct{}{}, pfTotal: &mb.pfTotal}
	bx.hint.Store(math.MaxUint64)
	bx.dirty.Store(true)
	// Only the node holding an id listens for its notifications, so that
	// a message wakes one relayd, not every node of the cluster. The
	// flush makes the server know the subscription before the session
	// can be told it is registered.
	var sub *nats.Subscription
	if mb.box(id) == nil {
		var err error
		if sub, err = b.cfg.Conn.Subscribe(notifyPrefix+tok, mb.arrived); err == nil {
			err = b.cfg.Conn.FlushTimeout(b.cfg.Timeout)
		}
		if err != nil {
			if sub != nil {
				sub.Unsubscribe()
			}
			return fmt.Errorf("relay/jetstream: listening for the mailbox's notifications: %w", err)
		}
	}
	mb.mu.Lock()
	old := mb.boxes[id]
	if old != nil {
		// A previous session of this node: keep what it learnt of replays,
		// and its subscription.
		old.mu.Lock()
		bx.seen, bx.seenFIFO = old.seen, old.seenFIFO
		old.mu.Unlock()
		bx.sub = old.sub
		if sub != nil {
			sub.Unsubscribe()
		}
	} else {
		bx.sub = sub
	}
	mb.boxes[id] = bx
	mb.byToken[tok] = id
	mb.mu.Unlock()
	if old != nil {
		old.stopPrefetch()
	}
	mb.startPrefetch(bx, tok)
	return nil
}

// startPrefetch starts bx's ordered consumer. If it cannot, Take reads
// the stream (the prefetch is only a faster path).
func (mb *Mailboxes) startPrefetch(bx *box, tok string) {
	b := mb.b
	bx.mu.Lock()
	bx.pfOn, bx.lastTake = true, time.Now()
	bx.mu.Unlock()
	// JetStream places an R1 consumer on a random replica of the stream.
	// On a follower it sees each message only once the follower has
	// learnt that the message is committed (≈1.4 ms after the publish was
	// acknowledged, against ≈0.2 ms on the leader, measured on loopback):
	// so a prefetch that did not land on the stream's leader is made
	// again, a few times at most. Placement changes only speed.
	var cc jetstream.ConsumeContext
	var err error
	leader := mb.streamLeader()
	for attempt := 0; ; attempt++ {
		ctx, cancel := b.ctx()
		var cons jetstream.Consumer
		cons, err = b.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bx.subject}, InactiveThreshold: prefetchIdle})
		cancel()
		if err != nil {
			break
		}
		cc, err = cons.Consume(func(m jetstream.Msg) { mb.prefetched(bx, tok, m) }, jetstream.PullMaxMessages(256),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				// Any trouble: back to reading the stream, the path that
				// needs no consumer.
				b.log.Debug("mailbox prefetch stopped; reading the stream", "err", err)
				mb.dropPrefetch(bx, tok)
			}))
		if err != nil || leader == "" || attempt == 4 {
			break
		}
		info := cons.CachedInfo()
		if info == nil || info.Cluster != nil && info.Cluster.Leader == leader {
			break
		}
		// Stopped, the consumer would stay on the server until its
		// inactivity threshold: delete it now.
		cc.Stop()
		ctx, cancel = b.ctx()
		_ = b.js.DeleteConsumer(ctx, StreamName, info.Name)
		cancel()
	}
	bx.mu.Lock()
	if err != nil {
		bx.pfOn, bx.pf = false, nil
		b.log.Debug("mailbox prefetch unavailable; reading the stream", "err", err)
	} else {
		bx.cc = cc
	}
	bx.mu.Unlock()
}

// prefetched takes one record from bx's ordered consumer.
func (mb *Mailboxes) prefetched(bx *box, tok string, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	bx.mu.Lock()
	switch {
	case !bx.pfOn || seq <= bx.pfUpTo:
	case bx.pfBytes+len(m.Data()) > prefetchBytes || mb.pfTotal.Load()+int64(len(m.Data())) > prefetchTotal:
		// Too much waiting: stop prefetching.
		bx.pfOn = false
		mb.dropPrefetch(bx, tok)
	default:
		bx.pf = append(bx.pf, pfRecord{seq: seq, data: m.Data()})
		bx.pfBytes += len(m.Data())
		mb.pfTotal.Add(int64(len(m.Data())))
		bx.pfUpTo = seq
	}
	bx.mu.Unlock()
	mb.announce(tok, seq)
}

// stopPrefetch turns bx's prefetch off and stops its consumer; Take then
// reads the stream from its cursor, which misses nothing.
func (bx *box) stopPrefetch() {
	bx.mu.Lock()
	cc := bx.cc
	if bx.pfTotal != nil {
		bx.pfTotal.Add(-int64(bx.pfBytes))
	}
	bx.pfOn, bx.pf, bx.pfBytes, bx.cc = false, nil, 0, nil
	bx.hint.Store(math.MaxUint64)
	bx.dirty.Store(true)
	bx.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

// dropPrefetch stops bx's prefetch from its consumer's callbacks (which
// must not wait for the consumer to stop) and wakes its session.
func (mb *Mailboxes) dropPrefetch(bx *box, tok string) {
	go func() {
		bx.stopPrefetch()
		mb.announce(tok, 0)
	}()
}

func (mb *Mailboxes) box(id string) *box {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.boxes[id]
}

// exists reports whether id was ever registered (any node).
func (mb *Mailboxes) exists(id, tok string) (bool, error) {
	if _, ok := mb.known.Load(id); ok {
		return true, nil
	}
	ctx, cancel := mb.b.ctx()
	defer cancel()
	_, err := mb.b.ids.Get(ctx, tok)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	mb.known.Store(id, struct{}{})
	return true, nil
}

// Push implements relay.Mailboxes. It returns once JetStream has
// acknowledged the message (stored on a quorum of replicas).
func (mb *Mailboxes) Push(id string, m relay.Message) error {
	_, err := mb.push(id, m)
	return err
}

// PushOnce implements relay.Deduper through JetStream's de-duplication
// window: the Nats-Msg-Id is a keyed hash of (sender, message id).
func (mb *Mailboxes) PushOnce(id string, m relay.Message) (bool, error) {
	return mb.push(id, m)
}

func (mb *Mailboxes) push(id string, m relay.Message) (dup bool, err error) {
	b := mb.b
	tok := b.token(id)
	ok, err := mb.exists(id, tok)
	if err != nil {
		return false, fmt.Errorf("relay/jetstream: looking the recipient up: %w", err)
	}
	if !ok {
		return false, relay.ErrNoMailbox
	}
	counter := mb.counter.Add(1)
	rec, err := sealRecord(b.sealer, b.sealer.Blind("relay/mailbox", []byte(id)), b.epoch, counter, m)
	if err != nil {
		return false, err
	}
	// Every publish carries a Nats-Msg-Id, so that it can be retried
	// through a leader election without being stored twice: for a SEND_ID
	// a keyed hash of (sender, message id), so that the client's own
	// retries are dropped too; otherwise one of the record's sequence.
	var dk []byte
	if len(m.ID) > 0 {
		dk = b.sealer.Blind(msgIDKind, append(append(append(make([]byte, 0, 1+len(m.From)+len(m.ID)), m.From...), 0), m.ID...))
	} else {
		var seq [16]byte
		copy(seq[:8], b.epoch[:])
		binary.BigEndian.PutUint64(seq[8:], counter)
		dk = b.sealer.Blind("relay/cluster-seq", seq[:])
	}
	msgID := hex.EncodeToString(dk)
	give := time.Now().Add(3 * b.cfg.Timeout)
	var seq uint64
	for attempt := 0; ; attempt++ {
		ctx, cancel := b.ctx()
		ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: msgPrefix + tok, Data: rec}, jetstream.WithMsgID(msgID))
		cancel()
		var ae *jetstream.APIError
		if err != nil && !errors.As(err, &ae) && time.Now().Before(give) {
			// No answer (a stream leader being elected, a server gone):
			// the same record again, under the same Nats-Msg-Id.
			b.log.Info("publishing a message got no answer; retrying", "attempt", attempt+1, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return false, publishError(err)
		}
		// A duplicate on the first attempt is the sender's retry; on a
		// later one it may be this node's own earlier attempt.
		if ack.Duplicate && attempt == 0 && len(m.ID) > 0 {
			return true, nil
		}
		seq = ack.Sequence
		break
	}
	// Wake the holder, wherever it is (the notification carries the
	// stream sequence, which the operators see anyway); an error here only
	// delays the delivery until the holder's sweep.
	_ = b.cfg.Conn.Publish(notifyPrefix+tok, binary.BigEndian.AppendUint64(nil, seq))
	mb.announce(tok, seq)
	return false, nil
}

// publishError maps the stream's refusals to the relay's errors. JetStream
// names them only in the description of error 10077.
func publishError(err error) error {
	var ae *jetstream.APIError
	if errors.As(err, &ae) && ae.ErrorCode == 10077 {
		switch d := ae.Description; {
		case strings.Contains(d, "maximum messages per subject"):
			return relay.ErrMailboxFull
		case strings.Contains(d, "maximum bytes"), strings.Contains(d, "maximum messages"):
			return relay.ErrRelayFull
		}
	}
	return fmt.Errorf("relay/jetstream: publishing: %w", err)
}

// Pop implements relay.Mailboxes: Take, then Ack. Unlike Take it does
// not wait for the prefetch: a POLL answers at once, so a message whose
// SEND_ACK went out (or whose notification arrived) before the POLL is
// read from the stream if the prefetch has not received it yet.
func (mb *Mailboxes) Pop(id string) (relay.Message, bool, error) {
	d, ok, err := mb.take(id, true)
	if err != nil || !ok {
		return relay.Message{}, ok, err
	}
	if _, err := mb.Ack(id, d.Seq); err != nil {
		mb.Release(id, d.Seq)
		return relay.Message{}, false, err
	}
	return d.Message, true, nil
}

// Take implements relay.Acker: the oldest released message, or the next
// one in the stream. The delivery id is the stream sequence. While the
// prefetch is on, a message announced but not yet prefetched is left to
// the prefetch, whose arrival wakes the session.
func (mb *Mailboxes) Take(id string) (relay.Delivery, bool, error) {
	return mb.take(id, false)
}

// take is Take; now asks the stream for a message announced (by this
// node's own publish or a notification) that the prefetch has not yet
// received, instead of waiting for it.
func (mb *Mailboxes) take(id string, now bool) (relay.Delivery, bool, error) {
	bx := mb.box(id)
	if bx == nil {
		return relay.Delivery{}, false, relay.ErrNoMailbox
	}
	bx.mu.Lock()
	defer bx.mu.Unlock()
	if len(bx.returned) > 0 {
		seq := bx.returned[0]
		bx.returned = bx.returned[1:]
		h := bx.held[seq]
		h.released = false
		h.d.Redelivered = true
		bx.held[seq] = h
		return h.d, true, nil
	}
	b := mb.b
	bx.lastTake = time.Now()
	for bx.pfOn {
		for len(bx.pf) > 0 && bx.pf[0].seq < bx.cursor {
			bx.pfBytes -= len(bx.pf[0].data)
			mb.pfTotal.Add(-int64(len(bx.pf[0].data)))
			bx.pf = bx.pf[1:]
		}
		if len(bx.pf) == 0 {
			if now && bx.notified.Load() >= bx.cursor {
				// Announced, not yet prefetched: read it from the
				// stream (the prefetch skips what the cursor passed).
				break
			}
			// Every record up to pfUpTo is behind the cursor; the
			// consumer wakes the session when the next one is stored.
			return relay.Delivery{}, false, nil
		}
		r := bx.pf[0]
		bx.pf = bx.pf[1:]
		bx.pfBytes -= len(r.data)
		mb.pfTotal.Add(-int64(len(r.data)))
		bx.cursor = r.seq + 1
		if d, ok := mb.accept(bx, r.seq, r.data); ok {
			return d, true, nil
		}
	}
	for {
		if !bx.dirty.Load() && bx.cursor > bx.hint.Load() {
			return relay.Delivery{}, false, nil
		}
		bx.dirty.Store(false)
		ctx, cancel := b.ctx()
		raw, err := b.stream.GetMsg(ctx, bx.cursor, jetstream.WithGetMsgSubject(bx.subject))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			bx.hint.CompareAndSwap(math.MaxUint64, 0)
			return relay.Delivery{}, false, nil
		}
		if err != nil {
			bx.dirty.Store(true)
			return relay.Delivery{}, false, fmt.Errorf("relay/jetstream: reading the mailbox: %w", err)
		}
		bx.cursor = raw.Sequence + 1
		if bx.hint.Load() > raw.Sequence {
			bx.dirty.Store(true)
		}
		if d, ok := mb.accept(bx, raw.Sequence, raw.Data); ok {
			return d, true, nil
		}
	}
}

// accept opens the record at stream sequence seq of bx's mailbox and
// holds it for delivery; a record that does not open, or a replay, is
// refused (logged, and a replay deleted). bx.mu is held.
func (mb *Mailboxes) accept(bx *box, seq uint64, data []byte) (relay.Delivery, bool) {
	b := mb.b
	key, m, err := openRecord(b.sealer, bx.blind, data)
	if err != nil {
		b.log.Error("refusing a stream record that does not open (tampered, moved between mailboxes, or sealed under another key); skipped", "stream_seq", seq)
		return relay.Delivery{}, false
	}
	if _, replay := bx.seen[key]; replay || bx.isHeld(key) {
		b.log.Error("dropping a replayed record: its sequence was already delivered and acknowledged here", "stream_seq", seq)
		ctx, cancel := b.ctx()
		_ = b.stream.DeleteMsg(ctx, seq)
		cancel()
		return relay.Delivery{}, false
	}
	d := relay.Delivery{Seq: seq, Message: m}
	bx.held[seq] = held{d: d, key: key}
	return d, true
}

func (bx *box) isHeld(k seqKey) bool {
	for _, h := range bx.held {
		if h.key == k {
			return true
		}
	}
	return false
}

// Ack implements relay.Acker: the message is deleted from the stream.
func (mb *Mailboxes) Ack(id string, seq uint64) (bool, error) {
	bx := mb.box(id)
	if bx == nil {
		return false, relay.ErrNoMailbox
	}
	bx.mu.Lock()
	defer bx.mu.Unlock()
	h, ok := bx.held[seq]
	if !ok || h.released {
		return false, nil
	}
	ctx, cancel := mb.b.ctx()
	err := mb.b.stream.DeleteMsg(ctx, seq)
	cancel()
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
		return false, fmt.Errorf("relay/jetstream: deleting an acknowledged message: %w", err)
	}
	delete(bx.held, seq)
	if len(bx.seenFIFO) >= seenMax {
		delete(bx.seen, bx.seenFIFO[0])
		bx.seenFIFO = bx.seenFIFO[1:]
	}
	bx.seen[h.key] = struct{}{}
	bx.seenFIFO = append(bx.seenFIFO, h.key)
	return true, nil
}

func isNotFound(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeMessageNotFound
}

// Release implements relay.Acker.
func (mb *Mailboxes) Release(id string, seq uint64) error {
	bx := mb.box(id)
	if bx == nil {
		return relay.ErrNoMailbox
	}
	bx.mu.Lock()
	defer bx.mu.Unlock()
	h, ok := bx.held[seq]
	if !ok || h.released {
		return nil
	}
	h.released = true
	bx.held[seq] = h
	i := sort.Search(len(bx.returned), func(i int) bool { return bx.returned[i] > seq })
	bx.returned = append(bx.returned, 0)
	copy(bx.returned[i+1:], bx.returned[i:])
	bx.returned[i] = seq
	return nil
}

// DedupWindow is the stream's de-duplication window.
func (mb *Mailboxes) DedupWindow() time.Duration { return mb.b.cfg.DedupWindow }

// Totals returns the messages and record bytes in the stream (every
// mailbox of the cluster).
func (mb *Mailboxes) Totals() (int64, int64) {
	ctx, cancel := mb.b.ctx()
	defer cancel()
	info, err := mb.b.stream.Info(ctx)
	if err != nil {
		return 0, 0
	}
	return int64(info.State.Msgs), int64(info.State.Bytes)
}

// OnArrival implements relay.Arrivals.
func (mb *Mailboxes) OnArrival(wake func(id string)) { mb.wake.Store(&wake) }

// arrived handles a notification on se.relay.n.TOKEN: the payload is the
// stream sequence of the new message.
func (mb *Mailboxes) arrived(m *nats.Msg) {
	var seq uint64
	if len(m.Data) == 8 {
		seq = binary.BigEndian.Uint64(m.Data)
	}
	mb.announce(m.Subject[len(notifyPrefix):], seq)
}

// announce records that the mailbox tok has a message at stream sequence
// seq (0: unknown) and wakes its local session, if any.
func (mb *Mailboxes) announce(tok string, seq uint64) {
	mb.mu.Lock()
	id, ok := mb.byToken[tok]
	bx := mb.boxes[id]
	mb.mu.Unlock()
	if !ok || bx == nil {
		return
	}
	for {
		h := bx.hint.Load()
		if h >= seq || bx.hint.CompareAndSwap(h, seq) {
			break
		}
	}
	for {
		n := bx.notified.Load()
		if n >= seq || bx.notified.CompareAndSwap(n, seq) {
			break
		}
	}
	bx.dirty.Store(true)
	if w := mb.wake.Load(); w != nil {
		(*w)(id)
	}
}

// sweep wakes every local mailbox's session now and then: a core-NATS
// notification can be lost (reconnect, slow consumer).
func (mb *Mailboxes) sweep() {
	defer mb.b.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-mb.b.stop:
			return
		case <-t.C:
		}
		w := mb.wake.Load()
		if w == nil {
			continue
		}
		mb.mu.Lock()
		ids := make([]string, 0, len(mb.boxes))
		var idle []*box
		for id, bx := range mb.boxes {
			bx.dirty.Store(true)
			ids = append(ids, id)
			bx.mu.Lock()
			switch {
			case bx.cc != nil && time.Since(bx.lastTake) > prefetchIdle:
				idle = append(idle, bx)
			case bx.pfOn && bx.notified.Load() > bx.pfUpTo:
				if bx.behind.IsZero() {
					bx.behind = time.Now()
				} else if time.Since(bx.behind) >= sweepEvery {
					b := mb.b
					b.log.Warn("mailbox prefetch stalled behind the notifications; reading the stream")
					idle = append(idle, bx)
				}
			default:
				bx.behind = time.Time{}
			}
			bx.mu.Unlock()
		}
		mb.mu.Unlock()
		for _, bx := range idle {
			bx.stopPrefetch()
		}
		for _, id := range ids {
			(*w)(id)
		}
	}
}

// streamLeader is the server leading the stream, "" if unknown; asked
// at most every two seconds (sessions register in bursts).
func (mb *Mailboxes) streamLeader() string {
	mb.leaderMu.Lock()
	defer mb.leaderMu.Unlock()
	if time.Since(mb.leaderAt) < 2*time.Second {
		return mb.leader
	}
	ctx, cancel := mb.b.ctx()
	defer cancel()
	info, err := mb.b.stream.Info(ctx)
	mb.leader, mb.leaderAt = "", time.Now()
	if err == nil && info.Cluster != nil {
		mb.leader = info.Cluster.Leader
	}
	return mb.leader
}
