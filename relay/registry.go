package relay

import (
	"errors"
	"sync"

	"github.com/sharedenclave/sharedenclave/attest"
)

// Holders says which client ids are held by a live session anywhere in a
// relay made of several nodes (package relay/jetstream keeps it in a
// JetStream key-value bucket). A single relay needs none: its registry
// already knows every session. Implementations are safe for concurrent
// use.
type Holders interface {
	// Hold claims id for a session of this node. It fails with ErrHeld
	// when a live session on another node holds id. While the claim holds,
	// the implementation keeps it alive; if it cannot (its lease ran out
	// unrenewed), it calls lost, once, and the session must end, since
	// another node may now accept the id. release gives the claim up; it
	// may be called after lost.
	Hold(id string, lost func()) (release func(), err error)
}

// ErrHeld is returned by Holders.Hold for an id held by a live session on
// another relay node.
var ErrHeld = errors.New("relay: id held by a live session on another relay node")

// Arrivals is implemented by Mailboxes into which other relay nodes push
// messages: New gives it the function that wakes this node's session
// holding id (push, FETCH), and the implementation calls it when a
// message for id arrives from elsewhere.
type Arrivals interface {
	OnArrival(wake func(id string))
}

// registry maps client ids to the live session holding them, and applies
// optional identity bindings.
type registry struct {
	mu       sync.Mutex
	live     map[string]*session
	bindings map[string]*attest.Policy
	holders  Holders // nil: this process is the whole relay
}

// register answers REGISTER_CLIENT: ReasonNone on success, or why not.
//
//   - the same id again on the same session: ACK;
//   - a second, different id on a session: NACK;
//   - an id held by another live session (on any node): NACK;
//   - an id bound (policy file) to identities the session's attested
//     report does not match: NACK.
func (r *registry) register(s *session, id string, boxes Mailboxes) Reason {
	if s.id != "" {
		if s.id == id {
			return ReasonNone
		}
		return ReasonOtherIDOnSession
	}
	if p, ok := r.bindings[id]; ok {
		if err := p.Check(s.peer); err != nil {
			return ReasonIDBound
		}
	}
	r.mu.Lock()
	if holder, ok := r.live[id]; ok && holder != s {
		r.mu.Unlock()
		return ReasonIDInUse
	}
	// Reserve the id on this node; the cluster claim (a network round
	// trip) is made without the lock.
	r.live[id] = s
	r.mu.Unlock()
	fail := func(reason Reason) Reason {
		r.mu.Lock()
		if r.live[id] == s {
			delete(r.live, id)
		}
		r.mu.Unlock()
		return reason
	}
	var unhold func()
	if r.holders != nil {
		var err error
		unhold, err = r.holders.Hold(id, s.stop)
		switch {
		case errors.Is(err, ErrHeld):
			return fail(ReasonIDInUse)
		case err != nil:
			s.log.Error("claiming the id in the cluster registry failed", "err", err)
			return fail(ReasonMailboxNotCreated)
		}
	}
	if err := boxes.Create(id); err != nil {
		if unhold != nil {
			unhold()
		}
		if errors.Is(err, ErrTooMany) {
			return fail(ReasonTooManyIDs)
		}
		s.log.Error("creating the mailbox failed", "err", err)
		return fail(ReasonMailboxNotCreated)
	}
	s.id = id
	s.unhold = unhold
	return ReasonNone
}

// release frees the id a session held.
func (r *registry) release(s *session) {
	if s.id == "" {
		return
	}
	r.mu.Lock()
	if r.live[s.id] == s {
		delete(r.live, s.id)
	}
	r.mu.Unlock()
	if s.unhold != nil {
		s.unhold()
	}
}
