package relay

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Message is one piece of data waiting in a mailbox.
type Message struct {
	From string
	Data []byte
}

// Mailbox errors.
var (
	ErrMailboxFull = errors.New("relay: mailbox full")
	ErrNoMailbox   = errors.New("relay: recipient not found")
	ErrTooMany     = errors.New("relay: too many mailboxes")
	// ErrRelayFull: all mailboxes together hold Limits.MaxTotalBytes.
	ErrRelayFull = errors.New("relay: relay full")
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
}

// MemoryMailboxes keeps mailboxes in enclave memory: nothing survives a
// restart.
type MemoryMailboxes struct {
	limits Limits
	total  atomic.Int64 // data bytes in all mailboxes
	mu     sync.RWMutex
	boxes  map[string]*memBox
}

type memBox struct {
	mu    sync.Mutex
	queue []Message
	head  int
	bytes int64
}

// NewMemoryMailboxes returns empty in-memory mailboxes.
func NewMemoryMailboxes(l Limits) *MemoryMailboxes {
	l.defaults()
	return &MemoryMailboxes{limits: l, boxes: map[string]*memBox{}}
}

// Create implements Mailboxes.
func (mm *MemoryMailboxes) Create(id string) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if _, ok := mm.boxes[id]; ok {
		return nil
	}
	if len(mm.boxes) >= mm.limits.MaxMailboxes {
		return ErrTooMany
	}
	mm.boxes[id] = &memBox{}
	return nil
}

func (mm *MemoryMailboxes) box(id string) *memBox {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	return mm.boxes[id]
}

// Push implements Mailboxes. The data is copied.
func (mm *MemoryMailboxes) Push(id string, m Message) error {
	b := mm.box(id)
	if b == nil {
		return ErrNoMailbox
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue)-b.head >= mm.limits.MaxMessages || b.bytes+int64(len(m.Data)) > mm.limits.MaxBytes {
		return ErrMailboxFull
	}
	if mm.total.Add(int64(len(m.Data))) > mm.limits.MaxTotalBytes {
		mm.total.Add(-int64(len(m.Data)))
		return ErrRelayFull
	}
	m.Data = append([]byte(nil), m.Data...)
	b.queue = append(b.queue, m)
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
	if b.head == len(b.queue) {
		return Message{}, false, nil
	}
	m := b.queue[b.head]
	b.queue[b.head] = Message{}
	b.head++
	b.bytes -= int64(len(m.Data))
	mm.total.Add(-int64(len(m.Data)))
	if b.head == len(b.queue) {
		b.queue, b.head = b.queue[:0], 0
	} else if b.head > 64 && b.head*2 > len(b.queue) {
		n := copy(b.queue, b.queue[b.head:])
		b.queue, b.head = b.queue[:n], 0
	}
	return m, true, nil
}

// Depth returns the number of messages and bytes waiting for id.
func (mm *MemoryMailboxes) Depth(id string) (int, int64) {
	b := mm.box(id)
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue) - b.head, b.bytes
}

// Totals returns the messages and data bytes waiting in all mailboxes.
func (mm *MemoryMailboxes) Totals() (messages, bytes int64) {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	for _, b := range mm.boxes {
		b.mu.Lock()
		messages += int64(len(b.queue) - b.head)
		bytes += b.bytes
		b.mu.Unlock()
	}
	return messages, bytes
}
