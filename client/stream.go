package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedenclave/sharedenclave/wire"
)

// Options configures a Client (Connect).
type Options struct {
	// Addrs are the relay addresses, tried in turn at each (re)connect.
	Addrs []string
	// ID is the client id registered on every connection.
	ID string
	// Receive subscribes for push delivery, so that Receive and
	// Subscribe return messages. Without it the Client only sends.
	Receive bool
	// Window is the push credit: how many delivered messages may wait in
	// the Client before the application takes them; default 64, at most
	// what the relay allows (HELLO_ACK).
	Window int
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts;
	// defaults 50 ms and 2 s.
	MinBackoff, MaxBackoff time.Duration
	// Rand is the source of message ids; default crypto/rand.
	Rand io.Reader
}

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("client: closed")

// ErrOutcomeUnknown: a send over a relay without message ids was cut off
// before its answer; it may or may not have been stored, and it is not
// retried (that could store it twice).
var ErrOutcomeUnknown = errors.New("client: the relay has no message ids and the connection failed before SEND_ACK: the message may or may not be stored")

// Delivery is a message received by a Client.
type Delivery struct {
	From string
	Data []byte
	// MsgID is the sender's message id (empty if it sent none).
	MsgID []byte
	// Redelivered: the relay delivered it before (to this client id) and
	// it was not acknowledged.
	Redelivered bool

	id  uint64
	gen uint64
	key string // from ‖ 0 ‖ msgid, when MsgID is set
}

// Client is a relay client for applications: safe for concurrent use,
// it keeps one attested connection, reconnects (fresh TLS and
// attestation, to the next of Options.Addrs) when it fails, registers its
// id again, resubscribes, and retries sends that had no answer with the
// same message id, so that the relay stores each once.
//
// Against a relay without the delivery extension (the seed protocol) it
// falls back: Receive polls, Ack does nothing (POLL removes the message),
// and sends are not retried (ErrOutcomeUnknown).
type Client struct {
	cfg  Config
	o    Options
	done chan struct{}

	mu       sync.Mutex
	cur      *link
	up       chan struct{} // closed when cur is set
	closed   bool
	gen      uint64
	inbox    []*Delivery
	consumed int
	seen     map[string]*seenEntry
	seenFIFO []string
	signal   chan struct{}
	wg       sync.WaitGroup
}

type seenEntry struct {
	acked bool
	id    uint64
	gen   uint64
}

// maxSeen bounds the message ids a Client remembers to hide redeliveries
// from the application.
const maxSeen = 65536

// Connect connects to the first address of o.Addrs that answers (each
// tried once), registers o.ID and, with o.Receive, subscribes. It returns
// once that succeeded; later failures are repaired in the background.
func Connect(ctx context.Context, cfg Config, o Options) (*Client, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("client: Options.Addrs is empty")
	}
	if err := wire.CheckID([]byte(o.ID)); err != nil {
		return nil, fmt.Errorf("client: Options.ID: %w", err)
	}
	if o.Window < 0 || o.MinBackoff < 0 || o.MaxBackoff < 0 {
		return nil, errors.New("client: Options.Window, MinBackoff and MaxBackoff must not be negative")
	}
	if o.Window == 0 {
		o.Window = 64
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	c := &Client{cfg: cfg, o: o, done: make(chan struct{}), up: make(chan struct{}), seen: map[string]*seenEntry{}, signal: make(chan struct{}, 1)}
	var l *link
	var err error
	for _, addr := range o.Addrs {
		if l, err = c.dial(ctx, addr); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	c.setLink(l)
	c.wg.Add(1)
	go c.maintain(l)
	return c, nil
}

// Close closes the connection and stops reconnecting.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	l := c.cur
	close(c.done)
	c.mu.Unlock()
	if l != nil {
		l.close()
	}
	c.wg.Wait()
	return nil
}

// Extensions reports whether the current connection negotiated the
// delivery extension (false: the seed protocol's POLL fallback).
func (c *Client) Extensions() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil && c.cur.features&wire.FeatureDelivery != 0
}

func (c *Client) setLink(l *link) {
	c.mu.Lock()
	c.cur = l
	close(c.up)
	c.mu.Unlock()
}

// maintain waits for the link to fail and replaces it, with backoff,
// until Close.
func (c *Client) maintain(l *link) {
	defer c.wg.Done()
	i := 0
	for {
		select {
		case <-l.dead:
		case <-c.done:
			return
		}
		c.mu.Lock()
		c.cur = nil
		c.up = make(chan struct{})
		// Deliveries of the lost connection not yet taken are dropped: the
		// relay releases them and delivers them again. (Polled ones are
		// kept: POLL removed them from the relay.)
		kept := c.inbox[:0]
		for _, d := range c.inbox {
			if d.gen != l.gen || l.features&wire.FeatureDelivery == 0 {
				kept = append(kept, d)
			}
		}
		clear(c.inbox[len(kept):])
		c.inbox = kept
		c.consumed = 0
		c.mu.Unlock()
		backoff := c.o.MinBackoff
		for {
			select {
			case <-c.done:
				return
			case <-time.After(backoff):
			}
			i++
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
			nl, err := c.dial(ctx, c.o.Addrs[i%len(c.o.Addrs)])
			cancel()
			if err == nil {
				l = nl
				c.mu.Lock()
				if c.closed {
					c.mu.Unlock()
					l.close()
					return
				}
				c.mu.Unlock()
				c.setLink(l)
				break
			}
			backoff = min(2*backoff, c.o.MaxBackoff)
		}
	}
}

// link is one attested connection.
type link struct {
	c        *Client
	conn     *Conn
	r        *wire.Reader
	gen      uint64
	features uint32
	info     wire.HelloAckInfo
	idle     atomic.Int64 // the relay's idle timeout, once HELLO_ACK said it

	wmu      sync.Mutex
	w        *bufio.Writer
	buf      []byte
	pending  []chan reply
	ackTimer *time.Timer // set while AckAsync's ACKs wait in w for their flush

	dead     chan struct{}
	deadOnce sync.Once
}

type reply struct {
	t       wire.Type
	payload []byte
}

func (l *link) close() {
	l.deadOnce.Do(func() { close(l.dead) })
	l.conn.Close()
}

// errLinkDown: the connection failed before the answer came.
var errLinkDown = errors.New("client: connection lost")

// start writes a request and returns the channel its answer arrives on.
func (l *link) start(t wire.Type, payload []byte) (chan reply, error) {
	ch := make(chan reply, 1)
	return ch, l.write(t, payload, ch)
}

// ackDelay is how long an ACK written by AckAsync may wait for the next
// request to carry it, before it is written on its own.
const ackDelay = time.Millisecond

// write writes a request whose answer goes to ch. With ch nil (AckAsync)
// the answer is read and dropped, and the frame is not flushed at once:
// the next request's write carries it, or a flush after ackDelay.
func (l *link) write(t wire.Type, payload []byte, ch chan reply) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	select {
	case <-l.dead:
		return errLinkDown
	default:
	}
	l.buf = wire.AppendFrame(l.buf[:0], t, payload)
	if ch == nil && l.w.Available() >= len(l.buf) {
		l.w.Write(l.buf)
		l.pending = append(l.pending, nil)
		if l.ackTimer == nil {
			l.ackTimer = time.AfterFunc(ackDelay, l.flushAcks)
		}
		return nil
	}
	l.w.Write(l.buf)
	l.conn.conn.SetWriteDeadline(time.Now().Add(l.c.cfg.Timeout))
	if err := l.w.Flush(); err != nil {
		go l.close()
		return errLinkDown
	}
	l.pending = append(l.pending, ch)
	return nil
}

// flushAcks writes the ACKs that AckAsync left waiting, if no request
// has carried them since.
func (l *link) flushAcks() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.ackTimer = nil
	if l.w.Buffered() == 0 {
		return
	}
	select {
	case <-l.dead:
		return
	default:
	}
	l.conn.conn.SetWriteDeadline(time.Now().Add(l.c.cfg.Timeout))
	if err := l.w.Flush(); err != nil {
		go l.close()
	}
}

func (l *link) request(ctx context.Context, t wire.Type, payload []byte) (reply, error) {
	ch, err := l.start(t, payload)
	if err != nil {
		return reply{}, err
	}
	select {
	case r := <-ch:
		if r.t == wire.Error {
			return r, &ServerError{Reason: string(r.payload)}
		}
		return r, nil
	case <-l.dead:
		return reply{}, errLinkDown
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

func (c *Client) dial(ctx context.Context, addr string) (*link, error) {
	conn, err := Dial(ctx, addr, c.cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.mu.Unlock()
	maxPayload := c.cfg.MaxPayload
	if maxPayload <= 0 {
		maxPayload = wire.DefaultMaxPayload
	}
	l := &link{
		c: c, conn: conn, gen: gen, dead: make(chan struct{}),
		// A DELIVER carries a few hundred bytes more than the SEND it came from.
		r: wire.NewReader(conn.conn, maxPayload+1024), w: bufio.NewWriterSize(conn.conn, 16<<10),
	}
	go l.read()
	fail := func(err error) (*link, error) { l.close(); return nil, err }

	r, err := l.request(ctx, wire.Hello, wire.AppendHello(nil, wire.HelloInfo{Version: wire.ExtVersion, Features: wire.FeatureDelivery | wire.FeatureMsgID}))
	var se *ServerError
	switch {
	case errors.As(err, &se):
		// A relay of the seed protocol: "unknown frame type". Fall back.
	case err != nil:
		return fail(err)
	case r.t == wire.HelloAck:
		info, err := wire.ParseHelloAck(r.payload)
		if err != nil {
			return fail(fmt.Errorf("client: HELLO_ACK: %w", err))
		}
		l.info, l.features = info, info.Features
		if info.IdleMS > 0 {
			l.idle.Store(int64(time.Duration(info.IdleMS) * time.Millisecond))
		}
	default:
		return fail(fmt.Errorf("client: unexpected %s in answer to HELLO", r.t))
	}
	p, err := wire.AppendRegister(nil, c.o.ID)
	if err != nil {
		return fail(err)
	}
	if r, err = l.request(ctx, wire.RegisterClient, p); err != nil {
		return fail(err)
	}
	if err := expect(wire.Frame{Type: r.t, Payload: r.payload}, wire.RegisterAck, wire.RegisterNack); err != nil {
		return fail(err)
	}
	if c.o.Receive {
		if l.features&wire.FeatureDelivery != 0 {
			window := min(c.o.Window, int(l.info.MaxCredit))
			if r, err = l.request(ctx, wire.Subscribe, wire.AppendU32(nil, uint32(window))); err != nil {
				return fail(err)
			}
			if r.t != wire.SubscribeAck {
				return fail(fmt.Errorf("client: SUBSCRIBE refused: %s %q", r.t, r.payload))
			}
		} else {
			go l.poll()
		}
	}
	if l.features != 0 && l.info.IdleMS > 0 {
		go l.ping(time.Duration(l.info.IdleMS) * time.Millisecond / 3)
	}
	return l, nil
}

// read demultiplexes frames: DELIVERs go to the inbox, everything else
// answers the oldest pending request.
func (l *link) read() {
	defer l.close()
	var sl slab
	for n := 0; ; n++ {
		// Pings keep an extension session busy; a seed session is closed by
		// the relay after its idle timeout. Past either, the link is dead.
		// The deadline is renewed when the next read may wait, and every
		// 128 frames: frames already buffered need no clock reading each.
		if l.r.Buffered() == 0 || n%128 == 0 {
			idle := time.Duration(l.idle.Load())
			if idle <= 0 {
				idle = 5 * time.Minute
			}
			l.conn.conn.SetReadDeadline(time.Now().Add(idle + l.c.cfg.Timeout))
		}
		f, err := l.r.ReadFrame()
		if err != nil {
			return
		}
		if f.Type == wire.Deliver {
			d, err := wire.ParseDelivery(f.Payload)
			if err != nil || !l.c.deliver(l, &sl, d) {
				return
			}
			continue
		}
		l.wmu.Lock()
		if len(l.pending) == 0 {
			l.wmu.Unlock()
			return // an answer to nothing: the relay is confused
		}
		ch := l.pending[0]
		l.pending = l.pending[1:]
		l.wmu.Unlock()
		if ch == nil { // an answer nobody waits for (AckAsync)
			continue
		}
		ch <- reply{t: f.Type, payload: append([]byte(nil), f.Payload...)}
	}
}

func (l *link) ping(every time.Duration) {
	every = max(every, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.dead:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.Timeout)
			_, err := l.request(ctx, wire.Ping, nil)
			cancel()
			if err != nil {
				l.close()
				return
			}
		}
	}
}

// poll is Receive's fallback against a seed relay: POLL, with a growing
// pause while the mailbox is empty.
func (l *link) poll() {
	var sl slab
	pause := 10 * time.Millisecond
	for {
		l.c.mu.Lock()
		full := len(l.c.inbox) >= l.c.o.Window
		l.c.mu.Unlock()
		if full { // the application is behind: leave the rest on the relay
			select {
			case <-l.dead:
				return
			case <-time.After(pause):
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.Timeout)
		r, err := l.request(ctx, wire.PollData, nil)
		cancel()
		if err != nil {
			l.close()
			return
		}
		if r.t == wire.DataAvailable {
			from, data, err := wire.ParseAddressed(r.payload)
			if err != nil {
				l.close()
				return
			}
			l.c.deliver(l, &sl, wire.Delivery{From: from, Data: data})
			pause = 10 * time.Millisecond
			continue
		}
		select {
		case <-l.dead:
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// deliver puts a delivery in the inbox. A message id seen before is not
// shown to the application again: if it was acknowledged the redelivery
// is acknowledged at once, otherwise the application's later Ack of the
// first copy acknowledges this one. False: the relay sent more than the
// credit allows.
func (c *Client) deliver(l *link, sl *slab, w wire.Delivery) bool {
	d := sl.delivery(w)
	d.Redelivered, d.id, d.gen = w.Flags&wire.FlagRedelivered != 0, w.ID, l.gen
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inbox) > 2*c.o.Window+16 {
		return false
	}
	if len(w.MsgID) > 0 {
		d.MsgID = append([]byte(nil), w.MsgID...)
		d.key = d.From + "\x00" + string(d.MsgID)
		if c.dupLocked(l, d) {
			return true
		}
	}
	c.inbox = append(c.inbox, d)
	select {
	case c.signal <- struct{}{}:
	default:
	}
	return true
}

// slab makes the Deliveries of one reader: their structs and (for
// messages up to 512 bytes) their data come from allocations shared by
// many messages, and a sender's id is one string while it keeps sending:
// at a few hundred thousand messages a second, three allocations per
// message were a fifth of the client's receiving work. A Delivery the
// application keeps keeps its share alive (at most 8 KiB of data and 32
// structs).
type slab struct {
	ds   []Delivery
	buf  []byte
	from string
}

func (sl *slab) delivery(w wire.Delivery) *Delivery {
	if len(sl.ds) == 0 {
		sl.ds = make([]Delivery, 32)
	}
	d := &sl.ds[0]
	sl.ds = sl.ds[1:]
	if string(w.From) != sl.from {
		sl.from = string(w.From)
	}
	d.From = sl.from
	switch n := len(w.Data); {
	case n == 0:
	case n > 512:
		d.Data = append([]byte(nil), w.Data...)
	default:
		if len(sl.buf) < n {
			sl.buf = make([]byte, 8<<10)
		}
		d.Data = sl.buf[:n:n] // capped: an append by the application copies
		copy(d.Data, w.Data)
		sl.buf = sl.buf[n:]
	}
	return d
}

// dupLocked reports whether d's message id was already handed to the
// application; if so it takes d's delivery id for the application's Ack
// (or acknowledges it now, if the application already did) and counts d
// as consumed.
func (c *Client) dupLocked(l *link, d *Delivery) bool {
	e, ok := c.seen[d.key]
	if !ok {
		return false
	}
	e.id, e.gen = d.id, d.gen
	if l != nil && l.gen == d.gen {
		c.creditLocked(l)
		if e.acked {
			go l.ack([]uint64{d.id})
		}
	}
	return true
}

// markSeenLocked remembers that d was handed to the application.
func (c *Client) markSeenLocked(d *Delivery) {
	c.seen[d.key] = &seenEntry{id: d.id, gen: d.gen}
	c.seenFIFO = append(c.seenFIFO, d.key)
	if len(c.seenFIFO) > maxSeen {
		delete(c.seen, c.seenFIFO[0])
		c.seenFIFO = c.seenFIFO[1:]
	}
}

// creditLocked counts one delivery as consumed and grants credit back in
// batches of half the window.
func (c *Client) creditLocked(l *link) {
	if l == nil || l.features&wire.FeatureDelivery == 0 || !c.o.Receive {
		return
	}
	c.consumed++
	if c.consumed >= max(c.o.Window/2, 1) {
		n := c.consumed
		c.consumed = 0
		p, _ := wire.AppendCredit(nil, uint32(n))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
			defer cancel()
			l.request(ctx, wire.Credit, p)
		}()
	}
}

func (l *link) ack(ids []uint64) error {
	for len(ids) > 0 {
		n := min(len(ids), wire.MaxAckIDs)
		p, err := wire.AppendAck(nil, wire.AckReq{IDs: ids[:n]})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.Timeout)
		r, err := l.request(ctx, wire.Ack, p)
		cancel()
		if err != nil {
			return err
		}
		if r.t != wire.Acked {
			return fmt.Errorf("client: ACK refused: %s %q", r.t, r.payload)
		}
		ids = ids[n:]
	}
	return nil
}

// Receive blocks until a message arrives (Options.Receive), ctx is done
// or the Client is closed. Acknowledge it with Ack once it is used: until
// then the relay keeps it and delivers it again after a reconnect or its
// ack-wait.
func (c *Client) Receive(ctx context.Context) (*Delivery, error) {
	if !c.o.Receive {
		return nil, errors.New("client: Receive needs Options.Receive")
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if len(c.inbox) > 0 {
			d := c.inbox[0]
			c.inbox[0] = nil
			c.inbox = c.inbox[1:]
			if len(c.inbox) > 0 {
				select {
				case c.signal <- struct{}{}:
				default:
				}
			}
			if d.key != "" {
				if c.dupLocked(c.cur, d) {
					c.mu.Unlock()
					continue
				}
				c.markSeenLocked(d)
			}
			if c.cur != nil && c.cur.gen == d.gen {
				c.creditLocked(c.cur)
			}
			c.mu.Unlock()
			return d, nil
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, ErrClosed
		}
	}
}

// Subscribe calls fn with each message as it arrives, one at a time,
// until ctx is done or the Client is closed; it returns why it stopped.
func (c *Client) Subscribe(ctx context.Context, fn func(*Delivery)) error {
	for {
		d, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		fn(d)
	}
}

// Ack acknowledges deliveries: the relay removes them (with --data-dir,
// from disk) and never delivers them again. Against a seed relay it does
// nothing. An id the relay no longer holds (a connection since lost, and
// the message delivered again) is acknowledged by its message id if it
// has one, or else left to be delivered again.
func (c *Client) Ack(ctx context.Context, ds ...*Delivery) error {
	l, err := c.link(ctx)
	if err != nil {
		return err
	}
	if l.features&wire.FeatureDelivery == 0 {
		return nil
	}
	ids := c.ackIDs(ds)
	done := make(chan error, 1)
	go func() { done <- l.ack(ids) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ackIDs returns the delivery ids that acknowledge ds: for a message
// with an id, that of its latest delivery, which is marked acknowledged.
func (c *Client) ackIDs(ds []*Delivery) []uint64 {
	ids := make([]uint64, 0, len(ds))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		id := d.id
		if e, ok := c.seen[d.key]; ok && d.key != "" {
			e.acked = true
			id = e.id
		}
		ids = append(ids, id)
	}
	return ids
}

// AckAsync is Ack without waiting for the relay's answer, as a JetStream
// consumer's Ack does not wait (AckSync does): it queues the ACK and
// returns; the ACK goes out with the Client's next request, or on its
// own within a millisecond (ackDelay). Without the wait the application
// can take the next messages during the round trip, and an ACK costs no
// write of its own when requests follow; the price is that the
// application does not learn whether the relay stored the
// acknowledgement. If it did not (the connection failed
// first, or the relay could not store it), the messages are delivered
// again — at least once, as always — and a message sent with an id is
// not shown to the application twice (Receive recognises it). An error
// means the ACK was not written: there is no connection (the deliveries
// will come again after the reconnect), or the Client is closed.
func (c *Client) AckAsync(ds ...*Delivery) error {
	c.mu.Lock()
	l, closed := c.cur, c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case l == nil:
		return errLinkDown
	case l.features&wire.FeatureDelivery == 0:
		return nil
	}
	ids := c.ackIDs(ds)
	for len(ids) > 0 {
		n := min(len(ids), wire.MaxAckIDs)
		p, err := wire.AppendAck(nil, wire.AckReq{IDs: ids[:n]})
		if err != nil {
			return err
		}
		if err := l.write(wire.Ack, p, nil); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// link waits for a connection.
func (c *Client) link(ctx context.Context) (*link, error) {
	for {
		c.mu.Lock()
		l, up, closed := c.cur, c.up, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, ErrClosed
		}
	}
}

// NewMsgID returns a random 16-byte message id.
func (c *Client) NewMsgID() ([]byte, error) {
	id := make([]byte, 16)
	if _, err := io.ReadFull(c.o.Rand, id); err != nil {
		return nil, fmt.Errorf("client: message id: %w", err)
	}
	return id, nil
}

// Send stores data in recipient's mailbox with a fresh message id: it
// returns once the relay acknowledged it, refused it (*NackError), or ctx
// is done. If the connection fails first it retries after reconnecting,
// with the same id, so the relay stores it once.
func (c *Client) Send(ctx context.Context, recipient string, data []byte) error {
	id, err := c.NewMsgID()
	if err != nil {
		return err
	}
	return c.SendID(ctx, recipient, id, data)
}

// SendID is Send with a message id the caller chose (1..64 bytes): the
// relay drops a send whose id it has seen from this client id within its
// de-duplication window, and answers it as a success.
func (c *Client) SendID(ctx context.Context, recipient string, msgID, data []byte) error {
	p, err := wire.AppendSendID(nil, msgID, recipient, data)
	if err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	for {
		l, err := c.link(ctx)
		if err != nil {
			return err
		}
		var r reply
		if l.features&wire.FeatureMsgID != 0 {
			r, err = l.request(ctx, wire.SendID, p)
		} else {
			r, err = l.request(ctx, wire.SendData, p[1+len(msgID):])
			if errors.Is(err, errLinkDown) {
				return ErrOutcomeUnknown
			}
		}
		if errors.Is(err, errLinkDown) {
			continue // reconnect, then the same id again
		}
		if err != nil {
			return err
		}
		return expect(wire.Frame{Type: r.t, Payload: r.payload}, wire.SendAck, wire.SendNack)
	}
}
