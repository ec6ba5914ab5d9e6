package relay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sharedenclave/sharedenclave/wire"
)

// extState is a session's delivery-extension state (docs/PROTOCOL.md
// section 8). It is used only by the session's own goroutine.
type extState struct {
	features uint32
	w        *waiter // how senders wake it and wait for it
	waiting  bool    // w is registered with the server

	subscribed bool
	credit     int
	fetch      *fetchState

	// Ack deadlines are nanoseconds since base: the map and the slice
	// hold no pointers, which a time.Time would bring (and the garbage
	// collector scan).
	base  time.Time
	held  map[uint64]int64 // delivery id → ack deadline
	taken []Delivery       // progress's buffer for a batch of Takes
	order []heldAt         // deliveries in order of their deadlines (may hold stale entries)
}

type heldAt struct {
	id       uint64
	deadline int64 // since extState.base
}

// since is t as an ack deadline.
func (x *extState) since(t time.Time) int64 { return int64(t.Sub(x.base)) }

type fetchState struct {
	max, got int
	deadline time.Time
}

type readResult struct {
	f        wire.Frame
	err      error
	buffered int
}

// hello answers a HELLO on a session without the extension. It returns
// false, leaving the seed's answer to the caller, when the payload is not
// a HELLO of this extension (no magic, wrong length): a seed client that
// happens to send type 0x10 sees what the seed protocol answers.
func (s *session) hello(p []byte) bool {
	h, err := wire.ParseHello(p)
	if err != nil {
		return false
	}
	srv := s.srv
	var offer uint32
	if _, ok := srv.boxes.(Acker); ok {
		offer |= wire.FeatureDelivery
	}
	if _, ok := srv.boxes.(Deduper); ok {
		offer |= wire.FeatureMsgID
	}
	s.ext = &extState{features: h.Features & offer, w: newWaiter(), base: time.Now(), held: map[uint64]int64{}}
	cfg := &srv.cfg
	dedup := uint32(0)
	if l, ok := srv.boxes.(interface{ DedupWindow() time.Duration }); ok {
		dedup = uint32(l.DedupWindow() / time.Second)
	}
	s.replyBytes(wire.HelloAck, wire.AppendHelloAck(nil, wire.HelloAckInfo{
		Version: wire.ExtVersion, Features: s.ext.features,
		MaxBatch: uint16(cfg.MaxBatch), MaxWaitMS: uint32(cfg.MaxFetchWait / time.Millisecond),
		MaxCredit: uint32(min(cfg.MaxCredit, 0xFFFFFFFF)), AckWaitMS: uint32(cfg.AckWait / time.Millisecond),
		IdleMS: uint32(min(cfg.IdleTimeout/time.Millisecond, 0xFFFFFFFF)), DedupS: dedup,
	}))
	return true
}

// wake tells the extension session holding id, if any, that its mailbox
// has a new message. Without extension sessions it costs one atomic load.
func (srv *Server) wake(id string) {
	if srv.nWaiters.Load() == 0 {
		return
	}
	if w := srv.waiter(id); w != nil {
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

func (s *session) addWaiter() {
	x := s.ext
	if x.waiting {
		return
	}
	x.waiting = true
	srv := s.srv
	srv.wmu.Lock()
	srv.waiters[s.id] = x.w
	srv.wmu.Unlock()
	srv.nWaiters.Add(1)
}

func (s *session) removeWaiter() {
	x := s.ext
	if !x.waiting {
		return
	}
	srv := s.srv
	srv.wmu.Lock()
	if srv.waiters[s.id] == x.w {
		delete(srv.waiters, s.id)
	}
	srv.wmu.Unlock()
	srv.nWaiters.Add(-1)
	x.w.tookSome() // paced senders stop waiting for this session

}

// serveExt runs the rest of a session that negotiated the extension. A
// reader goroutine reads frames and hands each over, waiting until it is
// handled (the payload aliases the reader's buffer); this goroutine
// handles frames, pushes deliveries, ends FETCHes and expires ack-waits.
// While a FETCH waits, the next frame is not taken: answers stay in order.
func (s *session) serveExt(r *wire.Reader) {
	x := s.ext
	cfg := &s.srv.cfg
	frames := make(chan readResult)
	next := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	defer s.endExt()
	go func() {
		n := 0
		for {
			if n++; r.Buffered() == 0 || n%128 == 0 {
				s.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
				if s.stopped.Load() {
					s.conn.SetReadDeadline(time.Now())
				}
			}
			f, err := r.ReadFrame()
			select {
			case frames <- readResult{f, err, r.Buffered()}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
			select {
			case <-next:
			case <-done:
				return
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	owed := false // the reader waits for next
	more := false // the last frame was followed by more: answer them together
	for {
		wasFetching := x.fetch != nil
		if !s.progress() {
			return
		}
		if wasFetching && x.fetch == nil && owed {
			owed = false
			next <- struct{}{}
		}
		if !more {
			if s.out.Buffered() > 0 && !s.flush() {
				return
			}
			s.wakeStored() // before waiting
			s.paceStored()
		}
		more = false
		in := frames
		if x.fetch != nil {
			in = nil
		}
		timer.Reset(s.nextWake())
		select {
		case rr := <-in:
			if rr.err != nil {
				s.readFailed(rr.err)
				return
			}
			cfg.Metrics.Frame(rr.f.Type)
			s.handleExt(rr.f)
			if x.fetch != nil {
				owed = true
			} else {
				next <- struct{}{}
			}
			// More frames pending (a pipelining client): take the next
			// one before flushing, so that answers go out together.
			more = rr.buffered > 0 && s.out.Buffered() <= 8<<10 && x.fetch == nil
		case <-x.w.notify:
		case <-timer.C:
			s.expire(time.Now())
		case <-s.stopCh:
			s.flush()
			return
		}
	}
}

// readFailed says why a session's read ended, answering an oversized
// frame with ERROR; the seed loop and the extension loop share it.
func (s *session) readFailed(err error) {
	var se *wire.SizeError
	switch {
	case errors.As(err, &se):
		s.log.Info("frame over the size limit; closing", "len", se.Len, "limit", se.Limit)
		s.reply(wire.Error, fmt.Sprintf("frame payload of %d bytes is over the %d-byte limit", se.Len, se.Limit))
		s.flush()
	case errors.Is(err, io.EOF):
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !s.stopped.Load() {
			s.log.Info("idle timeout; closing")
		}
	default:
		s.log.Info("read failed; closing", "err", err)
	}
}

// nextWake is how long until a FETCH ends or an ack-wait expires.
func (s *session) nextWake() time.Duration {
	x := s.ext
	wake := time.Hour
	now := time.Now()
	if x.fetch != nil {
		wake = min(wake, x.fetch.deadline.Sub(now))
	}
	if len(x.order) > 0 {
		wake = min(wake, time.Duration(x.order[0].deadline-x.since(now)))
	}
	return max(wake, 0)
}

// progress makes the deliveries the session owes: to its subscription
// while it has credit, to a waiting FETCH, and ends the FETCH when it has
// at least one message or its wait is over. False: the connection failed.
func (s *session) progress() bool {
	x := s.ext
	if s.id == "" {
		return true
	}
	acker, _ := s.srv.boxes.(Acker)
	if acker == nil {
		return true
	}
	wrote := false
	var now time.Time // read once per call: one ack-wait start for a burst
	defer func() {
		if wrote {
			s.drained()
		}
	}()
	batch, _ := acker.(BatchAcker)
	// take takes and writes up to max deliveries, and says how many.
	take := func(max int) int {
		var ds []Delivery
		var err error
		if batch != nil {
			ds, err = batch.TakeN(s.id, min(max, 64), x.taken[:0])
		} else if d, ok, terr := acker.Take(s.id); ok {
			ds = append(x.taken[:0], d)
		} else {
			err = terr
		}
		if err != nil {
			s.log.Error("reading mailbox failed; the message is kept", "err", err)
		}
		if len(ds) == 0 {
			return 0
		}
		if !wrote {
			now = time.Now()
			s.conn.SetWriteDeadline(now.Add(s.srv.cfg.WriteTimeout))
			wrote = true
		}
		for _, d := range ds {
			s.writeDelivery(d, now)
		}
		clear(ds) // the messages stay in the mailbox until acknowledged
		x.taken = ds[:0]
		return len(ds)
	}
	if x.fetch != nil {
		for x.fetch.got < x.fetch.max {
			n := take(x.fetch.max - x.fetch.got)
			if n == 0 {
				break
			}
			x.fetch.got += n
		}
		if x.fetch.got > 0 || !time.Now().Before(x.fetch.deadline) {
			s.replyBytes(wire.FetchEnd, wire.AppendFetchEnd(nil, uint16(x.fetch.got)))
			x.fetch = nil
		}
	}
	if x.subscribed {
		for x.credit > 0 {
			n := take(x.credit)
			if n == 0 {
				break
			}
			x.credit -= n
			if s.out.Buffered() > 14<<10 && !s.flush() {
				return false
			}
		}
	}
	return true
}

func (s *session) writeDelivery(d Delivery, now time.Time) {
	x := s.ext
	deadline := x.since(now) + int64(s.srv.cfg.AckWait)
	x.held[d.Seq] = deadline
	x.order = append(x.order, heldAt{d.Seq, deadline})
	var flags uint8
	if d.Redelivered {
		flags = wire.FlagRedelivered
	}
	hdr := wire.AppendFrameHeader(s.scratch[:0], wire.Deliver, wire.DeliveryHeaderLen(d.ID, d.From)+len(d.Data))
	var err error
	if s.scratch, err = wire.AppendDeliveryHeader(hdr, d.Seq, flags, d.ID, d.From); err != nil {
		// Unreachable: senders and message ids are checked when they arrive.
		s.log.Error("stored message does not encode; not delivered", "err", err)
		return
	}
	if !s.willWrite(len(s.scratch) + len(d.Data)) {
		return // the connection is closed; the delivery is released with the session
	}
	s.out.Write(s.scratch)
	s.out.Write(d.Data)
	s.srv.dm.Pushed(d.Redelivered)
}

// expire releases every delivery whose ack-wait is over, for redelivery.
func (s *session) expire(now time.Time) {
	x := s.ext
	acker := s.srv.boxes.(Acker)
	i := 0
	at := x.since(now)
	for ; i < len(x.order) && x.order[i].deadline <= at; i++ {
		h := x.order[i]
		if d, ok := x.held[h.id]; !ok || d != h.deadline {
			continue // acknowledged, or delivered again since
		}
		delete(x.held, h.id)
		if err := acker.Release(s.id, h.id); err != nil {
			s.log.Error("releasing a delivery failed", "err", err)
		}
		s.srv.dm.AckWaitExpired()
	}
	x.order = append(x.order[:0], x.order[i:]...)
}

// compactOrder drops acknowledged entries from order once they are most
// of it, so that it stays proportional to what is held.
func (x *extState) compactOrder() {
	if len(x.order) < 2*len(x.held)+64 {
		return
	}
	n := 0
	for _, h := range x.order {
		if d, ok := x.held[h.id]; ok && d == h.deadline {
			x.order[n] = h
			n++
		}
	}
	x.order = x.order[:n]
}

// endExt releases everything the session holds, for redelivery to the
// next session of its id.
func (s *session) endExt() {
	x := s.ext
	s.removeWaiter()
	if x.subscribed {
		s.srv.dm.Subscriptions(-1)
	}
	if len(x.held) == 0 {
		return
	}
	acker := s.srv.boxes.(Acker)
	for id := range x.held {
		if err := acker.Release(s.id, id); err != nil {
			s.log.Error("releasing a delivery failed", "err", err)
		}
	}
	s.srv.dm.Released(len(x.held))
	x.held = nil
}

func (s *session) extNack(r refusal) { s.nack(wire.ExtNack, r) }

// handleExt answers one frame of an extension session.
func (s *session) handleExt(f wire.Frame) {
	x := s.ext
	srv := s.srv
	cfg := &srv.cfg
	need := func(feature uint32) bool {
		if x.features&feature == 0 {
			s.extNack(refuse(ReasonNotNegotiated))
			return false
		}
		return true
	}
	switch f.Type {
	case wire.Hello:
		s.extNack(refuse(ReasonHelloAgain))

	case wire.Ping:
		s.reply(wire.Pong, "")

	case wire.SendID:
		if !need(wire.FeatureMsgID) {
			return
		}
		msgID, to, data, err := wire.ParseSendID(f.Payload)
		if err != nil {
			s.nack(wire.SendNack, payloadRefusal(err))
			return
		}
		if s.id == "" {
			s.nack(wire.SendNack, refuse(ReasonRegisterBeforeSend))
			return
		}
		dup, err := srv.boxes.(Deduper).PushOnce(string(to), Message{From: s.id, Data: data, ID: msgID})
		switch {
		case err == nil:
			s.dirty = true
			s.reply(wire.SendAck, "")
			if dup {
				srv.dm.DuplicateDropped()
			} else {
				s.stored(to)
			}
		default:
			s.nackSend(err)
		}

	case wire.Fetch:
		if !need(wire.FeatureDelivery) {
			return
		}
		req, err := wire.ParseFetch(f.Payload)
		switch {
		case err != nil:
			s.extNack(payloadRefusal(err))
		case s.id == "":
			s.extNack(refuse(ReasonRegisterBeforeFetch))
		case x.subscribed:
			s.extNack(refuse(ReasonFetchWhileSubscribed))
		case int(req.Max) > cfg.MaxBatch:
			s.extNack(refuseDetail(ReasonOverLimit, fmt.Sprintf("fetch of %d messages, over the maximum %d", req.Max, cfg.MaxBatch)))
		case time.Duration(req.WaitMS)*time.Millisecond > cfg.MaxFetchWait:
			s.extNack(refuseDetail(ReasonOverLimit, fmt.Sprintf("wait of %d ms, over the maximum %d ms", req.WaitMS, cfg.MaxFetchWait/time.Millisecond)))
		default:
			s.addWaiter()
			x.fetch = &fetchState{max: int(req.Max), deadline: time.Now().Add(time.Duration(req.WaitMS) * time.Millisecond)}
		}

	case wire.Subscribe:
		if !need(wire.FeatureDelivery) {
			return
		}
		n, err := wire.ParseU32(f.Payload)
		switch {
		case err != nil:
			s.extNack(payloadRefusal(err))
		case s.id == "":
			s.extNack(refuse(ReasonRegisterBeforeSubscribe))
		case x.subscribed:
			s.extNack(refuse(ReasonAlreadySubscribed))
		case uint64(n) > uint64(cfg.MaxCredit):
			s.extNack(refuseDetail(ReasonOverLimit, fmt.Sprintf("credit %d, over the maximum %d", n, cfg.MaxCredit)))
		default:
			s.addWaiter()
			x.subscribed, x.credit = true, int(n)
			srv.dm.Subscriptions(1)
			srv.dm.CreditGranted(int(n))
			s.reply(wire.SubscribeAck, "")
		}

	case wire.Credit:
		if !need(wire.FeatureDelivery) {
			return
		}
		n, err := wire.ParseCredit(f.Payload)
		switch {
		case err != nil:
			s.extNack(payloadRefusal(err))
		case !x.subscribed:
			s.extNack(refuse(ReasonCreditBeforeSubscribe))
		case uint64(x.credit)+uint64(n) > uint64(cfg.MaxCredit):
			s.extNack(refuseDetail(ReasonOverLimit, fmt.Sprintf("credit would be %d, over the maximum %d", uint64(x.credit)+uint64(n), cfg.MaxCredit)))
		default:
			x.credit += int(n)
			srv.dm.CreditGranted(int(n))
			s.replyBytes(wire.CreditAck, wire.AppendU32(nil, uint32(x.credit)))
		}

	case wire.Ack:
		if !need(wire.FeatureDelivery) {
			return
		}
		req, err := wire.ParseAck(f.Payload)
		if err != nil {
			s.extNack(payloadRefusal(err))
			return
		}
		var ids []uint64
		notHeld := 0
		if req.Cumulative {
			for id := range x.held {
				if id <= req.IDs[0] {
					ids = append(ids, id)
				}
			}
		} else {
			for _, id := range req.IDs {
				if _, ok := x.held[id]; ok {
					ids = append(ids, id)
				} else {
					notHeld++
				}
			}
		}
		acked := 0
		if batch, ok := srv.boxes.(BatchAcker); ok {
			n, err := batch.AckN(s.id, ids)
			if err != nil {
				s.log.Error("acknowledging failed; the messages are kept", "err", err)
				s.extNack(refuse(ReasonAckNotStored))
				return
			}
			for _, id := range ids {
				delete(x.held, id)
			}
			acked = n
		} else {
			acker := srv.boxes.(Acker)
			for _, id := range ids {
				ok, err := acker.Ack(s.id, id)
				if err != nil {
					s.log.Error("acknowledging failed; the message is kept", "err", err)
					s.extNack(refuse(ReasonAckNotStored))
					return
				}
				delete(x.held, id)
				if ok {
					acked++
				}
			}
		}
		x.compactOrder()
		if acked > 0 {
			s.dirty = true
			srv.dm.Acked(acked)
		}
		s.replyBytes(wire.Acked, wire.AppendAcked(nil, uint32(acked), uint32(notHeld)))

	default:
		if f.Type.Extension() && !f.Type.ExtFromClient() {
			s.reply(wire.Error, fmt.Sprintf("frame type 0x%02X (%s) is sent by the server, not the client", uint8(f.Type), f.Type))
			return
		}
		s.handle(f)
	}
}
