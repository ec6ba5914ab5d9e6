package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"io"

	"github.com/sharedenclave/sharedenclave/seal"
)

// DataKeySize is the size of a data key in bytes.
const DataKeySize = 32

// Errors callers branch on.
var (
	// ErrRecovery: the shares given do not recover this deployment's data
	// key (too few, forged, or from another deployment).
	ErrRecovery = errors.New("custody: the shares do not open this deployment's data key")
	// ErrShareFormat: a share's text is malformed.
	ErrShareFormat = errors.New("custody: malformed recovery share")
)

// DataKey is a service's data key. It cannot be printed or compared with
// ==; use it only through its methods.
type DataKey struct {
	b [DataKeySize]byte
	_ [0]func() // not comparable
}

// NewDataKey draws a data key from rand (crypto/rand in production).
func NewDataKey(rand io.Reader) (*DataKey, error) {
	k := &DataKey{}
	if _, err := io.ReadFull(rand, k.b[:]); err != nil {
		return nil, err
	}
	return k, nil
}

func (*DataKey) String() string   { return "custody.DataKey(…)" }
func (*DataKey) GoString() string { return "custody.DataKey(…)" }

// Root is the seal root the stores derive their keys from.
func (k *DataKey) Root() (*seal.Root, error) { return seal.NewRoot(k.b[:]) }

// Equal compares two data keys in constant time.
func (k *DataKey) Equal(o *DataKey) bool { return seal.Equal(k.b[:], o.b[:]) }

// Record kind and name under which the sealed data key is kept.
const (
	sealedKind = "custody/data-key"
	sealedName = "data-key"
)

// Seal encrypts the data key under the enclave's own seal key, for
// ordinary restarts.
func (k *DataKey) Seal(s *seal.Sealer) ([]byte, error) {
	return s.Seal(sealedKind, []byte(sealedName), 1, k.b[:])
}

// OpenSealed opens what Seal wrote. It fails (seal.ErrOpen or a sibling)
// under another enclave's seal key: the caller then needs recovery or a
// hand-off.
func OpenSealed(s *seal.Sealer, sealed []byte) (*DataKey, error) {
	b, err := s.Open(sealedKind, []byte(sealedName), 1, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if len(b) != DataKeySize {
		return nil, errors.New("custody: sealed data key has the wrong size")
	}
	k := &DataKey{}
	copy(k.b[:], b)
	return k, nil
}

// aead returns AES-256-GCM under a key derived from secret for purpose.
func aead(secret, salt []byte, purpose string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, salt, purpose, 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}
