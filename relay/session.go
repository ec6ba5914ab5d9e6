package relay

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/wire"
)

// session is one attested client connection.
type session struct {
	srv     *Server
	conn    net.Conn
	log     *slog.Logger
	peer    *attest.Report
	id      string // registered client id, "" until REGISTER succeeds
	unhold  func() // gives up the cluster claim on id (Config.Holders), or nil
	stopped atomic.Bool
	out     *bufio.Writer
	scratch []byte
	dirty   bool      // a mailbox was written since the last flush
	woken   []string  // recipients of messages stored since the last wake-up
	paceTo  []string  // recipients woken since the last paceStored
	failed  bool      // a sync or write failed: nothing more is answered
	ext     *extState // nil until a HELLO negotiates the extension
	stopCh  chan struct{}
	stopMu  sync.Once
}

// stop asks the session to finish its current request and close: a read
// waiting for the next frame is woken by an expired deadline.
func (s *session) stop() {
	s.stopped.Store(true)
	s.stopMu.Do(func() { close(s.stopCh) })
	s.conn.SetReadDeadline(time.Now())
}

func (s *session) serve() {
	cfg := &s.srv.cfg
	r := wire.NewReader(s.conn, cfg.MaxPayload)
	s.out = bufio.NewWriterSize(s.conn, 16<<10)
	frames := 0
	for !s.stopped.Load() {
		// Renew the idle deadline when the next read may block, and every
		// 128 frames in any case: frames already buffered (a pipelining
		// client) need no clock reading each.
		if frames++; r.Buffered() == 0 || frames%128 == 0 {
			s.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
			if s.stopped.Load() { // Shutdown may have run between the check and the deadline
				break
			}
		}
		f, err := r.ReadFrame()
		if err != nil {
			s.readFailed(err)
			return
		}
		cfg.Metrics.Frame(f.Type)
		s.handle(f)
		if s.ext != nil {
			// A HELLO negotiated the extension: the rest of the session
			// runs in its loop, with the same reader.
			if !s.flush() {
				return
			}
			s.serveExt(r)
			return
		}
		// Flush when the client has nothing more pending: a pipelining
		// client gets many answers per write.
		if r.Buffered() == 0 || s.out.Buffered() > 8<<10 {
			if !s.flush() {
				return
			}
			s.paceStored()
		}
	}
	s.flush()
}

func (s *session) flush() bool {
	s.wakeStored()
	if s.failed {
		return false
	}
	if s.out.Buffered() == 0 {
		return true
	}
	if !s.sync() {
		s.failed = true
		return false
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	if err := s.out.Flush(); err != nil {
		s.log.Info("write failed; closing", "err", err)
		s.failed = true
		return false
	}
	return true
}

func (s *session) reply(t wire.Type, reason string) {
	s.replyBytes(t, []byte(reason))
}

// sync makes the mailbox writes behind the answers written since the
// last sync durable: answers that promise durability (SEND_ACK, a POLL's
// removal) go out only after it, one fsync per batch. False: the sync
// failed; nothing more may be answered.
func (s *session) sync() bool {
	if s.dirty {
		if sy, ok := s.srv.boxes.(Syncer); ok {
			if err := sy.Sync(); err != nil {
				s.log.Error("storage sync failed; closing without answering", "err", err)
				return false
			}
		}
		s.dirty = false
	}
	return true
}

func (s *session) replyBytes(t wire.Type, payload []byte) {
	s.scratch = wire.AppendFrame(s.scratch[:0], t, payload)
	if s.willWrite(len(s.scratch)) {
		s.out.Write(s.scratch)
	}
}

// willWrite prepares for n bytes of answer. If they do not fit in the
// output buffer, bufio writes what it holds and then them straight to
// the connection: so first the mailbox writes behind every answer up to
// this one are synced (a large POLL answer would otherwise carry out
// buffered SEND_ACKs, and itself, before their fsync), the buffer is
// flushed, and the write deadline renewed (the one left from the last
// flush may long have passed: a POLL after an idle spell would otherwise
// fail, and lose the message it carried). False: the sync or the write
// failed and the connection is closed; the answer must not be written.
func (s *session) willWrite(n int) bool {
	if n <= s.out.Available() {
		return true
	}
	if s.failed || !s.sync() || !s.flush() {
		// Nothing more is answered on this connection (flush refuses
		// from now on), and the client sees it end.
		s.failed = true
		s.conn.Close()
		return false
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	return true
}

// stored notes that a message for to was stored. The recipient's
// session is woken when this session next flushes or waits, not at once:
// a pipelining sender's burst wakes it once, and it finds the whole burst
// waiting, instead of being woken for each message and writing each on
// its own.
func (s *session) stored(to []byte) {
	if n := len(s.woken); n > 0 && s.woken[n-1] == string(to) {
		return
	}
	if len(s.woken) >= 64 { // many recipients: wake the earlier ones now
		s.wakeStored()
	}
	s.woken = append(s.woken, string(to))
}

// wakeStored wakes the recipients of the messages stored since it last
// ran.
func (s *session) wakeStored() {
	pacing := s.srv.cfg.PaceWait > 0 && s.srv.nWaiters.Load() > 0
	for i, id := range s.woken {
		s.srv.wake(id)
		if pacing {
			s.paceTo = append(s.paceTo, id)
		}
		s.woken[i] = ""
	}
	s.woken = s.woken[:0]
}

// nack answers t with r's text and counts it under r's label.
func (s *session) nack(t wire.Type, r refusal) {
	s.srv.cfg.Metrics.Nack(t, r.reason)
	s.reply(t, r.text())
}

func (s *session) handle(f wire.Frame) {
	srv := s.srv
	switch f.Type {
	case wire.RegisterClient:
		if err := wire.CheckID(f.Payload); err != nil {
			s.nack(wire.RegisterNack, payloadRefusal(err))
			return
		}
		id := string(f.Payload)
		if r := srv.reg.register(s, id, srv.boxes); r != ReasonNone {
			s.nack(wire.RegisterNack, refuse(r))
			return
		}
		s.log.Info("registered", "id_tag", srv.idTag(id))
		s.reply(wire.RegisterAck, "")

	case wire.SendData:
		to, data, err := wire.ParseAddressed(f.Payload)
		if err != nil {
			s.nack(wire.SendNack, payloadRefusal(err))
			return
		}
		if s.id == "" {
			s.nack(wire.SendNack, refuse(ReasonRegisterBeforeSend))
			return
		}
		switch err := srv.boxes.Push(string(to), Message{From: s.id, Data: data}); {
		case err == nil:
			s.dirty = true
			s.reply(wire.SendAck, "")
			s.stored(to)
		default:
			s.nackSend(err)
		}

	case wire.PollData:
		if s.id == "" {
			s.nack(wire.PollNack, refuse(ReasonRegisterBeforePoll))
			return
		}
		m, ok, err := srv.boxes.Pop(s.id)
		if ok {
			s.dirty = true
		}
		switch {
		case err != nil:
			s.log.Error("reading mailbox failed; the message is kept", "err", err)
			s.nack(wire.PollNack, refuse(ReasonMailboxUnreadable))
		case !ok:
			s.reply(wire.NoDataAvailable, "")
		default:
			srv.cfg.Metrics.Delivered()
			// Header and sender into scratch, the data straight from the
			// message: no per-message frame buffer.
			hdr := wire.AppendFrameHeader(s.scratch[:0], wire.DataAvailable, 2+len(m.From)+len(m.Data))
			if s.scratch, err = wire.AppendAddressed(hdr, m.From, nil); err != nil {
				// Unreachable: senders are checked when they register.
				s.log.Error("stored sender id is invalid; message refused", "err", err)
				s.nack(wire.PollNack, refuse(ReasonMailboxUnreadable))
				return
			}
			if s.willWrite(len(s.scratch) + len(m.Data)) {
				s.out.Write(s.scratch)
				s.out.Write(m.Data)
			}
		}

	default:
		if f.Type == wire.Hello && s.ext == nil && s.hello(f.Payload) {
			return
		}
		if f.Type.Known() {
			s.reply(wire.Error, fmt.Sprintf("frame type 0x%02X (%s) is sent by the server, not the client", uint8(f.Type), f.Type))
		} else {
			s.reply(wire.Error, fmt.Sprintf("unknown frame type 0x%02X", uint8(f.Type)))
		}
	}
}

// nackSend answers a SEND (or SEND_ID) whose message could not be
// stored, with the reason the error names.
func (s *session) nackSend(err error) {
	r := ReasonNotStored
	switch {
	case errors.Is(err, ErrNoMailbox):
		r = ReasonRecipientNotFound
	case errors.Is(err, ErrMailboxFull):
		r = ReasonMailboxFull
	case errors.Is(err, ErrRelayFull):
		r = ReasonRelayFull
	case errors.Is(err, ErrDedupFull):
		r = ReasonDedupFull
	default:
		s.log.Error("storing message failed", "err", err)
	}
	s.nack(wire.SendNack, refuse(r))
}
