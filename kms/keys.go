package kms

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sharedenclave/sharedenclave/attest"
)

// KeyType is a transit key type, named as Vault names it.
type KeyType string

// The supported key types.
const (
	AES128GCM96      KeyType = "aes128-gcm96"
	AES256GCM96      KeyType = "aes256-gcm96"
	ChaCha20Poly1305 KeyType = "chacha20-poly1305"
	Ed25519          KeyType = "ed25519"
	ECDSAP256        KeyType = "ecdsa-p256"
	ECDSAP384        KeyType = "ecdsa-p384"
	ECDSAP521        KeyType = "ecdsa-p521"
	RSA2048          KeyType = "rsa-2048"
	RSA3072          KeyType = "rsa-3072"
	RSA4096          KeyType = "rsa-4096"
	HMAC             KeyType = "hmac"
)

// Valid reports whether t is supported.
func (t KeyType) Valid() bool {
	switch t {
	case AES128GCM96, AES256GCM96, ChaCha20Poly1305, Ed25519, ECDSAP256, ECDSAP384, ECDSAP521, RSA2048, RSA3072, RSA4096, HMAC:
		return true
	}
	return false
}

func (t KeyType) symmetric() bool {
	return t == AES128GCM96 || t == AES256GCM96 || t == ChaCha20Poly1305
}
func (t KeyType) rsa() bool { return t == RSA2048 || t == RSA3072 || t == RSA4096 }
func (t KeyType) signing() bool {
	return t == Ed25519 || t == ECDSAP256 || t == ECDSAP384 || t == ECDSAP521 || t.rsa()
}
func (t KeyType) encrypting() bool { return t.symmetric() || t.rsa() }

// derivable: keys of the type may be created with derived=true
// (symmetric keys, and ed25519 as in Vault).
func (t KeyType) derivable() bool { return t.symmetric() || t == Ed25519 }

// version is one version of a key. Its fields are secret: the type has no
// exported way to print them, and nothing logs it.
type version struct {
	Created time.Time `json:"created"`
	// Secret: the symmetric or HMAC key, or a PKCS#8 private key.
	Secret []byte `json:"secret"`
	// HMACKey serves the hmac endpoint for keys that are not of type hmac.
	HMACKey []byte `json:"hmac_key"`

	// cache holds what is derived from Secret once: the AEAD of a
	// non-derived symmetric key, the parsed private key.
	cache struct {
		once   sync.Once
		aead   cipher.AEAD
		signer crypto.Signer
		err    error
	}
}

// aeadOnce builds a symmetric version's AEAD once. (A version is either
// symmetric or asymmetric, so cache.once serves one of aeadOnce and
// signer, never both.)
func (v *version) aeadOnce(t KeyType) (cipher.AEAD, error) {
	v.cache.once.Do(func() { v.cache.aead, v.cache.err = newAEAD(t, v.Secret) })
	return v.cache.aead, v.cache.err
}

func newAEAD(t KeyType, key []byte) (cipher.AEAD, error) {
	if t == ChaCha20Poly1305 {
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// String hides the key material.
func (v *version) String() string { return "kms.version(…)" }

// GoString hides the key material.
func (v *version) GoString() string { return "kms.version(…)" }

func newVersion(t KeyType, r io.Reader, hmacBytes int, now time.Time) (*version, error) {
	v := &version{Created: now.UTC().Truncate(time.Second), HMACKey: make([]byte, 32)}
	if _, err := io.ReadFull(r, v.HMACKey); err != nil {
		return nil, err
	}
	random := func(n int) error {
		v.Secret = make([]byte, n)
		_, err := io.ReadFull(r, v.Secret)
		return err
	}
	var err error
	switch t {
	case AES128GCM96:
		err = random(16)
	case AES256GCM96, ChaCha20Poly1305:
		err = random(32)
	case HMAC:
		err = random(hmacBytes)
	case Ed25519:
		var k ed25519.PrivateKey
		if _, k, err = ed25519.GenerateKey(r); err == nil {
			v.Secret, err = x509.MarshalPKCS8PrivateKey(k)
		}
	case ECDSAP256, ECDSAP384, ECDSAP521:
		c := map[KeyType]elliptic.Curve{ECDSAP256: elliptic.P256(), ECDSAP384: elliptic.P384(), ECDSAP521: elliptic.P521()}[t]
		var k *ecdsa.PrivateKey
		if k, err = ecdsa.GenerateKey(c, r); err == nil {
			v.Secret, err = x509.MarshalPKCS8PrivateKey(k)
		}
	case RSA2048, RSA3072, RSA4096:
		bits := map[KeyType]int{RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[t]
		var k *rsa.PrivateKey
		if k, err = rsa.GenerateKey(r, bits); err == nil {
			v.Secret, err = x509.MarshalPKCS8PrivateKey(k)
		}
	default:
		err = fmt.Errorf("unsupported key type %q", t)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (v *version) signer() (crypto.Signer, error) {
	v.cache.once.Do(func() {
		var k any
		if k, v.cache.err = x509.ParsePKCS8PrivateKey(v.Secret); v.cache.err == nil {
			var ok bool
			if v.cache.signer, ok = k.(crypto.Signer); !ok {
				v.cache.err = errors.New("kms: key is not a signer")
			}
		}
	})
	return v.cache.signer, v.cache.err
}

// derivedEd25519 is the ed25519 key a derived ed25519 key has for
// context, as Vault derives it: the seed is the first 32 bytes of
// HKDF-SHA256(the version's 64-byte ed25519 private key, salt = none,
// info = context).
func (v *version) derivedEd25519(context []byte) (ed25519.PrivateKey, error) {
	if len(context) == 0 {
		return nil, badRequest(`missing field "context" for key derivation: the key was created with derived=true, so every operation must include a context`)
	}
	s, err := v.signer()
	if err != nil {
		return nil, err
	}
	base, ok := s.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("kms: derivation of a signing key that is not ed25519")
	}
	seed, err := hkdf.Key(sha256.New, base, nil, string(context), ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func (v *version) public() (crypto.PublicKey, error) {
	s, err := v.signer()
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

// exportPublic is the public key as Vault exports it: base64 of the raw
// key for ed25519, PEM (PKIX) otherwise.
func (v *version) exportPublic(t KeyType) (string, error) {
	pub, err := v.public()
	if err != nil {
		return "", err
	}
	if t == Ed25519 {
		return base64.StdEncoding.EncodeToString(pub.(ed25519.PublicKey)), nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// aeadFor returns the AEAD of a symmetric version. For a derived key the
// key is HKDF-SHA256(secret, salt = none, info = context), as Vault
// derives it; for a convergent key the 32 bytes that follow the
// encryption key in the same HKDF output are the key of the nonce HMAC
// (Vault's convergent version 3).
func (v *version) aeadFor(t KeyType, context []byte, derived, convergent bool) (cipher.AEAD, []byte, error) {
	if !derived {
		if len(context) != 0 {
			return nil, nil, badRequest(`field "context" was given but the key is not derived`)
		}
		a, err := v.aeadOnce(t)
		return a, nil, err
	}
	if len(context) == 0 {
		return nil, nil, badRequest(`missing field "context" for key derivation: the key was created with derived=true, so every operation must include a context`)
	}
	n := len(v.Secret)
	if convergent {
		n += 32
	}
	key, err := hkdf.Key(sha256.New, v.Secret, nil, string(context), n)
	if err != nil {
		return nil, nil, err
	}
	a, err := newAEAD(t, key[:len(v.Secret)])
	if err != nil {
		return nil, nil, err
	}
	return a, key[len(v.Secret):], nil
}

func (v *version) hmacKey(t KeyType) []byte {
	if t == HMAC {
		return v.Secret
	}
	return v.HMACKey
}

// Key is a named transit key with its versions and configuration.
type Key struct {
	Name    string  `json:"name"`
	Type    KeyType `json:"type"`
	Derived bool    `json:"derived"`
	// Convergent: the same plaintext and context give the same
	// ciphertext (needs Derived).
	Convergent bool `json:"convergent_encryption,omitempty"`
	// AutoRotatePeriod, when not zero, rotates the key once its latest
	// version is that old (checked whenever the key is used or read).
	AutoRotatePeriod     time.Duration `json:"auto_rotate_period,omitempty"`
	Exportable           bool          `json:"exportable"`
	DeletionAllowed      bool          `json:"deletion_allowed"`
	MinDecryptionVersion int           `json:"min_decryption_version"`
	MinEncryptionVersion int           `json:"min_encryption_version"`
	LatestVersion        int           `json:"latest_version"`
	// MinAvailableVersion: versions below it were trimmed (their key
	// material deleted); 0 if none was.
	MinAvailableVersion int              `json:"min_available_version,omitempty"`
	Versions            map[int]*version `json:"versions"`
	// Imported: the key material came in through BYOK import; such a
	// key rotates only with AllowRotation (Vault's rule).
	Imported      bool `json:"imported,omitempty"`
	AllowRotation bool `json:"allow_rotation,omitempty"`
	// Release, when set, allows attestation-gated release of the key to
	// enclaves that satisfy it.
	Release *ReleasePolicy `json:"release_policy,omitempty"`
}

// ReleasePolicy is the TOML/JSON form of the attest.Policy a releasing
// enclave must satisfy.
type ReleasePolicy struct {
	MREnclave      []attest.Hash32 `json:"mrenclave,omitempty"`
	MRSigner       []attest.Hash32 `json:"mrsigner,omitempty"`
	ISVProdID      *uint16         `json:"isvprodid,omitempty"`
	MinISVSVN      uint16          `json:"min_isvsvn,omitempty"`
	AllowDebug     bool            `json:"allow_debug,omitempty"`
	AllowSimulated bool            `json:"allow_simulated,omitempty"`
}

// Policy converts the release policy for attest.
func (r *ReleasePolicy) Policy() *attest.Policy {
	return &attest.Policy{MREnclave: r.MREnclave, MRSigner: r.MRSigner, ProductID: r.ISVProdID,
		MinISVSVN: r.MinISVSVN, AllowDebug: r.AllowDebug, AllowSimulated: r.AllowSimulated}
}

// versionFor picks the version to encrypt or sign with: the latest, or
// the one asked for (0 = latest), honouring min_encryption_version.
func (k *Key) versionFor(asked int) (int, *version, error) {
	n := asked
	if n == 0 {
		n = k.LatestVersion
	}
	if n < 0 || n > k.LatestVersion {
		return 0, nil, badRequest(fmt.Sprintf("key version %d does not exist", n))
	}
	if k.MinEncryptionVersion > 0 && n < k.MinEncryptionVersion {
		return 0, nil, badRequest(fmt.Sprintf("key version %d is below min_encryption_version %d", n, k.MinEncryptionVersion))
	}
	if n < k.MinDecryptionVersion {
		// Its output could never be decrypted or verified (Vault has
		// archived such versions and refuses them too).
		return 0, nil, badRequest(fmt.Sprintf("key version %d is below min_decryption_version %d", n, k.MinDecryptionVersion))
	}
	v := k.Versions[n]
	if v == nil {
		return 0, nil, badRequest(fmt.Sprintf("key version %d is not available", n))
	}
	return n, v, nil
}

// decryptVersion checks a version for decryption or verification.
func (k *Key) decryptVersion(n int) (*version, error) {
	if n < 1 || n > k.LatestVersion {
		return nil, badRequest(fmt.Sprintf("invalid key version %d", n))
	}
	if n < k.MinDecryptionVersion {
		return nil, badRequest(fmt.Sprintf("ciphertext or signature version %d is disallowed by policy (too old): min_decryption_version is %d", n, k.MinDecryptionVersion))
	}
	v := k.Versions[n]
	if v == nil {
		return nil, badRequest(fmt.Sprintf("key version %d has been trimmed", n))
	}
	return v, nil
}
