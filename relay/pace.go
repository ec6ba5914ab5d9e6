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

func (srv *Server) waiter(id string) *waiter {
	srv.wmu.RLock()
	defer srv.wmu.RUnlock()
	return srv.waiters[id]
}

// pace holds a SEND to a recipient that is behind: while the recipient
// has a session that receives (subscribed or fetching) and
// Config.PaceBacklog or more of its messages wait untaken, the sender's
// session waits — reading nothing more from its client — until the
// recipient's session takes some, for at most Config.PaceWait; then the
// message is stored (or refused when the mailbox is full) as without
// pacing. A sender thus slows to the rate its receiver takes messages,
// as a NATS publisher stalls on a slow subscriber, instead of filling the
// mailbox and then meeting SEND_NACK "mailbox full" on every frame.
// Recipients without a receiving session are not waited for: their
// messages wait for them in the mailbox, as always.
func (s *session) pace(to []byte) {
	srv := s.srv
	if srv.cfg.PaceWait < 0 || srv.nWaiters.Load() == 0 || string(to) == s.id {
		return
	}
	bl, ok := srv.boxes.(Backlogger)
	if !ok {
		return
	}
	var timer *time.Timer
	for {
		w := srv.waiter(string(to))
		if w == nil || bl.Backlog(string(to)) < srv.cfg.PaceBacklog {
			return
		}
		took := w.watch()
		if bl.Backlog(string(to)) < srv.cfg.PaceBacklog {
			return
		}
		if timer == nil {
			// Before waiting: wake whoever this session stored messages
			// for (the recipient among them), and let the client have
			// the answers so far.
			if !s.flush() {
				return
			}
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
