package kms

import (
	"encoding/json"
	"fmt"
)

// auditLine is one entry in the audit log. Each request has two: a
// "request" entry written before anything is performed (who: the token's
// accessor, never the token; what: method and path), and a "response"
// entry after it (status and error). Neither ever holds a request or
// response body.
type auditLine struct {
	Type      string `json:"type"`
	Time      string `json:"time"`
	RequestID string `json:"request_id"`
	Remote    string `json:"remote"`
	Accessor  string `json:"accessor,omitempty"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status,omitempty"`
	Error     string `json:"error,omitempty"`
}

// audit writes one line. Once a write fails the log is marked broken and
// every later request is refused: the service fails closed.
func (s *Service) audit(l auditLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if s.auditBroken {
		return fmt.Errorf("audit log is broken")
	}
	if n, err := s.cfg.Audit.Write(b); err != nil || n != len(b) {
		s.auditBroken = true
		return fmt.Errorf("audit write: %d of %d bytes: %v", n, len(b), err)
	}
	return nil
}

func (s *Service) auditFailed() bool {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	return s.auditBroken
}
