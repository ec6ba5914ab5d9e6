package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors callers branch on.
var (
	// ErrOpen: a sealed record failed to open — tampered with, moved to
	// another name or purpose, or sealed by another enclave identity.
	ErrOpen = errors.New("seal: record does not open (tampered, swapped, or sealed by another enclave)")
	// ErrBadKey: a seal key is missing, short or all zeros.
	ErrBadKey = errors.New("seal: unusable seal key")
	// ErrUnknownGeneration: the record was sealed under a key generation
	// this Sealer does not hold.
	ErrUnknownGeneration = errors.New("seal: record sealed under an unknown key generation")
)

// Root is the secret every seal key derives from: under Gramine the
// 16-byte SGX seal key (MRENCLAVE or MRSIGNER policy), in simulation the
// platform secret bound to the program's measurement. It cannot be
// printed, compared with ==, or marshalled.
type Root struct {
	b []byte
}

// NewRoot checks a raw root secret: at least 16 bytes and not all zeros
// (EGo returns an all-zero key outside an enclave, without an error).
func NewRoot(raw []byte) (*Root, error) {
	if len(raw) < 16 {
		return nil, fmt.Errorf("%w: %d bytes, want at least 16", ErrBadKey, len(raw))
	}
	var acc byte
	for _, x := range raw {
		acc |= x
	}
	if acc == 0 {
		return nil, fmt.Errorf("%w: all zeros", ErrBadKey)
	}
	return &Root{b: append([]byte(nil), raw...)}, nil
}

// SimulatedRoot derives the root of a simulated enclave from its
// platform's secret and its measurement, so that another program (another
// MRENCLAVE) on the same simulated platform cannot open its records.
func SimulatedRoot(platformSecret []byte, mrenclave [32]byte) (*Root, error) {
	if len(platformSecret) < 16 {
		return nil, fmt.Errorf("%w: simulated platform secret of %d bytes", ErrBadKey, len(platformSecret))
	}
	k, err := hkdf.Key(sha256.New, platformSecret, mrenclave[:], "shared-enclave simulated seal key", 32)
	if err != nil {
		return nil, err
	}
	return NewRoot(k)
}

// String hides the secret.
func (*Root) String() string { return "seal.Root(…)" }

// GoString hides the secret.
func (*Root) GoString() string { return "seal.Root(…)" }

const (
	envelopeVersion = 1
	headerSize      = 1 + 4 + 12 // version ‖ generation u32 ‖ nonce
	// Overhead is how many bytes Seal adds to a plaintext.
	Overhead = headerSize + 16
)

// Sealer seals records with AES-256-GCM under keys derived from a Root,
// one per key generation. Generation g's key is
// HKDF-SHA256(root, salt "shared-enclave seal", info purpose ‖ g).
// It is safe for concurrent use.
type Sealer struct {
	current  uint32
	aeads    map[uint32]cipher.AEAD
	blindKey []byte
	rand     io.Reader
}

// NewSealer returns a Sealer for purpose (e.g. "relay", "kms") that seals
// under generation current and can open every generation from 1 to
// current.
func NewSealer(root *Root, purpose string, current uint32) (*Sealer, error) {
	if root == nil || len(root.b) == 0 {
		return nil, ErrBadKey
	}
	if current == 0 {
		return nil, errors.New("seal: key generations start at 1")
	}
	blind, err := hkdf.Key(sha256.New, root.b, []byte("shared-enclave blind"), purpose, 32)
	if err != nil {
		return nil, err
	}
	s := &Sealer{current: current, aeads: map[uint32]cipher.AEAD{}, blindKey: blind, rand: rand.Reader}
	for g := uint32(1); g <= current; g++ {
		info := binary.BigEndian.AppendUint32([]byte(purpose+"\x00"), g)
		key, err := hkdf.Key(sha256.New, root.b, []byte("shared-enclave seal"), string(info), 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		if s.aeads[g], err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Generation is the key generation new records are sealed under.
func (s *Sealer) Generation() uint32 { return s.current }

// ad is the associated data: what the record is, so that a record cannot
// be moved to another kind, name or version.
func ad(kind string, name []byte, version uint64, generation uint32) []byte {
	b := []byte("shared-enclave/seal/v1\x00")
	b = binary.BigEndian.AppendUint32(b, uint32(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, version)
	return binary.BigEndian.AppendUint32(b, generation)
}

// Seal encrypts plaintext as a record of the given kind, name and version:
//
//	0x01 ‖ generation u32 ‖ nonce [12] ‖ AES-256-GCM(plaintext, AD)
//
// with AD = kind, name, version and generation.
func (s *Sealer) Seal(kind string, name []byte, version uint64, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+16)
	out[0] = envelopeVersion
	binary.BigEndian.PutUint32(out[1:], s.current)
	if _, err := io.ReadFull(s.rand, out[5:headerSize]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.aeads[s.current].Seal(out, out[5:headerSize], plaintext, ad(kind, name, version, s.current)), nil
}

// Open decrypts a record sealed with the same kind, name and version.
func (s *Sealer) Open(kind string, name []byte, version uint64, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != envelopeVersion {
		return nil, ErrOpen
	}
	g := binary.BigEndian.Uint32(sealed[1:])
	aead, ok := s.aeads[g]
	if !ok {
		return nil, fmt.Errorf("%w: generation %d (this sealer holds 1..%d)", ErrUnknownGeneration, g, s.current)
	}
	pt, err := aead.Open(nil, sealed[5:headerSize], sealed[headerSize:], ad(kind, name, version, g))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// NeedsReseal reports whether a sealed record uses an older generation
// than the current one (key rotation re-seals those).
func (s *Sealer) NeedsReseal(sealed []byte) bool {
	return len(sealed) >= headerSize && binary.BigEndian.Uint32(sealed[1:]) != s.current
}

// Blind returns a 16-byte keyed hash of data (HMAC-SHA256 under a key
// derived from the root, the same for every generation), to use in place of
// names the host must not read, such as client ids in storage keys.
func (s *Sealer) Blind(kind string, data []byte) []byte {
	m := hmac.New(sha256.New, s.blindKey)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)[:16]
}

// Equal compares two secrets in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
