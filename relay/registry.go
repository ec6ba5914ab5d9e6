package relay

import (
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

// register answers REGISTER_CLIENT: "" on success, or the NACK reason.
//
//   - the same id again on the same session: ACK;
//   - a second, different id on a session: NACK;
//   - an id held by another live session: NACK;
//   - an id bound (policy file) to identities the session's attested
//     report does not match: NACK.
func (r *registry) register(s *session, id string, boxes Mailboxes) string {
	if s.id != "" {
		if s.id == id {
			return ""
		}
		return "this session is already registered as another id"
	}
	if p, ok := r.bindings[id]; ok {
		if err := p.Check(s.peer); err != nil {
			return "attested identity may not register this id"
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if holder, ok := r.live[id]; ok && holder != s {
		return "id is in use by another session"
	}
	if err := boxes.Create(id); err != nil {
		if err == ErrTooMany {
			return "too many client ids"
		}
		return "could not create mailbox"
	}
	r.live[id] = s
	s.id = id
	return ""
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
