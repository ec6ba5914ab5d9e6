package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"strconv"
	"strings"
)

// Ciphertexts, signatures and HMACs are "vault:v<version>:<base64>".
func formatVersioned(n int, b []byte) string {
	return string(appendVersioned(make([]byte, 0, len("vault:v:")+20+base64.StdEncoding.EncodedLen(len(b))), n, b))
}

func appendVersioned(dst []byte, n int, b []byte) []byte {
	dst = append(dst, "vault:v"...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, ':')
	return base64.StdEncoding.AppendEncode(dst, b)
}

func parseVersioned(s, what string) (int, []byte, error) {
	return parseVersionedEnc(s, what, base64.StdEncoding)
}

// parseVersionedEnc parses a versioned value whose body is in enc: JWS
// signatures are base64url without padding, everything else standard
// base64, as in Vault; nothing is tried in the other encoding.
func parseVersionedEnc(s, what string, enc *base64.Encoding) (int, []byte, error) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return 0, nil, badRequest(fmt.Sprintf("invalid %s: no vault:v prefix", what))
	}
	vs, body, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, nil, badRequest(fmt.Sprintf("invalid %s: no version", what))
	}
	n, err := strconv.Atoi(vs)
	if err != nil || n < 1 {
		return 0, nil, badRequest(fmt.Sprintf("invalid %s: bad version %q", what, vs))
	}
	b, err := enc.DecodeString(body)
	if err != nil {
		hint := ""
		if enc == base64.StdEncoding && what == "signature" {
			hint = " (a JWS signature needs marshaling_algorithm=jws)"
		}
		return 0, nil, badRequest(fmt.Sprintf("invalid %s: bad base64%s", what, hint))
	}
	return n, b, nil
}

func decodeB64(s, field string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("failed to base64-decode %s", field))
	}
	return b, nil
}

// scratch is working memory for the items of one request, which run one
// after the other: the decoded plaintext is reused from item to item, and
// the sealed records are cut from one arena, so that an item of a batch
// allocates nothing of its own. A nil *scratch allocates.
type scratch struct{ pt, arena []byte }

// decode base64-decodes s (the field named field) into sc's plaintext
// buffer; the result is valid until the next item.
func (sc *scratch) decode(s, field string) ([]byte, error) {
	if sc == nil {
		return decodeB64(s, field)
	}
	n := base64.StdEncoding.DecodedLen(len(s))
	if cap(sc.pt) < n {
		sc.pt = make([]byte, n)
	}
	m, err := base64.StdEncoding.Decode(sc.pt[:n], []byte(s))
	if err != nil {
		return nil, badRequest(fmt.Sprintf("failed to base64-decode %s", field))
	}
	return sc.pt[:m], nil
}

// buf returns a buffer of length 0 and capacity n, cut from sc's arena:
// it stays valid (and is never reused) for as long as the caller keeps it.
func (sc *scratch) buf(n int) []byte {
	if sc == nil {
		return make([]byte, 0, n)
	}
	if cap(sc.arena)-len(sc.arena) < n {
		// A new arena, twice the last one up to 64 KiB (a single
		// request needs one record); the records cut from the old one
		// keep it.
		sc.arena = make([]byte, 0, max(n, min(64<<10, 2*cap(sc.arena))))
	}
	b := sc.arena[len(sc.arena) : len(sc.arena) : len(sc.arena)+n]
	sc.arena = sc.arena[:len(sc.arena)+n]
	return b
}

// encrypt seals plaintext with key version n as a "vault:v<n>:" string.
func (k *Key) encrypt(sc *scratch, n int, v *version, plaintext, context, ad []byte) (string, error) {
	rec, err := k.seal(sc, v, plaintext, context, ad)
	if err != nil {
		return "", err
	}
	return formatVersioned(n, rec), nil
}

// seal seals plaintext with key version v and returns the record (the
// ciphertext's bytes, before base64); sc: see scratch.
func (k *Key) seal(sc *scratch, v *version, plaintext, context, ad []byte) ([]byte, error) {
	switch {
	case k.Type.symmetric():
		a, nonceKey, err := v.aeadFor(k.Type, context, k.Derived, k.Convergent)
		if err != nil {
			return nil, err
		}
		nonce := sc.buf(a.NonceSize() + len(plaintext) + a.Overhead())[:a.NonceSize()]
		if k.Convergent {
			// Vault's convergent encryption (version 3): the nonce is
			// HMAC-SHA256 of the plaintext under a key derived with the
			// encryption key from the context, so the same plaintext and
			// context give the same ciphertext.
			m := hmac.New(sha256.New, nonceKey)
			m.Write(plaintext)
			copy(nonce, m.Sum(nil))
		} else if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		return a.Seal(nonce, nonce, plaintext, ad), nil
	case k.Type.rsa():
		if len(ad) != 0 || len(context) != 0 {
			return nil, badRequest("associated_data and context are not supported with RSA keys")
		}
		pub, err := v.public()
		if err != nil {
			return nil, err
		}
		c, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), plaintext, nil)
		if err != nil {
			return nil, badRequest("plaintext too long for RSA-OAEP with this key")
		}
		return c, nil
	}
	return nil, badRequest(fmt.Sprintf("key type %s does not support encryption", k.Type))
}

func (k *Key) decrypt(ciphertext string, context, ad []byte) ([]byte, int, error) {
	if !k.Type.encrypting() {
		return nil, 0, badRequest(fmt.Sprintf("key type %s does not support decryption", k.Type))
	}
	n, c, err := parseVersioned(ciphertext, "ciphertext")
	if err != nil {
		return nil, 0, err
	}
	v, err := k.decryptVersion(n)
	if err != nil {
		return nil, 0, err
	}
	if k.Type.rsa() {
		s, err := v.signer()
		if err != nil {
			return nil, 0, err
		}
		p, err := rsa.DecryptOAEP(sha256.New(), nil, s.(*rsa.PrivateKey), c, nil)
		if err != nil {
			return nil, 0, badRequest("cipher: message authentication failed")
		}
		return p, n, nil
	}
	a, _, err := v.aeadFor(k.Type, context, k.Derived, false)
	if err != nil {
		return nil, 0, err
	}
	if len(c) < a.NonceSize()+a.Overhead() {
		return nil, 0, badRequest("invalid ciphertext: too short")
	}
	p, err := a.Open(nil, c[:a.NonceSize()], c[a.NonceSize():], ad)
	if err != nil {
		return nil, 0, badRequest("cipher: message authentication failed")
	}
	return p, n, nil
}

// hashFor maps Vault's hash_algorithm names.
func hashFor(name string) (crypto.Hash, func() hash.Hash, error) {
	switch name {
	case "", "sha2-256":
		return crypto.SHA256, sha256.New, nil
	case "sha2-224":
		return crypto.SHA224, sha256.New224, nil
	case "sha2-384":
		return crypto.SHA384, sha512.New384, nil
	case "sha2-512":
		return crypto.SHA512, sha512.New, nil
	case "sha3-224":
		return crypto.SHA3_224, func() hash.Hash { return sha3.New224() }, nil
	case "sha3-256":
		return crypto.SHA3_256, func() hash.Hash { return sha3.New256() }, nil
	case "sha3-384":
		return crypto.SHA3_384, func() hash.Hash { return sha3.New384() }, nil
	case "sha3-512":
		return crypto.SHA3_512, func() hash.Hash { return sha3.New512() }, nil
	}
	return 0, nil, badRequest(fmt.Sprintf("unsupported hash algorithm %q", name))
}

type signParams struct {
	hashAlg    string // Vault's hash_algorithm; "none" with prehashed
	sigAlg     string // pss | pkcs1v15 (RSA)
	marshaling string // asn1 | jws (ECDSA)
	prehashed  bool
	// saltLength is the RSA-PSS salt length: rsa.PSSSaltLengthAuto
	// (Vault's "auto": as long as possible when signing, detected when
	// verifying), rsa.PSSSaltLengthEqualsHash ("hash") or a number of
	// bytes. saltGiven: it is not the default (auto), so it must apply.
	saltLength int
	saltGiven  bool
}

// parseSaltLength reads salt_length as Vault does: "auto" (the default),
// "hash", or a number of bytes (a JSON number or a string of digits; 0 is
// "auto", as in Vault). Whether it fits the key and hash is checked when
// signing.
func parseSaltLength(raw json.RawMessage) (int, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return rsa.PSSSaltLengthAuto, false, nil
	}
	var str string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, false, badRequest(`field "salt_length" must be "auto", "hash" or a number of bytes`)
		}
	} else {
		str = string(raw)
	}
	switch strings.ToLower(str) {
	case "", "auto":
		return rsa.PSSSaltLengthAuto, false, nil
	case "hash":
		return rsa.PSSSaltLengthEqualsHash, true, nil
	}
	n, err := strconv.Atoi(str)
	if err != nil || n < 0 {
		return 0, false, badRequest(fmt.Sprintf(`field "salt_length": %q is not "auto", "hash" or a number of bytes`, str))
	}
	return n, n != rsa.PSSSaltLengthAuto, nil
}

// pssOptions are the PSS options of a signature with hash h by key.
func (p *signParams) pssOptions(key *rsa.PublicKey, h crypto.Hash) (*rsa.PSSOptions, error) {
	if p.saltLength > 0 {
		if max := (key.N.BitLen()-1+7)/8 - h.Size() - 2; p.saltLength > max {
			return nil, badRequest(fmt.Sprintf(`field "salt_length": %d is more than the %d bytes a PSS signature with this key and %s can hold`, p.saltLength, max, p.hashAlgName()))
		}
	}
	return &rsa.PSSOptions{SaltLength: p.saltLength}, nil
}

func (p *signParams) hashAlgName() string {
	if p.hashAlg == "" {
		return "sha2-256"
	}
	return p.hashAlg
}

// check refuses parameters that do not apply to a key type, rather than
// ignoring them.
func (p *signParams) check(t KeyType) error {
	if !t.signing() {
		return nil // the operation itself is refused
	}
	if t == Ed25519 && p.prehashed {
		return badRequest("field \"prehashed\" is not supported for ed25519 keys: kmsd signs with pure Ed25519, which hashes the message itself")
	}
	if p.sigAlg != "" && !t.rsa() {
		return badRequest(fmt.Sprintf("field \"signature_algorithm\" applies only to RSA keys, not %s", t))
	}
	switch p.sigAlg {
	case "", "pss", "pkcs1v15":
	default:
		return badRequest(fmt.Sprintf("unsupported signature_algorithm %q", p.sigAlg))
	}
	if p.saltGiven && (!t.rsa() || p.sigAlg == "pkcs1v15") {
		return badRequest(`field "salt_length" applies only to RSA keys with signature_algorithm pss`)
	}
	switch p.marshaling {
	case "", "asn1", "jws":
	default:
		return badRequest(fmt.Sprintf("unsupported marshaling_algorithm %q", p.marshaling))
	}
	return nil
}

// encoding is the base64 alphabet of signatures: base64url without
// padding for JWS, standard base64 otherwise.
func (p *signParams) encoding() *base64.Encoding {
	if p.marshaling == "jws" {
		return base64.RawURLEncoding
	}
	return base64.StdEncoding
}

func (p *signParams) digest(input []byte, t KeyType) (crypto.Hash, []byte, error) {
	if t == Ed25519 {
		return 0, input, nil // pure Ed25519 signs the message itself
	}
	if p.hashAlg == "none" {
		if !t.rsa() || p.sigAlg != "pkcs1v15" {
			return 0, nil, badRequest("hash_algorithm none is only for RSA with pkcs1v15")
		}
		return 0, input, nil
	}
	h, newHash, err := hashFor(p.hashAlg)
	if err != nil {
		return 0, nil, err
	}
	if p.prehashed {
		if len(input) != h.Size() {
			return 0, nil, badRequest("prehashed input has the wrong length for the hash algorithm")
		}
		return h, input, nil
	}
	d := newHash()
	d.Write(input)
	return h, d.Sum(nil), nil
}

// sign signs input with version n. For a derived ed25519 key it also
// returns the public key derived from context (Vault's "public_key").
func (k *Key) sign(n int, v *version, input, context []byte, p signParams) (string, []byte, error) {
	if !k.Type.signing() {
		return "", nil, badRequest(fmt.Sprintf("key type %s does not support signing", k.Type))
	}
	h, digest, err := p.digest(input, k.Type)
	if err != nil {
		return "", nil, err
	}
	s, err := k.signerFor(v, context)
	if err != nil {
		return "", nil, err
	}
	var sig, derivedPub []byte
	switch key := s.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, digest)
		if k.Derived {
			derivedPub = key.Public().(ed25519.PublicKey)
		}
	case *ecdsa.PrivateKey:
		switch p.marshaling {
		case "", "asn1":
			sig, err = ecdsa.SignASN1(rand.Reader, key, digest)
		case "jws":
			var r, sv *big.Int
			if r, sv, err = ecdsa.Sign(rand.Reader, key, digest); err == nil {
				size := (key.Curve.Params().BitSize + 7) / 8
				sig = make([]byte, 2*size)
				r.FillBytes(sig[:size])
				sv.FillBytes(sig[size:])
			}
		}
	case *rsa.PrivateKey:
		switch p.sigAlg {
		case "", "pss":
			var opts *rsa.PSSOptions
			if opts, err = p.pssOptions(&key.PublicKey, h); err != nil {
				return "", nil, err
			}
			sig, err = rsa.SignPSS(rand.Reader, key, h, digest, opts)
		case "pkcs1v15":
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, h, digest)
		default:
			return "", nil, badRequest(fmt.Sprintf("unsupported signature_algorithm %q", p.sigAlg))
		}
	}
	if err != nil {
		return "", nil, err
	}
	return "vault:v" + strconv.Itoa(n) + ":" + p.encoding().EncodeToString(sig), derivedPub, nil
}

// signerFor is the private key of a version: for a derived key (ed25519),
// the one derived from context, which is required; other keys take no
// context.
func (k *Key) signerFor(v *version, context []byte) (crypto.Signer, error) {
	if !k.Derived {
		if len(context) != 0 {
			return nil, badRequest(`field "context" was given but the key is not derived`)
		}
		return v.signer()
	}
	return v.derivedEd25519(context)
}

func (k *Key) verify(signature string, input, context []byte, p signParams) (bool, error) {
	if !k.Type.signing() {
		return false, badRequest(fmt.Sprintf("key type %s does not support verification", k.Type))
	}
	n, sig, err := parseVersionedEnc(signature, "signature", p.encoding())
	if err != nil {
		return false, err
	}
	v, err := k.decryptVersion(n)
	if err != nil {
		return false, err
	}
	h, digest, err := p.digest(input, k.Type)
	if err != nil {
		return false, err
	}
	signer, err := k.signerFor(v, context)
	if err != nil {
		return false, err
	}
	switch key := signer.Public().(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(key, digest, sig), nil
	case *ecdsa.PublicKey:
		switch p.marshaling {
		case "", "asn1":
			return ecdsa.VerifyASN1(key, digest, sig), nil
		case "jws":
			size := (key.Curve.Params().BitSize + 7) / 8
			if len(sig) != 2*size {
				return false, nil
			}
			der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])})
			return ecdsa.VerifyASN1(key, digest, der), nil
		}
	case *rsa.PublicKey:
		switch p.sigAlg {
		case "", "pss":
			opts, err := p.pssOptions(key, h)
			if err != nil {
				return false, err
			}
			return rsa.VerifyPSS(key, h, digest, sig, opts) == nil, nil
		case "pkcs1v15":
			return rsa.VerifyPKCS1v15(key, h, digest, sig) == nil, nil
		}
		return false, badRequest(fmt.Sprintf("unsupported signature_algorithm %q", p.sigAlg))
	}
	return false, badRequest("unsupported key")
}

func (k *Key) hmac(n int, v *version, alg string, input []byte) (string, error) {
	_, newHash, err := hashFor(alg)
	if err != nil {
		return "", err
	}
	m := hmac.New(newHash, v.hmacKey(k.Type))
	m.Write(input)
	return formatVersioned(n, m.Sum(nil)), nil
}

func (k *Key) verifyHMAC(mac, alg string, input []byte) (bool, error) {
	n, sum, err := parseVersioned(mac, "hmac")
	if err != nil {
		return false, err
	}
	v, err := k.decryptVersion(n)
	if err != nil {
		return false, err
	}
	_, newHash, err := hashFor(alg)
	if err != nil {
		return false, err
	}
	m := hmac.New(newHash, v.hmacKey(k.Type))
	m.Write(input)
	return hmac.Equal(m.Sum(nil), sum), nil
}
