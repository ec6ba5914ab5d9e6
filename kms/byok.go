package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"net/http"
)

// Bring your own key: Vault's transit import. GET transit/wrapping_key
// gives an RSA-4096 public key whose private half never leaves the
// enclave; a key is imported as
//
//	base64( RSA-OAEP(wrapping key, hash_function, ephemeral AES-256 key) ‖ KWP(ephemeral key, key) )
//
// where the key is raw bytes for symmetric and HMAC keys and PKCS#8 DER
// for asymmetric ones (Vault's format, so `vault transit import` and
// Vault's documented OpenSSL recipe work). This is the one way key
// material enters the enclave; nothing ever leaves it.

const (
	kindWrapping    = "kms/wrapping"
	wrappingKeyName = "transit-wrapping-key"
	wrappingKeyBits = 4096
)

type wrappingRecord struct {
	PKCS8 []byte `json:"pkcs8"`
}

// wrappingKey returns the import wrapping key, made (and stored, synced)
// on first use.
func (s *Service) wrappingKey() (*rsa.PrivateKey, error) {
	s.wrapMu.Lock()
	defer s.wrapMu.Unlock()
	if s.wrapKey != nil {
		return s.wrapKey, nil
	}
	if s.st != nil {
		if b, _, err := s.st.Get(kindWrapping, []byte(wrappingKeyName)); err == nil {
			var r wrappingRecord
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, err
			}
			k, err := x509.ParsePKCS8PrivateKey(r.PKCS8)
			if err != nil {
				return nil, err
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("kms: stored wrapping key is not RSA")
			}
			s.wrapKey = rk
			return rk, nil
		}
	}
	k, err := rsa.GenerateKey(s.cfg.Rand, wrappingKeyBits)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	err = s.persist(kindWrapping, []byte(wrappingKeyName), "", wrappingRecord{PKCS8: der})
	s.mu.Unlock()
	if err != nil {
		// ErrConflict: another replica made one first; the request is
		// retried and reads it.
		return nil, err
	}
	s.wrapKey = k
	return k, nil
}

func (s *Service) wrappingKeyAPI(req *request) (response, error) {
	if req.method != "GET" {
		return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
	}
	k, err := s.wrappingKey()
	if err != nil {
		return response{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return response{}, err
	}
	return response{data: map[string]any{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}, nil
}

var (
	fieldsImport = fields{
		known:       []string{"ciphertext", "hash_function", "type", "allow_rotation", "derived", "exportable", "allow_plaintext_backup", "auto_rotate_period"},
		unsupported: []string{"public_key", "context"},
	}
	fieldsImportVersion = fields{
		known:       []string{"ciphertext", "hash_function"},
		unsupported: []string{"public_key", "version"},
	}
)

// unwrapImport opens an import ciphertext to the key bytes.
func (s *Service) unwrapImport(req *request) ([]byte, error) {
	ctB64, err := req.str("ciphertext")
	if err != nil {
		return nil, err
	}
	if ctB64 == "" {
		return nil, badRequest("missing field \"ciphertext\"")
	}
	ct, err := decodeB64(ctB64, "ciphertext")
	if err != nil {
		return nil, err
	}
	hf, err := req.str("hash_function")
	if err != nil {
		return nil, err
	}
	var h hash.Hash
	switch hf {
	case "", "SHA256":
		h = sha256.New()
	case "SHA1":
		h = sha1.New()
	case "SHA384":
		h = sha512.New384()
	case "SHA512":
		h = sha512.New()
	default:
		return nil, badRequest(fmt.Sprintf("field \"hash_function\": %q is not SHA1, SHA256, SHA384 or SHA512", hf))
	}
	wk, err := s.wrappingKey()
	if err != nil {
		return nil, err
	}
	n := wk.Size()
	if len(ct) <= n {
		return nil, badRequest("field \"ciphertext\": too short for an RSA-4096 wrapped key followed by the wrapped key")
	}
	eph, err := rsa.DecryptOAEP(h, nil, wk, ct[:n], nil)
	if err != nil || len(eph) != 32 {
		return nil, badRequest("field \"ciphertext\": the ephemeral key does not decrypt with this server's wrapping key and hash_function")
	}
	key, err := kwpUnwrap(eph, ct[n:])
	if err != nil {
		return nil, badRequest("field \"ciphertext\": the key does not unwrap with the ephemeral key")
	}
	return key, nil
}

// importedVersion checks key bytes against the key type and makes a
// version of them.
func (s *Service) importedVersion(t KeyType, key []byte) (*version, error) {
	v, err := newVersion(AES256GCM96, s.cfg.Rand, 32, s.cfg.Now()) // for its fresh HMAC key
	if err != nil {
		return nil, err
	}
	want := map[KeyType]int{AES128GCM96: 16, AES256GCM96: 32, ChaCha20Poly1305: 32}
	switch {
	case t.symmetric():
		if len(key) != want[t] {
			return nil, badRequest(fmt.Sprintf("imported key is %d bytes; a %s key is %d", len(key), t, want[t]))
		}
		v.Secret = key
	case t == HMAC:
		if len(key) < 32 || len(key) > 512 {
			return nil, badRequest("an imported hmac key must be 32 to 512 bytes")
		}
		v.Secret = key
	default:
		priv, err := x509.ParsePKCS8PrivateKey(key)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("imported key: not a PKCS#8 private key (%s keys are imported as PKCS#8 DER)", t))
		}
		if got := pkcs8Type(priv); got != t {
			return nil, badRequest(fmt.Sprintf("imported key is a %s key, not %s", got, t))
		}
		v.Secret = key
	}
	return v, nil
}

// pkcs8Type names the key type of a parsed private key.
func pkcs8Type(k crypto.PrivateKey) KeyType {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return Ed25519
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256
		case elliptic.P384():
			return ECDSAP384
		case elliptic.P521():
			return ECDSAP521
		}
	case *rsa.PrivateKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	}
	return "an unsupported"
}

// importKey is POST transit/keys/:name/import: a new key whose first
// version is the imported key.
func (s *Service) importKey(req *request, name string) (response, error) {
	if err := fieldsImport.check(req.body); err != nil {
		return response{}, err
	}
	if err := validName(name); err != nil {
		return response{}, err
	}
	if err := refuseExport(req); err != nil {
		return response{}, err
	}
	typ, err := req.str("type")
	if err != nil {
		return response{}, err
	}
	if typ == "" {
		typ = string(AES256GCM96)
	}
	t := KeyType(typ)
	if !t.Valid() {
		return response{}, badRequest(fmt.Sprintf("unknown key type %q", typ))
	}
	derived, _, err := req.boolean("derived")
	if err != nil {
		return response{}, err
	}
	if derived && !t.derivable() {
		return response{}, badRequest("key derivation is only supported for symmetric keys and ed25519")
	}
	allowRotation, _, err := req.boolean("allow_rotation")
	if err != nil {
		return response{}, err
	}
	period, _, err := autoRotatePeriod(req)
	if err != nil {
		return response{}, err
	}
	if period > 0 && !allowRotation {
		return response{}, badRequest("field \"auto_rotate_period\" needs allow_rotation=true on an imported key")
	}
	keyBytes, err := s.unwrapImport(req)
	if err != nil {
		return response{}, err
	}
	v, err := s.importedVersion(t, keyBytes)
	if err != nil {
		return response{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[name] != nil {
		return response{}, badRequest("the key already exists: import a new version with keys/:name/import_version")
	}
	k := &Key{Name: name, Type: t, Derived: derived, AutoRotatePeriod: period, MinDecryptionVersion: 1, LatestVersion: 1,
		Versions: map[int]*version{1: v}, Imported: true, AllowRotation: allowRotation}
	if err := s.saveKey(k); err != nil {
		return response{}, err
	}
	s.keys[name] = k
	s.log.Info("key imported", "name", name, "type", string(t))
	return response{status: http.StatusNoContent}, nil
}

// importVersion is POST transit/keys/:name/import_version: a new latest
// version of an imported key.
func (s *Service) importVersion(req *request, name string) (response, error) {
	if err := fieldsImportVersion.check(req.body); err != nil {
		return response{}, err
	}
	k0, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	if !k0.Imported {
		return response{}, badRequest("import_version is only for imported keys")
	}
	keyBytes, err := s.unwrapImport(req)
	if err != nil {
		return response{}, err
	}
	v, err := s.importedVersion(k0.Type, keyBytes)
	if err != nil {
		return response{}, err
	}
	if _, err := s.update(name, func(k *Key) error {
		k.LatestVersion++
		k.Versions[k.LatestVersion] = v
		return nil
	}); err != nil {
		return response{}, err
	}
	s.log.Info("key version imported", "name", name)
	return response{status: http.StatusNoContent}, nil
}
