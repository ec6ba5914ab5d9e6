package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/sharedenclave/sharedenclave/store"
	"github.com/sharedenclave/sharedenclave/wire"
)

// Record kinds in the store.
const (
	kindMailbox = "relay/mailbox" // blind(id) → id
	kindMessage = "relay/msg"     // blind(id) ‖ seq u64 → from-length u16 ‖ from ‖ data
	kindMsgID   = "relay/msgid"   // blind(id) ‖ seq u64 → the sender's message id, for a message sent with SEND_ID
	kindDedup   = "relay/dedup"   // blind(from ‖ 0 ‖ msgid) → expiry, unix ms u64
	// kindTail keeps a mailbox's next sequence number when it becomes
	// empty, so that delivery ids are never reused after a restart (a
	// client may still acknowledge an id it was given before).
	kindTail = "relay/tail" // blind(id) → next seq u64
)

// DurableMailboxes keeps mailboxes in a sealed store. Push and Pop write
// to the store's log without waiting for the disk; Sync waits for
// everything written so far. The relay calls Sync before it sends any
// answer that depends on those writes, so a SEND is acknowledged only
// after its message is on disk and a POLL's message is removed on disk
// before it is delivered — with one fsync per batch of answers instead of
// one per frame. Client ids never appear on disk in the clear: storage
// keys use seal.Sealer.Blind.
type DurableMailboxes struct {
	st     *store.Store
	limits Limits
	log    *slog.Logger

	mu    sync.RWMutex
	boxes map[string]*durableBox

	dmu   sync.Mutex
	dedup dedupTable // keys are blinded (kindDedup)
}

type durableBox struct {
	mu         sync.Mutex
	blind      []byte
	head, tail uint64 // sequence numbers head..tail-1 are assigned
	next       uint64 // no seq below next is neither held nor released (Take looks from here)
	count      int
	bytes      int64
	sizes      map[uint64]int    // data size per stored seq
	msgIDs     map[uint64][]byte // message id per stored seq sent with one
	held       map[uint64]bool
	returned   []uint64 // released, sorted
}

func newDurableBox(blind []byte) *durableBox {
	return &durableBox{blind: blind, sizes: map[uint64]int{}, msgIDs: map[uint64][]byte{}, held: map[uint64]bool{}}
}

// OpenDurableMailboxes loads every mailbox from st. Records that fail to
// open (tampered, swapped, sealed by another enclave) are logged and
// refused: they are never delivered. Missing records inside a mailbox (the
// host deleted them) are logged.
func OpenDurableMailboxes(st *store.Store, l Limits, log *slog.Logger) (*DurableMailboxes, error) {
	l.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DurableMailboxes{st: st, limits: l, log: log, boxes: map[string]*durableBox{}, dedup: newDedupTable(l)}
	byBlind := map[string]*durableBox{}
	err := st.Scan(kindMailbox, nil, func(k, v []byte, err error) error {
		if errors.Is(err, store.ErrIO) {
			return err
		}
		if err != nil {
			log.Error("refusing a mailbox record that does not open", "err", err)
			return nil
		}
		if wire.CheckID(v) != nil || string(st.Sealer().Blind(kindMailbox, v)) != string(k) {
			log.Error("refusing a mailbox record whose id does not match its key")
			return nil
		}
		b := newDurableBox(append([]byte(nil), k...))
		d.boxes[string(v)] = b
		byBlind[string(k)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: reading the mailboxes: %w (no record was changed; check the disk, then start again)", err)
	}
	refused := 0
	err = st.Scan(kindMessage, nil, func(k, v []byte, err error) error {
		if len(k) != 16+8 {
			refused++
			return nil
		}
		if errors.Is(err, store.ErrIO) {
			return err
		}
		b := byBlind[string(k[:16])]
		if err != nil || b == nil {
			refused++
			log.Error("refusing a stored message", "err", err)
			return nil
		}
		seq := binary.BigEndian.Uint64(k[16:])
		_, data, perr := decodeStored(v)
		if perr != nil {
			refused++
			return nil
		}
		if b.count == 0 {
			b.head, b.next = seq, seq
		} else if seq != b.tail {
			log.Error("messages missing from a mailbox (deleted on disk?)", "from_seq", b.tail, "to_seq", seq-1)
		}
		b.tail = seq + 1
		b.count++
		b.bytes += int64(len(data))
		b.sizes[seq] = len(data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: reading the stored messages: %w (no record was changed; check the disk, then start again)", err)
	}
	if refused > 0 {
		log.Error("stored messages refused at startup", "count", refused)
	}
	err = st.Scan(kindMsgID, nil, func(k, v []byte, err error) error {
		if errors.Is(err, store.ErrIO) {
			return err
		}
		if err != nil || len(k) != 16+8 || len(v) == 0 || len(v) > wire.MaxMsgIDLen {
			return nil
		}
		if b := byBlind[string(k[:16])]; b != nil {
			if seq := binary.BigEndian.Uint64(k[16:]); b.sizes[seq] != 0 || hasSeq(b, seq) {
				b.msgIDs[seq] = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: reading the stored message ids: %w (no record was changed; check the disk, then start again)", err)
	}
	err = st.Scan(kindTail, nil, func(k, v []byte, err error) error {
		if errors.Is(err, store.ErrIO) {
			return err
		}
		if err != nil || len(v) != 8 {
			return nil
		}
		if b := byBlind[string(k)]; b != nil {
			if t := binary.BigEndian.Uint64(v); t > b.tail {
				if b.count == 0 {
					b.head, b.next = t, t
				}
				b.tail = t
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: reading the mailbox sequence numbers: %w (no record was changed; check the disk, then start again)", err)
	}
	now := time.Now()
	var expired [][]byte
	err = st.Scan(kindDedup, nil, func(k, v []byte, err error) error {
		if errors.Is(err, store.ErrIO) {
			return err
		}
		if err != nil || len(v) != 8 {
			return nil
		}
		exp := time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
		if !exp.After(now) {
			expired = append(expired, append([]byte(nil), k...))
			return nil
		}
		d.dedup.m[string(k)] = exp
		d.dedup.fifo = append(d.dedup.fifo, dedupEntry{string(k), exp})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: reading the de-duplication window: %w (no record was changed; check the disk, then start again)", err)
	}
	sort.Slice(d.dedup.fifo, func(i, j int) bool { return d.dedup.fifo[i].exp.Before(d.dedup.fifo[j].exp) })
	for _, k := range expired {
		st.Delete(kindDedup, k, store.NoSync)
	}
	return d, nil
}

func hasSeq(b *durableBox, seq uint64) bool { _, ok := b.sizes[seq]; return ok }

func encodeStored(from string, data []byte) ([]byte, error) {
	return wire.AppendAddressed(make([]byte, 0, 2+len(from)+len(data)), from, data)
}

func decodeStored(v []byte) (string, []byte, error) {
	from, data, err := wire.ParseAddressed(v)
	if err != nil {
		return "", nil, err
	}
	return string(from), data, nil
}

func (b *durableBox) key(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), b.blind...), seq)
}

// Create implements Mailboxes: the mailbox is written (synced) before the
// registration is acknowledged.
func (d *DurableMailboxes) Create(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.boxes[id]; ok {
		return nil
	}
	if len(d.boxes) >= d.limits.MaxMailboxes {
		return ErrTooMany
	}
	blind := d.st.Sealer().Blind(kindMailbox, []byte(id))
	if err := d.st.Put(kindMailbox, blind, []byte(id), store.Sync); err != nil {
		return fmt.Errorf("relay: storing mailbox: %w", err)
	}
	d.boxes[id] = newDurableBox(blind)
	return nil
}

func (d *DurableMailboxes) box(id string) *durableBox {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.boxes[id]
}

// Push implements Mailboxes. The message is durable once Sync returns.
func (d *DurableMailboxes) Push(id string, m Message) error {
	return d.push(id, m, nil)
}

// push stores m; extra, if set, adds records to the same atomic batch.
func (d *DurableMailboxes) push(id string, m Message, extra func(*store.Batch) error) error {
	b := d.box(id)
	if b == nil {
		return ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count >= d.limits.MaxMessages || b.bytes+int64(len(m.Data)) > d.limits.MaxBytes {
		return ErrMailboxFull
	}
	seq := b.tail
	v, err := encodeStored(m.From, m.Data)
	if err != nil {
		return fmt.Errorf("relay: storing message: %w", err)
	}
	if len(m.ID) == 0 && extra == nil {
		err = d.st.Put(kindMessage, b.key(seq), v, store.NoSync)
	} else {
		bt := d.st.NewBatch()
		err = bt.Put(kindMessage, b.key(seq), v)
		if err == nil && len(m.ID) > 0 {
			err = bt.Put(kindMsgID, b.key(seq), m.ID)
		}
		if err == nil && extra != nil {
			err = extra(bt)
		}
		if err == nil {
			err = bt.Commit(store.NoSync)
		}
	}
	if err != nil {
		return fmt.Errorf("relay: storing message: %w", err)
	}
	if b.count == 0 {
		b.head = seq
	}
	b.tail++
	b.count++
	b.bytes += int64(len(m.Data))
	b.sizes[seq] = len(m.Data)
	if len(m.ID) > 0 {
		b.msgIDs[seq] = append([]byte(nil), m.ID...)
	}
	return nil
}

// PushOnce implements Deduper: the message, its id and the id's
// de-duplication record are written in one atomic batch, durable once
// Sync returns; the window survives restarts.
func (d *DurableMailboxes) PushOnce(id string, m Message) (bool, error) {
	k := d.st.Sealer().Blind(kindDedup, append(append([]byte(m.From), 0), m.ID...))
	d.dmu.Lock()
	defer d.dmu.Unlock()
	now := time.Now()
	for _, gone := range d.dedup.prune(now) {
		d.st.Delete(kindDedup, []byte(gone), store.NoSync)
	}
	if d.dedup.has(string(k)) {
		return true, nil
	}
	if d.dedup.full() {
		return false, ErrDedupFull
	}
	exp := now.Add(d.limits.DedupWindow)
	err := d.push(id, m, func(bt *store.Batch) error {
		return bt.Put(kindDedup, k, binary.BigEndian.AppendUint64(nil, uint64(exp.UnixMilli())))
	})
	if err != nil {
		return false, err
	}
	d.dedup.add(string(k), exp)
	return false, nil
}

// Sync implements the relay's optional Syncer: every Push and Pop made so
// far is on disk when it returns. Concurrent calls share one fsync.
func (d *DurableMailboxes) Sync() error { return d.st.Sync() }

// Pop implements Mailboxes: the message's record is deleted; once Sync
// returns the deletion is on disk, so a message delivered after Sync is
// delivered at most once even across a crash. Held messages are skipped.
func (d *DurableMailboxes) Pop(id string) (Message, bool, error) {
	b := d.box(id)
	if b == nil {
		return Message{}, false, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	seq, m, _, ok, err := d.takeLocked(b)
	if !ok || err != nil {
		return Message{}, false, err
	}
	if err := d.removeLocked(b, seq); err != nil {
		return Message{}, false, err
	}
	return m, true, nil
}

// Take implements Acker. Nothing is written: a held message is on disk
// until Ack, and after a restart it is delivered again.
func (d *DurableMailboxes) Take(id string) (Delivery, bool, error) {
	b := d.box(id)
	if b == nil {
		return Delivery{}, false, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	seq, m, re, ok, err := d.takeLocked(b)
	if !ok || err != nil {
		return Delivery{}, false, err
	}
	b.held[seq] = true
	return Delivery{Seq: seq, Message: m, Redelivered: re}, true, nil
}

// Ack implements Acker: the record is deleted (on disk once Sync returns).
func (d *DurableMailboxes) Ack(id string, seq uint64) (bool, error) {
	b := d.box(id)
	if b == nil {
		return false, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.held[seq] {
		return false, nil
	}
	if err := d.removeLocked(b, seq); err != nil {
		return false, err
	}
	delete(b.held, seq)
	return true, nil
}

// Release implements Acker.
func (d *DurableMailboxes) Release(id string, seq uint64) error {
	b := d.box(id)
	if b == nil {
		return ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.held[seq] {
		return nil
	}
	delete(b.held, seq)
	i := sort.Search(len(b.returned), func(i int) bool { return b.returned[i] > seq })
	b.returned = append(b.returned, 0)
	copy(b.returned[i+1:], b.returned[i:])
	b.returned[i] = seq
	return nil
}

// takeLocked finds the oldest message neither held nor removed: released
// ones first if they are older. Only a record that was read and will
// never open (or is gone) is removed on the way; anything else — an I/O
// error above all — leaves it in place and returns the error, and a
// later call retries.
func (d *DurableMailboxes) takeLocked(b *durableBox) (seq uint64, m Message, redelivered, ok bool, err error) {
	for {
		fromReturned := len(b.returned) > 0
		if fromReturned {
			seq = b.returned[0]
			// A never-taken message older than the oldest released one
			// goes first.
			for b.next < seq && (!hasSeq(b, b.next) || b.held[b.next]) {
				b.next++
			}
			if b.next < seq {
				seq, fromReturned = b.next, false
			}
		} else {
			for b.next < b.tail && (!hasSeq(b, b.next) || b.held[b.next]) {
				b.next++
			}
			if b.next >= b.tail {
				return 0, Message{}, false, false, nil
			}
			seq = b.next
		}
		if !hasSeq(b, seq) { // a released message removed since
			b.returned = b.returned[1:]
			continue
		}
		v, rerr := d.st.Get(kindMessage, b.key(seq))
		if rerr == nil {
			m.From, m.Data, rerr = decodeStored(v)
		}
		if rerr != nil && !errors.Is(rerr, store.ErrNotFound) && !errors.Is(rerr, store.ErrCorrupt) && !errors.Is(rerr, wire.ErrMalformed) {
			return 0, Message{}, false, false, fmt.Errorf("relay: reading a message (kept): %w", rerr)
		}
		if fromReturned {
			b.returned = b.returned[1:]
		} else {
			b.next = seq + 1
		}
		if rerr != nil {
			d.log.Error("refusing a stored message that no longer opens", "err", rerr)
			if err := d.removeLocked(b, seq); err != nil {
				return 0, Message{}, false, false, err
			}
			continue
		}
		m.ID = b.msgIDs[seq]
		return seq, m, fromReturned, true, nil
	}
}

// removeLocked deletes a stored message (and its id record; and writes
// the mailbox's next sequence number when it is the last).
func (d *DurableMailboxes) removeLocked(b *durableBox, seq uint64) error {
	var err error
	_, hasID := b.msgIDs[seq]
	if hasID || b.count == 1 {
		bt := d.st.NewBatch()
		err = bt.Delete(kindMessage, b.key(seq))
		if err == nil && hasID {
			err = bt.Delete(kindMsgID, b.key(seq))
		}
		if err == nil && b.count == 1 {
			err = bt.Put(kindTail, b.blind, binary.BigEndian.AppendUint64(nil, b.tail))
		}
		if err == nil {
			err = bt.Commit(store.NoSync)
		}
	} else {
		err = d.st.Delete(kindMessage, b.key(seq), store.NoSync)
	}
	if err != nil {
		return err
	}
	b.count--
	b.bytes -= int64(b.sizes[seq])
	delete(b.sizes, seq)
	delete(b.msgIDs, seq)
	return nil
}

// Totals returns the messages and data bytes waiting in all mailboxes.
func (d *DurableMailboxes) Totals() (messages, bytes int64) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, b := range d.boxes {
		b.mu.Lock()
		messages += int64(b.count)
		bytes += b.bytes
		b.mu.Unlock()
	}
	return messages, bytes
}

// DedupWindow is how long a message id is remembered (Limits.DedupWindow).
func (d *DurableMailboxes) DedupWindow() time.Duration { return d.limits.DedupWindow }

// Backlog implements Backlogger: the messages of id's mailbox not held by
// a delivery.
func (d *DurableMailboxes) Backlog(id string) int {
	b := d.box(id)
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count - len(b.held)
}
