package kms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/store"
)

// Record kinds in the store.
const (
	kindKey      = "kms/key"
	kindToken    = "kms/token"
	kindPolicy   = "kms/policy"
	kindRecovery = "kms/recovery"
)

// Config configures a Service.
type Config struct {
	// Store keeps keys, tokens and policies sealed; nil means memory-only
	// (everything is lost on restart).
	Store *store.Store
	// Storage, instead of Store, is storage shared by several replicas
	// (a Shared, such as package kms/jetstream's bucket): any replica
	// serves any request. Give one of Store and Storage.
	Storage Storage
	// StorageTimeout bounds each wait for shared storage (the barrier
	// before a request); default 10 s.
	StorageTimeout time.Duration
	// Audit receives one JSON line per request. Required: if a line cannot
	// be written, the request fails and later requests are refused.
	Audit io.Writer
	// Verifier checks quotes for attestation-gated key release; nil
	// disables release.
	Verifier attest.Verifier
	// Attestation is served at /v1/sys/attestation.
	Attestation *AttestationInfo
	// Metrics, when set, is told about every request.
	Metrics Metrics
	// SeedOpen serves the seed endpoints (/generate-aes-key,
	// /generate-rsa-key-pair) to callers without a token. By default they
	// need a token whose policy grants read on SeedAESPath or SeedRSAPath.
	SeedOpen bool
	// SeedRSARate bounds RSA key pairs generated for callers without a
	// token when SeedOpen, per second, in bursts of up to the same number
	// (at least 1); default 1.
	SeedRSARate float64
	// Snapshot, when set, serves Vault's GET sys/storage/raft/snapshot
	// (`vault operator raft snapshot save`) to tokens with sudo on that
	// path: it takes a consistent backup of the store and returns the
	// function that writes it as one archive (package store/snapshot)
	// after the status line. Without it the endpoint answers 400 with
	// SnapshotRefusal.
	Snapshot        func() (func(w io.Writer) error, error)
	SnapshotRefusal string
	// MaxBody caps request bodies; default 1 MiB.
	MaxBody int64
	Logger  *slog.Logger
	// Rand and Now default to crypto/rand and time.Now.
	Rand io.Reader
	Now  func() time.Time
}

// Metrics receives one call per request: the operation (a fixed name,
// never a key name), the HTTP status and the time taken.
type Metrics interface {
	Request(operation string, status int, took time.Duration)
}

// AttestationInfo is what GET /v1/sys/attestation returns.
type AttestationInfo struct {
	// Certificate is the server's TLS certificate (DER), an RA-TLS
	// certificate whose extension carries Quote.
	Certificate []byte
	// CA, when set, is the certificate (DER) of the CA that issued
	// Certificate (kmsd --stable-tls-ca): the one clients pin.
	CA []byte
	// Quote binds SHA-256 of the certificate's public key (SPKI).
	Quote     []byte
	Simulated bool
}

// Service is the KMS: keys, tokens, policies, and the HTTP API.
type Service struct {
	cfg Config
	log *slog.Logger

	mu     sync.RWMutex
	keys   map[string]*Key
	tokens map[[32]byte]*token
	// accessors indexes tokens by accessor (kept with tokens, under mu).
	accessors map[string][32]byte
	policies  map[string]*aclPolicy

	auditMu     sync.Mutex
	auditBroken bool

	seedRSA *rate.Limiter

	// The BYOK wrapping key (byok.go), made on first use.
	wrapMu  sync.Mutex
	wrapKey *rsa.PrivateKey

	// Set by New, under mu: the recovery key's record, and how many
	// stored records were refused (Bootstrap and GenerateRoot refuse to
	// judge a store they could not read whole).
	recovery *recoveryRecord
	refused  int

	// st is where records are kept (nil: memory only); shared is st
	// when other replicas write it too. recs holds, under mu, each
	// stored record's revision (the compare-and-set expectation).
	st     Storage
	shared Shared
	recs   map[string]recInfo
}

// token is an API token. Only its SHA-256 is kept. The lifecycle fields
// are Vault's; a record from before they existed has them all zero: an
// orphan that never expires, with unlimited uses.
type token struct {
	Accessor string    `json:"accessor"`
	Policies []string  `json:"policies"`
	Created  time.Time `json:"created"`
	// Recoverable marks a token made while the store had a recovery
	// key, so that deleting the recovery record cannot make the store
	// look like one from before recovery keys (see root.go).
	Recoverable bool `json:"recoverable,omitempty"`

	// Parent is the accessor of the token that created this one; ""
	// for an orphan. Revoking a token revokes its descendants, and a
	// token whose parent has expired is no longer valid.
	Parent string `json:"parent,omitempty"`
	// Expire is when the token stops working; zero: never (root).
	Expire time.Time `json:"expire,omitzero"`
	// TTL is the lease the token was created or last renewed with.
	TTL            time.Duration `json:"ttl,omitempty"`
	ExplicitMaxTTL time.Duration `json:"explicit_max_ttl,omitempty"`
	Period         time.Duration `json:"period,omitempty"`
	Renewable      bool          `json:"renewable,omitempty"`
	// NumUses is the number of uses left; 0: unlimited. The use that
	// brings it to zero revokes the token.
	NumUses     int               `json:"num_uses,omitempty"`
	DisplayName string            `json:"display_name,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	LastRenewal time.Time         `json:"last_renewal,omitzero"`
}

// New loads the service's state from cfg.Store. Records that fail to open
// are logged and refused.
func New(cfg Config) (*Service, error) {
	if cfg.Audit == nil {
		return nil, errors.New("kms: an audit log is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StorageTimeout <= 0 {
		cfg.StorageTimeout = 10 * time.Second
	}
	if cfg.SeedRSARate <= 0 {
		cfg.SeedRSARate = 1
	}
	s := &Service{cfg: cfg, log: cfg.Logger, keys: map[string]*Key{}, tokens: map[[32]byte]*token{}, accessors: map[string][32]byte{}, policies: map[string]*aclPolicy{},
		seedRSA: rate.NewLimiter(rate.Limit(cfg.SeedRSARate), max(1, int(math.Ceil(cfg.SeedRSARate))))}
	s.recs = map[string]recInfo{}
	switch {
	case cfg.Store != nil && cfg.Storage != nil:
		return nil, errors.New("kms: give one of Config.Store and Config.Storage")
	case cfg.Store != nil:
		s.st = newPebbleStorage(cfg.Store)
	case cfg.Storage != nil:
		s.st = cfg.Storage
	default:
		return s, nil
	}
	if sh, ok := s.st.(Shared); ok {
		s.shared = sh
		if err := sh.Watch(s.apply); err != nil {
			return nil, fmt.Errorf("kms: watching the cluster storage: %w", err)
		}
		if err := s.barrier(context.Background()); err != nil {
			return nil, fmt.Errorf("kms: loading the cluster storage: %w", err)
		}
		return s, nil
	}
	refused := 0
	for _, kind := range []string{kindKey, kindToken, kindRecovery, kindPolicy} {
		err := s.st.Scan(kind, func(k, v []byte, rev uint64, err error) error {
			var name string
			if err == nil {
				name, err = s.load(kind, k, v)
			}
			if err != nil {
				refused++
				s.log.Error("refusing a stored record", "kind", kind, "err", err)
				return nil
			}
			s.recs[recKey(kind, k)] = recInfo{rev: rev, name: name}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if refused > 0 {
		s.log.Error("stored records refused at startup", "count", refused)
	}
	s.refused = refused
	return s, nil
}

// load decodes a stored record into the service's maps and returns the
// name it is stored under (keys, policies); s.mu is held or the service
// is not yet shared. A record is refused if its key does not match what
// it holds.
func (s *Service) load(kind string, k, v []byte) (string, error) {
	switch kind {
	case kindKey:
		var key Key
		if err := json.Unmarshal(v, &key); err != nil {
			return "", err
		}
		if string(k) != string(s.blind(key.Name)) || !key.Type.Valid() {
			return "", errors.New("key record does not match its name")
		}
		s.keys[key.Name] = &key
		return key.Name, nil
	case kindToken:
		var t token
		if err := json.Unmarshal(v, &t); err != nil || len(k) != 32 {
			return "", errors.New("bad token record")
		}
		s.dropToken([32]byte(k))
		s.putToken([32]byte(k), &t)
		return "", nil
	case kindRecovery:
		var r recoveryRecord
		if err := json.Unmarshal(v, &r); err != nil || string(k) != recoveryKeyName || len(r.Hash) != 32 {
			return "", errors.New("bad recovery record")
		}
		s.recovery = &r
		return "", nil
	case kindPolicy:
		var p aclPolicy
		if err := json.Unmarshal(v, &p); err != nil {
			return "", err
		}
		if string(k) != string(s.blind(p.Name)) {
			return "", errors.New("policy record does not match its name")
		}
		if err := p.compile(); err != nil {
			return "", err
		}
		s.policies[p.Name] = &p
		return p.Name, nil
	case kindWrapping:
		// Read when first used (byok.go).
		return "", nil
	}
	return "", fmt.Errorf("unknown record kind %q", kind)
}

func (s *Service) blind(name string) []byte {
	if s.st == nil {
		return nil
	}
	return s.st.Blind(name)
}

// persist writes a record synced, a compare-and-set on the revision
// last seen (ErrConflict if another replica changed it); memory-only
// services skip it. s.mu is held.
func (s *Service) persist(kind string, key []byte, name string, v any) error {
	if s.st == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.persistRec(kind, key, name, b)
}

func (s *Service) saveKey(k *Key) error {
	return s.persist(kindKey, s.blind(k.Name), k.Name, k)
}

// createToken makes an orphan token with the given policies, without a
// TTL, and stores it; s.mu is held.
func (s *Service) createToken(policies []string) (string, error) {
	tok, h, t, err := s.newToken(policies)
	if err != nil {
		return "", err
	}
	if err := s.persist(kindToken, h[:], "", t); err != nil {
		return "", err
	}
	s.putToken(h, t)
	return tok, nil
}

// newToken makes a token without storing it; s.mu is held.
func (s *Service) newToken(policies []string) (string, [32]byte, *token, error) {
	raw := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
		return "", [32]byte{}, nil, err
	}
	acc, err := newAccessor(s.cfg.Rand)
	if err != nil {
		return "", [32]byte{}, nil, err
	}
	tok := "se." + base64.RawURLEncoding.EncodeToString(raw)
	t := &token{Accessor: acc, Policies: policies, Created: s.cfg.Now().UTC(),
		Recoverable: s.recovery != nil}
	return tok, tokenHash(tok), t, nil
}

// newAccessor draws a token accessor shaped as Vault's: 24 letters and
// digits (about 143 bits). Base64url, used before, could begin with '-',
// which the Vault CLI then takes for a flag (vault token lookup
// -accessor -Xyz… fails).
func newAccessor(r io.Reader) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 24)
	var buf [32]byte
	for len(out) < 24 {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 248 = 4·62: rejecting larger bytes keeps every symbol
			// equally likely.
			if b < 248 && len(out) < 24 {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out), nil
}

func tokenHash(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// putToken and dropToken keep tokens and accessors together; s.mu is
// held (or the service is not yet shared).
func (s *Service) putToken(h [32]byte, t *token) {
	s.tokens[h] = t
	s.accessors[t.Accessor] = h
}

func (s *Service) dropToken(h [32]byte) {
	if t := s.tokens[h]; t != nil {
		delete(s.accessors, t.Accessor)
	}
	delete(s.tokens, h)
}

// KeyCount is the number of keys.
func (s *Service) KeyCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// KeyNames lists the keys, sorted.
func (s *Service) KeyNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.keys))
	for n := range s.keys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func validName(n string) error {
	if n == "" || len(n) > 128 {
		return badRequest("key name must be 1 to 128 characters")
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return badRequest(fmt.Sprintf("key name %q: only letters, digits, '-', '_' and '.' are allowed", n))
		}
	}
	return nil
}
