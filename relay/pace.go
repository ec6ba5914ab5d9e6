package relay

import (
	"sync"
	"sync/atomic"
	"time"
)

// Backlogger is implemented by Mailboxes that can say how many messages
// of a mailbox wait to be taken (stored, not held by a delivery); both
// built-in single-node stores do. The relay paces senders only with one.
type Backlogger interface {
	Backlog(id string) int
}

// waiter is an extension session that receives (subscribed, or with a
// FETCH waiting), as the rest of the server sees it: senders wake it when
// they store a message for it, and a paced sender waits for it to take.
type waiter struct {
	notify chan struct{} // a message arrived in its mailbox

	watched atomic.Bool // a paced sender waits on took
	mu      sync.Mutex
	took    chan struct{} // closed when the session next takes messages or ends
}

func newWaiter() *waiter { return &waiter{notify: make(chan struct{}, 1)} }

// watch returns a channel that is closed when the session next takes
// messages from its mailbox, or ends.
func (w *waiter) watch() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.took == nil {
		w.took = make(chan struct{})
	}
	w.watched.Store(true)
	return w.took
}

// tookSome wakes the senders waiting for the session to take messages.
// Without any it costs one atomic load.
func (w *waiter) tookSome() {
	if !w.watched.Load() {
		return
	}
	w.mu.Lock()
	if w.took != nil {
		close(w.took)
		w.took = nil
	}
	w.watched.Store(false)
	w.mu.Unlock()
}

// drained is called by a receiving session after it took messages: it
// lets its paced senders go once its backlog is down to half of
// Config.PaceBacklog. Waking them at every take would wake every sender
// for every few messages (with sixteen senders to one receiver, most of
// the relay's work); from half, each sender has room for a burst.
func (s *session) drained() {
	w := s.ext.w
	if !w.watched.Load() {
		return
	}
	if bl, ok := s.srv.boxes.(Backlogger); ok && bl.Backlog(s.id) >= s.srv.cfg.PaceBacklog/2 {
		return // the senders' wait runs out, at worst, if nothing more is taken
	}
	w.tookSome()
}

func (srv *Server) waiter(id string) *waiter {
	srv.wmu.RLock()
	defer srv.wmu.RUnlock()
	return srv.waiters[id]
}

// paceStored paces this session after a burst of SENDs: for each
// recipient it stored messages for since the last time, if the
// recipient has a session that receives (subscribed or fetching) and
// Config.PaceBacklog or more of its messages wait untaken, the session
// waits — reading nothing more from its client — until the recipient's
// session has taken them down to half that, for at most Config.PaceWait
// per recipient. It runs when the session has answered everything it
// read and would read more: the burst already read is stored and
// acknowledged, and the next is held back, so a sender slows to the rate
// its receiver takes messages (TCP tells it), as a NATS publisher stalls
// on a slow subscriber, instead of filling the mailbox and then meeting
// SEND_NACK "mailbox full" on every frame. Recipients without a
// receiving session are not waited for: their messages wait for them in
// the mailbox, as always.
func (s *session) paceStored() {
	for i, to := range s.paceTo {
		s.pace(to)
		s.paceTo[i] = ""
	}
	s.paceTo = s.paceTo[:0]
}

// pace waits while to's receiving session is behind (paceStored).
func (s *session) pace(to string) {
	srv := s.srv
	if to == s.id {
		return
	}
	bl, ok := srv.boxes.(Backlogger)
	if !ok {
		return
	}
	var timer *time.Timer
	for {
		w := srv.waiter(to)
		if w == nil || bl.Backlog(to) < srv.cfg.PaceBacklog {
			return
		}
		took := w.watch()
		if bl.Backlog(to) < srv.cfg.PaceBacklog {
			return
		}
		if timer == nil {
			timer = time.NewTimer(srv.cfg.PaceWait)
			defer timer.Stop()
			srv.dm.Paced(false)
		}
		select {
		case <-took:
		case <-timer.C:
			srv.dm.Paced(true)
			return
		case <-s.stopCh:
			return
		}
	}
}
