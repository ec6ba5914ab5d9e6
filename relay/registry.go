package relay

import (
	"errors"
	"sync"

	"github.com/sharedenclave/sharedenclave/attest"
)

// registry maps client ids to the live session holding them, and applies
// optional identity bindings.
type registry struct {
	mu       sync.Mutex
	live     map[string]*session
	bindings map[string]*attest.Policy
}

// register answers REGISTER_CLIENT: ReasonNone on success, or why not.
//
//   - the same id again on the same session: ACK;
//   - a second, different id on a session: NACK;
//   - an id held by another live session: NACK;
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
	defer r.mu.Unlock()
	if holder, ok := r.live[id]; ok && holder != s {
		return ReasonIDInUse
	}
	if err := boxes.Create(id); err != nil {
		if errors.Is(err, ErrTooMany) {
			return ReasonTooManyIDs
		}
		return ReasonMailboxNotCreated
	}
	r.live[id] = s
	s.id = id
	return ReasonNone
}

// release frees the id a session held.
func (r *registry) release(s *session) {
	if s.id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[s.id] == s {
		delete(r.live, s.id)
	}
}
