package relay

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Message is one piece of data waiting in a mailbox.
type Message struct {
	From string
	Data []byte
	// ID is the sender's message id (SEND_ID), empty for SEND_DATA.
	ID []byte
}

// Mailbox errors.
var (
	ErrMailboxFull = errors.New("relay: mailbox full")
	ErrNoMailbox   = errors.New("relay: recipient not found")
	ErrTooMany     = errors.New("relay: too many mailboxes")
	// ErrRelayFull: all mailboxes together hold Limits.MaxTotalBytes.
	ErrRelayFull = errors.New("relay: relay full")
	// ErrDedupFull: Limits.MaxDedupIDs message ids are inside the
	// de-duplication window; a send with a new id is refused.
	ErrDedupFull = errors.New("relay: de-duplication table full")
)

// Mailboxes stores messages per client id. A mailbox is created when its
// id first registers and outlives the session. Implementations are safe
// for concurrent use. Push returns once the message is kept — for a store
// that also implements Syncer, once Sync has returned after it — so an
// ACK sent after that is a promise.
type Mailboxes interface {
	// Create makes the mailbox for id if it does not exist.
	Create(id string) error
	// Push appends m to id's mailbox: ErrNoMailbox, ErrMailboxFull.
	Push(id string, m Message) error
	// Pop removes and returns the oldest message, or ok=false.
	Pop(id string) (m Message, ok bool, err error)
}

// Syncer is implemented by Mailboxes whose Push and Pop become durable
// only when Sync returns (DurableMailboxes). The relay calls Sync before
// sending the answers that depend on them.
type Syncer interface {
	Sync() error
}

// Limits bound each mailbox and the number of mailboxes.
type Limits struct {
	MaxMessages  int   // per mailbox; default 1024
	MaxBytes     int64 // per mailbox, data bytes; default 16 MiB
	MaxMailboxes int   // default 100000
	// MaxTotalBytes bounds the data held by all in-memory mailboxes
	// together, so that many ids cannot add up to more memory than the
	// enclave has; default 1 GiB.
	MaxTotalBytes int64
	// DedupWindow is how long a message id (SEND_ID) is remembered, so
	// that a retry inside it is dropped as a duplicate; default 2 minutes.
	DedupWindow time.Duration
	// MaxDedupIDs bounds the ids remembered at once; default 100000. When
	// it is reached a SEND_ID with a new id is refused (never forgotten
	// early, which would let a duplicate through).
	MaxDedupIDs int
}

func (l *Limits) defaults() {
	if l.MaxMessages <= 0 {
		l.MaxMessages = 1024
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 16 << 20
	}
	if l.MaxMailboxes <= 0 {
		l.MaxMailboxes = 100000
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = 1 << 30
	}
	if l.DedupWindow <= 0 {
		l.DedupWindow = 2 * time.Minute
	}
	if l.MaxDedupIDs <= 0 {
		l.MaxDedupIDs = 100000
	}
}

// MemoryMailboxes keeps mailboxes in enclave memory: nothing survives a
// restart.
type MemoryMailboxes struct {
	limits Limits
	total  atomic.Int64 // data bytes in all mailboxes
	mu     sync.Mutex   // serialises Create
	n      int          // mailboxes in boxes
	boxes  sync.Map     // id → *memBox; read without a lock on every message

	dmu   sync.Mutex
	dedup dedupTable
}

// memBox is one mailbox: every message not yet acknowledged, in ents by
// sequence number (which is also the delivery id). An entry before
// cursor was taken at least once: it is held (delivered, not acked),
// released (waiting for redelivery; its seq is also in returned, sorted)
// or acked (gone, left until it can be trimmed). From cursor on, entries
// were never taken. Held messages are found by binary search (usually by
// position: seqs are consecutive until a compaction), not in a map: a
// map insert and delete per delivered message were a tenth of the
// relay's work at sixteen pairs.
type memBox struct {
	mu       sync.Mutex
	ents     []memEntry
	cursor   int      // ents[cursor:] were never taken
	returned []uint64 // released seqs, sorted
	acked    int      // acked entries still in ents
	live     int      // entries not acked
	bytes    int64
	next     uint64
}

type memEntry struct {
	seq   uint64
	m     Message
	state uint8
	// redelivered: the message was released once; it goes out marked.
	redelivered bool
}

const (
	entQueued uint8 = iota
	entHeld
	entReleased
	entAcked
)

// compactAfter is how many acked entries may wait behind a held one
// before ents is compacted (once they are also most of it); a variable
// so that tests can make compactions frequent.
var compactAfter = 64

func (b *memBox) count() int { return b.live }

// backlog is the number of messages waiting to be taken.
func (b *memBox) backlog() int { return len(b.ents) - b.cursor + len(b.returned) }

// find returns the index of seq in ents, or -1.
func (b *memBox) find(seq uint64) int {
	if len(b.ents) == 0 || seq < b.ents[0].seq {
		return -1
	}
	if d := seq - b.ents[0].seq; d < uint64(len(b.ents)) && b.ents[d].seq == seq {
		return int(d)
	}
	i, ok := slices.BinarySearchFunc(b.ents, seq, func(e memEntry, seq uint64) int { return cmp.Compare(e.seq, seq) })
	if !ok {
		return -1
	}
	return i
}

// take marks the oldest message not held as held and returns it: a
// released one if it is older than every never-taken one.
func (b *memBox) take() (*memEntry, bool) {
	i := -1
	if len(b.returned) > 0 && (b.cursor == len(b.ents) || b.returned[0] < b.ents[b.cursor].seq) {
		i = b.find(b.returned[0])
		b.returned = b.returned[1:]
	} else if b.cursor < len(b.ents) {
		i = b.cursor
		b.cursor++
	}
	if i < 0 {
		return nil, false
	}
	e := &b.ents[i]
	e.state = entHeld
	return e, true
}

// remove acknowledges ents[i] (held): its data is dropped at once, its
// entry when it reaches the front or at a compaction.
func (b *memBox) remove(i int) int64 {
	e := &b.ents[i]
	n := int64(len(e.m.Data))
	*e = memEntry{seq: e.seq, state: entAcked}
	b.live--
	b.acked++
	b.bytes -= n
	return n
}

// trim drops acked entries from the front, and compacts ents when acked
// ones (held up behind an older message still held) are most of it.
func (b *memBox) trim() {
	k := 0
	for k < len(b.ents) && b.ents[k].state == entAcked {
		k++
	}
	if k > 0 {
		clear(b.ents[:k])
		b.ents = b.ents[k:]
		b.cursor -= k
		b.acked -= k
	}
	if len(b.ents) == 0 {
		if cap(b.ents) > 4096 { // an emptied backlog: do not keep its array
			b.ents = nil
		}
		b.ents, b.cursor = b.ents[:0], 0
		return
	}
	if b.acked > compactAfter && b.acked*2 > len(b.ents) {
		n, cur := 0, 0
		for i, e := range b.ents {
			if i == b.cursor {
				cur = n
			}
			if e.state != entAcked {
				b.ents[n] = e
				n++
			}
		}
		if b.cursor == len(b.ents) {
			cur = n
		}
		clear(b.ents[n:])
		b.ents, b.cursor, b.acked = b.ents[:n], cur, 0
	}
}

// NewMemoryMailboxes returns empty in-memory mailboxes.
func NewMemoryMailboxes(l Limits) *MemoryMailboxes {
	l.defaults()
	return &MemoryMailboxes{limits: l, dedup: newDedupTable(l)}
}

// Create implements Mailboxes.
func (mm *MemoryMailboxes) Create(id string) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if _, ok := mm.boxes.Load(id); ok {
		return nil
	}
	if mm.n >= mm.limits.MaxMailboxes {
		return ErrTooMany
	}
	// Sequence numbers (delivery ids) start from the clock, so that a
	// client holding ids from before a restart cannot acknowledge a
	// different message that got the same number.
	mm.boxes.Store(id, &memBox{next: uint64(time.Now().UnixNano())})
	mm.n++
	return nil
}

func (mm *MemoryMailboxes) box(id string) *memBox {
	b, _ := mm.boxes.Load(id)
	mb, _ := b.(*memBox)
	return mb
}

// Push implements Mailboxes. The data is copied.
func (mm *MemoryMailboxes) Push(id string, m Message) error {
	b := mm.box(id)
	if b == nil {
		return ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count() >= mm.limits.MaxMessages || b.bytes+int64(len(m.Data)) > mm.limits.MaxBytes {
		return ErrMailboxFull
	}
	if mm.total.Add(int64(len(m.Data))) > mm.limits.MaxTotalBytes {
		mm.total.Add(-int64(len(m.Data)))
		return ErrRelayFull
	}
	m.Data = append([]byte(nil), m.Data...)
	if len(m.ID) > 0 {
		m.ID = append([]byte(nil), m.ID...)
	}
	b.ents = append(b.ents, memEntry{seq: b.next, m: m})
	b.next++
	b.live++
	b.bytes += int64(len(m.Data))
	return nil
}

// Pop implements Mailboxes.
func (mm *MemoryMailboxes) Pop(id string) (Message, bool, error) {
	b := mm.box(id)
	if b == nil {
		return Message{}, false, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.take()
	if !ok {
		return Message{}, false, nil
	}
	m := e.m
	mm.total.Add(-b.remove(b.find(e.seq)))
	b.trim()
	return m, true, nil
}

// Take implements Acker.
func (mm *MemoryMailboxes) Take(id string) (Delivery, bool, error) {
	var one [1]Delivery
	ds, err := mm.TakeN(id, 1, one[:0])
	if err != nil || len(ds) == 0 {
		return Delivery{}, false, err
	}
	return ds[0], true, nil
}

// TakeN implements BatchAcker.
func (mm *MemoryMailboxes) TakeN(id string, max int, ds []Delivery) ([]Delivery, error) {
	b := mm.box(id)
	if b == nil {
		return ds, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for range max {
		e, ok := b.take()
		if !ok {
			break
		}
		ds = append(ds, Delivery{Seq: e.seq, Message: e.m, Redelivered: e.redelivered})
	}
	return ds, nil
}

// Ack implements Acker.
func (mm *MemoryMailboxes) Ack(id string, seq uint64) (bool, error) {
	n, err := mm.AckN(id, []uint64{seq})
	return n == 1, err
}

// AckN implements BatchAcker.
func (mm *MemoryMailboxes) AckN(id string, seqs []uint64) (int, error) {
	b := mm.box(id)
	if b == nil {
		return 0, ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, freed := 0, int64(0)
	for _, seq := range seqs {
		if i := b.find(seq); i >= 0 && b.ents[i].state == entHeld {
			freed += b.remove(i)
			n++
		}
	}
	if n > 0 {
		mm.total.Add(-freed)
		b.trim()
	}
	return n, nil
}

// Release implements Acker.
func (mm *MemoryMailboxes) Release(id string, seq uint64) error {
	b := mm.box(id)
	if b == nil {
		return ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.find(seq)
	if i < 0 || b.ents[i].state != entHeld {
		return nil
	}
	b.ents[i].state = entReleased
	b.ents[i].redelivered = true
	j, _ := slices.BinarySearch(b.returned, seq)
	b.returned = slices.Insert(b.returned, j, seq)
	return nil
}

// PushOnce implements Deduper.
func (mm *MemoryMailboxes) PushOnce(id string, m Message) (bool, error) {
	k := dedupKey(m.From, m.ID)
	mm.dmu.Lock()
	defer mm.dmu.Unlock()
	now := time.Now()
	mm.dedup.prune(now)
	if mm.dedup.has(k) {
		return true, nil
	}
	if mm.dedup.full() {
		return false, ErrDedupFull
	}
	if err := mm.Push(id, m); err != nil {
		return false, err
	}
	mm.dedup.add(k, now.Add(mm.limits.DedupWindow))
	return false, nil
}

// Depth returns the number of messages and bytes waiting for id.
func (mm *MemoryMailboxes) Depth(id string) (int, int64) {
	b := mm.box(id)
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count(), b.bytes
}

// Totals returns the messages and data bytes waiting in all mailboxes.
func (mm *MemoryMailboxes) Totals() (messages, bytes int64) {
	mm.boxes.Range(func(_, v any) bool {
		b := v.(*memBox)
		b.mu.Lock()
		messages += int64(b.count())
		bytes += b.bytes
		b.mu.Unlock()
		return true
	})
	return messages, bytes
}

// dedupKey names a (sender, message id) pair in the de-duplication table
// of MemoryMailboxes: 16 bytes, whatever the lengths.
func dedupKey(from string, msgID []byte) string {
	h := sha256.New()
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write(msgID)
	return string(h.Sum(nil)[:16])
}

// DedupWindow is how long a message id is remembered (Limits.DedupWindow).
func (mm *MemoryMailboxes) DedupWindow() time.Duration { return mm.limits.DedupWindow }

// Backlog implements Backlogger: the messages of id's mailbox not yet
// taken (never taken, or released for redelivery).
func (mm *MemoryMailboxes) Backlog(id string) int {
	b := mm.box(id)
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.backlog()
}
