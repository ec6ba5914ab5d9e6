package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/sharedenclave/sharedenclave/attest"
)

// Attestation-gated key release (not in Vault): a key whose config has a
// release_policy can be released to an enclave that proves, with a quote,
// that it satisfies the policy and holds a fresh P-256 key:
//
//	POST /v1/transit/release/:name
//	{"quote": b64, "public_key": PEM (P-256 SubjectPublicKeyInfo), "kind": "key" | "datakey"}
//
// The quote's report data must be SHA-256(SPKI DER of public_key) ‖ 32
// zeros. The answer is encrypted to public_key (ECIES: ephemeral ECDH
// P-256, HKDF-SHA256, AES-256-GCM), so only that enclave can read it:
//
//	{"ephemeral_public_key": b64, "nonce": b64, "ciphertext": b64, "key_version": n}
//
// "key" releases the latest version's key material; "datakey" a fresh
// 256-bit data key and its ciphertext under the key (vault:vN:…).

const releaseInfo = "shared-enclave kms release v1"

// ReleasedKey is what a release decrypts to.
type ReleasedKey struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	KeyVersion int    `json:"key_version"`
	// Key is the key material (kind "key") or the data key ("datakey").
	Key []byte `json:"key"`
	// Ciphertext is the data key wrapped by the KMS key (kind "datakey").
	Ciphertext string `json:"ciphertext,omitempty"`
}

// ReleaseReportData is the report data a releasing enclave's quote must
// carry for pub.
func ReleaseReportData(pub *ecdh.PublicKey) ([64]byte, []byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [64]byte{}, nil, err
	}
	var rd [64]byte
	h := sha256.Sum256(der)
	copy(rd[:], h[:])
	return rd, der, nil
}

func releaseKey(shared, eph, recipient []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, shared, append(append([]byte(nil), eph...), recipient...), releaseInfo, 32)
}

func (s *Service) release(req *request, name string) (response, error) {
	if err := fieldsRelease.check(req.body); err != nil {
		return response{}, err
	}
	if s.cfg.Verifier == nil {
		return response{}, badRequest("key release is not enabled on this server")
	}
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	if k.Release == nil {
		return response{}, forbidden()
	}
	quote, err := req.b64("quote")
	if err != nil {
		return response{}, err
	}
	pemStr, err := req.str("public_key")
	if err != nil {
		return response{}, err
	}
	kind, err := req.str("kind")
	if err != nil {
		return response{}, err
	}
	if kind == "" {
		kind = "key"
	}
	if kind != "key" && kind != "datakey" {
		return response{}, badRequest("kind must be key or datakey")
	}
	block, _ := pem.Decode([]byte(pemStr))
	if block == nil || len(quote) == 0 {
		return response{}, badRequest("quote and public_key (PEM) are required")
	}
	pk, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return response{}, badRequest("public_key is not a PKIX public key")
	}
	var recipient *ecdh.PublicKey
	switch p := pk.(type) {
	case *ecdh.PublicKey:
		recipient = p
	case interface {
		ECDH() (*ecdh.PublicKey, error)
	}:
		if recipient, err = p.ECDH(); err != nil {
			return response{}, badRequest("public_key: " + err.Error())
		}
	}
	if recipient == nil || recipient.Curve() != ecdh.P256() {
		return response{}, badRequest("public_key must be a P-256 key")
	}
	rd, _, err := ReleaseReportData(recipient)
	if err != nil {
		return response{}, err
	}
	if _, err := attest.VerifyAndCheck(req.r.Context(), s.cfg.Verifier, k.Release.Policy().WithReportData(rd[:]), quote); err != nil {
		s.log.Info("key release refused", "key", name, "err", err)
		return response{}, &Error{Status: 403, Msg: "release refused: " + err.Error()}
	}
	n, v, err := k.versionFor(0)
	if err != nil {
		return response{}, err
	}
	out := ReleasedKey{Name: k.Name, Type: string(k.Type), KeyVersion: n}
	if kind == "key" {
		out.Key = v.Secret
	} else {
		if out.Key, err = randomBytes(s.cfg.Rand, 32); err != nil {
			return response{}, err
		}
		if out.Ciphertext, err = k.encrypt(nil, n, v, out.Key, nil, nil); err != nil {
			return response{}, err
		}
	}
	payload, err := json.Marshal(out)
	if err != nil {
		return response{}, err
	}
	eph, err := ecdh.P256().GenerateKey(s.cfg.Rand)
	if err != nil {
		return response{}, err
	}
	shared, err := eph.ECDH(recipient)
	if err != nil {
		return response{}, err
	}
	key, err := releaseKey(shared, eph.PublicKey().Bytes(), recipient.Bytes())
	if err != nil {
		return response{}, err
	}
	block2, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block2)
	nonce := make([]byte, gcm.NonceSize())
	if _, err := io.ReadFull(s.cfg.Rand, nonce); err != nil {
		return response{}, err
	}
	s.log.Info("key released to an attested enclave", "key", name, "kind", kind, "version", n)
	return response{data: map[string]any{
		"ephemeral_public_key": base64.StdEncoding.EncodeToString(eph.PublicKey().Bytes()),
		"nonce":                base64.StdEncoding.EncodeToString(nonce),
		"ciphertext":           base64.StdEncoding.EncodeToString(gcm.Seal(nil, nonce, payload, []byte(releaseInfo))),
		"key_version":          n,
	}}, nil
}

// OpenRelease decrypts a release answer with the enclave's private key.
func OpenRelease(priv *ecdh.PrivateKey, ephB64, nonceB64, ctB64 string) (*ReleasedKey, error) {
	eph, err1 := base64.StdEncoding.DecodeString(ephB64)
	nonce, err2 := base64.StdEncoding.DecodeString(nonceB64)
	ct, err3 := base64.StdEncoding.DecodeString(ctB64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("kms: release answer: %w", err)
	}
	ephPub, err := ecdh.P256().NewPublicKey(eph)
	if err != nil {
		return nil, fmt.Errorf("kms: release answer: %w", err)
	}
	shared, err := priv.ECDH(ephPub)
	if err != nil {
		return nil, err
	}
	key, err := releaseKey(shared, eph, priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	if len(nonce) != gcm.NonceSize() {
		return nil, errors.New("kms: release answer: bad nonce")
	}
	pt, err := gcm.Open(nil, nonce, ct, []byte(releaseInfo))
	if err != nil {
		return nil, errors.New("kms: release answer does not decrypt with this key")
	}
	var out ReleasedKey
	if err := json.Unmarshal(pt, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
