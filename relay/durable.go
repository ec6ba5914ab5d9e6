package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/sharedenclave/sharedenclave/store"
	"github.com/sharedenclave/sharedenclave/wire"
)

// Record kinds in the store.
const (
	kindMailbox = "relay/mailbox" // blind(id) → id
	kindMessage = "relay/msg"     // blind(id) ‖ seq u64 → from-length u16 ‖ from ‖ data
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
}

type durableBox struct {
	mu         sync.Mutex
	blind      []byte
	head, tail uint64 // sequence numbers head..tail-1 are assigned
	count      int
	bytes      int64
	sizes      map[uint64]int // data size per stored seq
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
	d := &DurableMailboxes{st: st, limits: l, log: log, boxes: map[string]*durableBox{}}
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
		b := &durableBox{blind: append([]byte(nil), k...), sizes: map[uint64]int{}}
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
			b.head = seq
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
	return d, nil
}

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
	d.boxes[id] = &durableBox{blind: blind, sizes: map[uint64]int{}}
	return nil
}

func (d *DurableMailboxes) box(id string) *durableBox {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.boxes[id]
}

// Push implements Mailboxes. The message is durable once Sync returns.
func (d *DurableMailboxes) Push(id string, m Message) error {
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
	if err := d.st.Put(kindMessage, b.key(seq), v, store.NoSync); err != nil {
		return fmt.Errorf("relay: storing message: %w", err)
	}
	if b.count == 0 {
		b.head = seq
	}
	b.tail++
	b.count++
	b.bytes += int64(len(m.Data))
	b.sizes[seq] = len(m.Data)
	return nil
}

// Sync implements the relay's optional Syncer: every Push and Pop made so
// far is on disk when it returns. Concurrent calls share one fsync.
func (d *DurableMailboxes) Sync() error { return d.st.Sync() }

// Pop implements Mailboxes: the message's record is deleted; once Sync
// returns the deletion is on disk, so a message delivered after Sync is
// delivered at most once even across a crash.
func (d *DurableMailboxes) Pop(id string) (Message, bool, error) {
	b := d.box(id)
	if b == nil {
		return Message{}, false, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.head < b.tail {
		seq := b.head
		size, known := b.sizes[seq]
		if !known { // a gap: a refused, missing or failed record
			b.head++
			continue
		}
		v, err := d.st.Get(kindMessage, b.key(seq))
		var m Message
		if err == nil {
			m.From, m.Data, err = decodeStored(v)
		}
		// Only a record that was read and will never open (or is gone) is
		// removed. Anything else — an I/O error above all — leaves it in
		// place: the caller answers with an error and a later Pop retries.
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrCorrupt) && !errors.Is(err, wire.ErrMalformed) {
			return Message{}, false, fmt.Errorf("relay: reading a message (kept): %w", err)
		}
		if err := d.st.Delete(kindMessage, b.key(seq), store.NoSync); err != nil {
			return Message{}, false, err
		}
		delete(b.sizes, seq)
		b.head++
		b.count--
		b.bytes -= int64(size)
		if err != nil {
			d.log.Error("refusing a stored message that no longer opens", "err", err)
			continue
		}
		return m, true, nil
	}
	return Message{}, false, nil
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
