package relay

import "time"

// Delivery is a message taken for at-least-once delivery: it stays in its
// mailbox, held, until Ack removes it or Release puts it back.
type Delivery struct {
	// Seq identifies the message in its mailbox; the relay sends it as the
	// delivery id.
	Seq uint64
	Message
	// Redelivered: the message was taken and released before.
	Redelivered bool
}

// Acker is implemented by Mailboxes that support at-least-once delivery
// (both built-in ones). A relay whose Mailboxes lack it does not offer
// the delivery extension.
type Acker interface {
	// Take returns the oldest message of id's mailbox that is not held,
	// and holds it. A held message counts against the mailbox's limits
	// and is not returned by Take or Pop.
	Take(id string) (Delivery, bool, error)
	// Ack removes a held message; false if seq is not held.
	Ack(id string, seq uint64) (bool, error)
	// Release puts a held message back, marked redelivered, ahead of
	// every newer message.
	Release(id string, seq uint64) error
}

// BatchAcker is implemented by Acker Mailboxes that take and acknowledge
// many messages of a mailbox at once (MemoryMailboxes): one lookup and
// one lock per batch instead of one per message.
type BatchAcker interface {
	// TakeN appends up to max deliveries to ds, as that many Takes would.
	TakeN(id string, max int, ds []Delivery) ([]Delivery, error)
	// AckN acknowledges seqs as that many Acks would, and says how many
	// of them were held.
	AckN(id string, seqs []uint64) (int, error)
}

// Deduper is implemented by Mailboxes that de-duplicate sends by message
// id (both built-in ones).
type Deduper interface {
	// PushOnce is Push for a message with an ID: if the same sender pushed
	// the same ID within Limits.DedupWindow, nothing is stored and dup is
	// true. ErrDedupFull when Limits.MaxDedupIDs ids are remembered.
	PushOnce(id string, m Message) (dup bool, err error)
}

// dedupTable remembers keys until they expire. Entries are added with
// expiries in increasing order (the window is fixed), so the oldest is
// first in fifo.
type dedupTable struct {
	max  int
	m    map[string]time.Time
	fifo []dedupEntry // fifo[head:] are live or stale entries, oldest first
	head int
}

type dedupEntry struct {
	key string
	exp time.Time
}

func newDedupTable(l Limits) dedupTable {
	return dedupTable{max: l.MaxDedupIDs, m: map[string]time.Time{}}
}

// prune forgets the keys expired at now and returns them.
func (d *dedupTable) prune(now time.Time) []string {
	var gone []string
	for ; d.head < len(d.fifo) && !d.fifo[d.head].exp.After(now); d.head++ {
		e := d.fifo[d.head]
		if exp, ok := d.m[e.key]; ok && exp.Equal(e.exp) {
			delete(d.m, e.key)
			gone = append(gone, e.key)
		}
		d.fifo[d.head] = dedupEntry{}
	}
	// Compact once the consumed part is most of the slice: amortised O(1).
	if d.head > 64 && d.head*2 > len(d.fifo) {
		n := copy(d.fifo, d.fifo[d.head:])
		d.fifo, d.head = d.fifo[:n], 0
	}
	return gone
}

func (d *dedupTable) has(k string) bool { _, ok := d.m[k]; return ok }
func (d *dedupTable) full() bool        { return len(d.m) >= d.max }
func (d *dedupTable) add(k string, exp time.Time) {
	d.m[k] = exp
	d.fifo = append(d.fifo, dedupEntry{k, exp})
}
