package kms

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The root token and its recovery key.
//
// Bootstrap is all or nothing: it makes a root token and a recovery key,
// hands both to the operator (Deliver writes and fsyncs them, in kmsd),
// and only then commits their hashes, together, in one synced batch. If
// the delivery fails nothing is committed, and the next start tries
// again; no store can hold a root token that nobody received.
//
// GenerateRoot replaces the root token when it is lost: it needs the
// store's current recovery key (checked in constant time against its
// SHA-256), and sealed access to the store, which kmsd holds only while
// the service is stopped. It revokes every token that has the root
// policy and replaces the recovery key, so a recovery key works once.
//
// Stores from before recovery keys have token records without the
// Recoverable mark and no recovery record. In simulation (where the host
// can read everything anyway) GenerateRoot accepts them without a key, a
// migration path for stores locked out by the old bootstrap; under SGX it
// refuses, because nothing would prove the caller is the operator rather
// than the untrusted host (see docs/SECURITY.md). A store whose
// tokens carry the mark but whose recovery record is gone, or that has
// keys or policies but no token, has lost records: both refuse it.

// recoveryKeyName is the store key of the one recovery record.
const recoveryKeyName = "root-recovery"

// recoveryRecord is what the store keeps of the recovery key: its SHA-256.
type recoveryRecord struct {
	Hash    []byte    `json:"hash"`
	Created time.Time `json:"created"`
}

// Deliver hands a new root token and recovery key to the operator and
// returns only once they are durably where the operator will find them.
// recoveryKey is empty for a memory-only service (nothing outlives the
// process, so there is nothing to recover). The service commits the
// token only after Deliver returns nil.
type Deliver func(rootToken, recoveryKey string) error

// Errors of Bootstrap and GenerateRoot.
var (
	// ErrBadRecoveryKey: the recovery key given is not this store's.
	ErrBadRecoveryKey = errors.New("kms: the recovery key does not match this store's (each generate-root replaces it: use the newest one)")
	// ErrRecordsMissing: the store has lost records that a root token
	// depends on; making a new one would hand its keys to whoever starts
	// kmsd.
	ErrRecordsMissing = errors.New("kms: the store has lost token or recovery records")
)

// Bootstrap makes the root token if the store has no token yet: it calls
// deliver, then commits. It reports whether it made one; a store that
// already has tokens is left as it is.
func (s *Service) Bootstrap(deliver Deliver) (created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) > 0 {
		if s.st != nil && s.recovery == nil && !s.anyRecoverable() {
			if s.simulated() {
				s.log.Warn("this store has no recovery key (it was created before kmsd made them): if nobody holds its root token, " +
					"stop kmsd and run it once with --generate-root (docs/KMS-API.md); that also makes a recovery key")
			} else {
				s.log.Warn("this store has no recovery key (it was created before kmsd made them): keep its root token safe; " +
					"under SGX, --generate-root cannot take over such a store (docs/SECURITY.md)")
			}
		}
		return false, nil
	}
	if s.st != nil {
		refused := s.refused
		if r, ok := s.st.(interface{ Refused() int64 }); ok {
			refused += int(r.Refused())
		}
		if refused > 0 {
			return false, fmt.Errorf("%w: %d stored records could not be opened, so the store cannot be judged empty; refusing to create a root token (fix the seal policy or restore the data dir)", ErrRecordsMissing, refused)
		}
		if s.recovery != nil || len(s.keys) > 0 || len(s.policies) > 0 {
			return false, fmt.Errorf("%w: it holds keys, policies or a recovery key but no token; refusing to create a new root token, "+
				"which would hand the keys to whoever starts kmsd (restore the data dir from a backup)", ErrRecordsMissing)
		}
	}
	if err := s.auditEvent("bootstrap"); err != nil {
		return false, err
	}
	if err := s.installRoot(deliver, nil); err != nil {
		return false, err
	}
	return true, nil
}

// GenerateRoot replaces the root token of a store whose root token is
// lost. recoveryKey is called for the operator's recovery key when the
// store has one. Every token with the root policy is revoked, and the
// recovery key is replaced.
func (s *Service) GenerateRoot(recoveryKey func() (string, error), deliver Deliver) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return errors.New("kms: generate-root needs a data dir; a memory-only kmsd makes a new root token at every start")
	}
	if s.refused > 0 {
		return fmt.Errorf("%w: %d stored records could not be opened; refusing to judge the store (fix the seal policy or restore the data dir)", ErrRecordsMissing, s.refused)
	}
	switch {
	case s.recovery != nil:
		key, err := recoveryKey()
		if err != nil {
			return fmt.Errorf("kms: reading the recovery key: %w", err)
		}
		h := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(h[:], s.recovery.Hash) != 1 {
			return ErrBadRecoveryKey
		}
	case s.anyRecoverable():
		return fmt.Errorf("%w: its tokens were made with a recovery key but the recovery record is gone; restore the data dir from a backup", ErrRecordsMissing)
	case len(s.tokens) > 0 && !s.simulated():
		return errors.New("kms: this store was made by a kmsd older than recovery keys, and nothing the caller holds can prove it is the operator rather than the host: " +
			"generate-root refuses it under SGX. Whoever holds its root token keeps using it; otherwise its keys can only come back from a backup that has a root token someone holds")
	case len(s.tokens) > 0:
		s.log.Warn("generate-root on a simulated store from before recovery keys: no recovery key is needed this once; the new one replaces it from now on")
	case len(s.keys) > 0 || len(s.policies) > 0:
		return fmt.Errorf("%w: it holds keys or policies but no token; restore the data dir from a backup", ErrRecordsMissing)
	default:
		return errors.New("kms: the store is empty, there is nothing to recover: start kmsd to bootstrap it")
	}
	if err := s.auditEvent("generate-root"); err != nil {
		return err
	}
	var revoke [][32]byte
	for h, t := range s.tokens {
		if slices.Contains(t.Policies, "root") {
			revoke = append(revoke, h)
		}
	}
	return s.installRoot(deliver, revoke)
}

// simulated reports whether the service runs on the simulated platform.
func (s *Service) simulated() bool { return s.cfg.Attestation != nil && s.cfg.Attestation.Simulated }

// installRoot makes a root token and a recovery key, delivers them, then
// commits the token, the recovery record and the revocations in one
// synced batch; s.mu is held. Nothing is committed if delivery fails.
func (s *Service) installRoot(deliver Deliver, revoke [][32]byte) error {
	var rec string
	var rr *recoveryRecord
	if s.st != nil {
		raw := make([]byte, 32)
		if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
			return err
		}
		rec = "ser." + base64.RawURLEncoding.EncodeToString(raw)
		h := sha256.Sum256([]byte(rec))
		rr = &recoveryRecord{Hash: h[:], Created: s.cfg.Now().UTC()}
	}
	saved := s.recovery
	s.recovery = rr // the new token is marked Recoverable
	tok, h, t, err := s.newToken([]string{"root"})
	s.recovery = saved
	if err != nil {
		return err
	}
	marks := map[[32]byte]*token{}
	if rr != nil {
		for th, tt := range s.tokens {
			if !tt.Recoverable && !slices.Contains(revoke, th) {
				m := *tt
				m.Recoverable = true
				marks[th] = &m
			}
		}
	}
	if err := deliver(tok, rec); err != nil {
		return fmt.Errorf("kms: the root token could not be handed over, so nothing was committed: %w", err)
	}
	if s.st != nil {
		// The recovery record first: on shared storage, where the
		// writes are not one atomic commit, it is the compare-and-set
		// that lets only one of two replicas bootstrapping at once win.
		tb, _ := json.Marshal(t)
		rb, _ := json.Marshal(rr)
		ops := []op{{kind: kindRecovery, key: []byte(recoveryKeyName), value: rb}, {kind: kindToken, key: h[:], value: tb}}
		for _, old := range revoke {
			ops = append(ops, op{kind: kindToken, key: old[:]})
		}
		// Mark every surviving token (a store from before recovery keys
		// has unmarked ones), so that no subset of the records left after
		// a deletion looks like such a store again.
		for th, tt := range marks {
			mb, _ := json.Marshal(tt)
			ops = append(ops, op{kind: kindToken, key: th[:], value: mb})
		}
		if err := s.write(ops); err != nil {
			return fmt.Errorf("kms: committing the root token: %w (the token handed over is not valid)", err)
		}
	}
	for _, old := range revoke {
		s.dropToken(old)
	}
	for th, tt := range marks {
		s.putToken(th, tt)
	}
	s.putToken(h, t)
	s.recovery = rr
	s.log.Info("root token installed", "accessor", t.Accessor, "revoked_root_tokens", len(revoke))
	return nil
}

// anyRecoverable reports whether a token carries the Recoverable mark;
// s.mu is held.
func (s *Service) anyRecoverable() bool {
	for _, t := range s.tokens {
		if t.Recoverable {
			return true
		}
	}
	return false
}

// auditEvent writes an audit entry for a root-token change before it
// happens.
func (s *Service) auditEvent(event string) error {
	err := s.audit(auditLine{Type: "event", Time: s.cfg.Now().UTC().Format(time.RFC3339Nano), RequestID: s.requestID(),
		Method: "INTERNAL", Path: "root-token/" + event})
	if err != nil {
		return fmt.Errorf("kms: audit log write failed, so the root token was not changed (fix --audit-log): %w", err)
	}
	return nil
}
