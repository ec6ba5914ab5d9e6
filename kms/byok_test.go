package kms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

// encodeImport builds an import ciphertext as Vault documents it (and as
// `vault transit import` does).
func encodeImport(t *testing.T, pub *rsa.PublicKey, key []byte) string {
	eph := make([]byte, 32)
	rand.Read(eph)
	w, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, eph, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kwpWrap(eph, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(append(w, k...))
}

func TestBYOKImport(t *testing.T) {
	dir := t.TempDir()
	k := startKMS(t, dir, nil)
	c := k.vaultClient(t, k.root)
	s, err := c.Logical().Read("transit/wrapping_key")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(s.Data["public_key"].(string)))
	p, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || p.(*rsa.PublicKey).N.BitLen() != 4096 {
		t.Fatalf("wrapping key: %v", err)
	}
	wpub := p.(*rsa.PublicKey)

	// An AES key we hold: what kmsd encrypts with it, we decrypt locally.
	aesKey := bytes.Repeat([]byte{0x42}, 32)
	mustWrite(t, c, "transit/keys/mine/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey), "type": "aes256-gcm96"})
	ct := mustWrite(t, c, "transit/encrypt/mine", map[string]any{"plaintext": b64("imported")}).Data["ciphertext"].(string)
	_, raw, _ := parseVersioned(ct, "ciphertext")
	blkc, _ := aes.NewCipher(aesKey)
	gcm, _ := cipher.NewGCM(blkc)
	if pt, err := gcm.Open(nil, raw[:12], raw[12:], nil); err != nil || string(pt) != "imported" {
		t.Fatalf("kmsd did not encrypt with the imported key: %v", err)
	}
	if r, _ := c.Logical().Read("transit/keys/mine"); r.Data["imported_key"] != true {
		t.Fatalf("read: %v", r.Data)
	}
	// Rotation needs allow_rotation; import_version adds a version.
	if _, err := c.Logical().Write("transit/keys/mine/rotate", nil); err == nil || !strings.Contains(err.Error(), "allow_rotation") {
		t.Fatalf("rotate of an imported key: %v", err)
	}
	aesKey2 := bytes.Repeat([]byte{0x43}, 32)
	mustWrite(t, c, "transit/keys/mine/import_version", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey2)})
	ct = mustWrite(t, c, "transit/encrypt/mine", map[string]any{"plaintext": b64("v2")}).Data["ciphertext"].(string)
	if !strings.HasPrefix(ct, "vault:v2:") {
		t.Fatalf("after import_version: %s", ct)
	}
	// Re-importing onto an existing key, a wrong size, a wrong type, a
	// tampered ciphertext: refused, and nothing changes.
	for _, tc := range []struct {
		path string
		body map[string]any
		msg  string
	}{
		{"transit/keys/mine/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey)}, "already exists"},
		{"transit/keys/short/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey[:16])}, "32"},
		{"transit/keys/edwrong/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey), "type": "ed25519"}, "PKCS#8"},
		{"transit/keys/tamper/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey)[:700] + "AAAA"}, "ciphertext"},
		{"transit/keys/hf/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey), "hash_function": "SHA512"}, "ciphertext"},
		{"transit/keys/pub/import", map[string]any{"public_key": "-----BEGIN PUBLIC KEY-----"}, `"public_key"`},
		{"transit/keys/exp/import", map[string]any{"ciphertext": encodeImport(t, wpub, aesKey), "exportable": true}, `"exportable"`},
	} {
		if _, err := c.Logical().Write(tc.path, tc.body); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want an error with %q", tc.path, err, tc.msg)
		}
	}

	// Asymmetric keys come as PKCS#8.
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	mustWrite(t, c, "transit/keys/ed/import", map[string]any{"ciphertext": encodeImport(t, wpub, der), "type": "ed25519"})
	sig := mustWrite(t, c, "transit/sign/ed", map[string]any{"input": b64("msg")}).Data["signature"].(string)
	_, sigRaw, _ := parseVersioned(sig, "signature")
	if !ed25519.Verify(edPub, []byte("msg"), sigRaw) {
		t.Fatal("ed25519 signature is not from the imported key")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(ec)
	if _, err := c.Logical().Write("transit/keys/ec/import", map[string]any{"ciphertext": encodeImport(t, wpub, der), "type": "ecdsa-p256"}); err == nil || !strings.Contains(err.Error(), "ecdsa-p384") {
		t.Fatalf("P-384 key imported as P-256: %v", err)
	}

	// The wrapping key and imported keys survive a restart.
	k.stop()
	k2 := startKMS(t, dir, nil)
	k2.root = k.root
	c2 := k2.vaultClient(t, k2.root)
	s2, _ := c2.Logical().Read("transit/wrapping_key")
	if s2.Data["public_key"] != s.Data["public_key"] {
		t.Fatal("wrapping key changed across a restart")
	}
	if d := mustWrite(t, c2, "transit/decrypt/mine", map[string]any{"ciphertext": ct}); d.Data["plaintext"] != b64("v2") {
		t.Fatalf("after restart: %v", d.Data)
	}
}
