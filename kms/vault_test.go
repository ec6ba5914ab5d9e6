package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

var allTypes = []KeyType{AES128GCM96, AES256GCM96, ChaCha20Poly1305, Ed25519, ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, HMAC}

func mustWrite(t *testing.T, c *vault.Client, path string, data map[string]any) *vault.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

func TestVaultClientKeysOfEveryType(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	for _, typ := range allTypes {
		mustWrite(t, c, "transit/keys/k-"+string(typ), map[string]any{"type": string(typ)})
		s, err := c.Logical().Read("transit/keys/k-" + string(typ))
		if err != nil || s == nil {
			t.Fatalf("read %s: %v", typ, err)
		}
		if s.Data["type"] != string(typ) || s.Data["latest_version"] != json.Number("1") {
			t.Errorf("%s: read back %v", typ, s.Data)
		}
	}
	list, err := c.Logical().List("transit/keys")
	if err != nil || list == nil || len(list.Data["keys"].([]any)) != len(allTypes) {
		t.Fatalf("list: %v %v", list, err)
	}
	if s, err := c.Logical().Read("transit/keys/missing"); err != nil || s != nil {
		t.Fatalf("missing key: %v %v (the client maps 404 to nil)", s, err)
	}
}

func TestVaultClientEncryptDecrypt(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	for _, typ := range []KeyType{AES128GCM96, AES256GCM96, ChaCha20Poly1305, RSA2048} {
		name := "enc-" + string(typ)
		mustWrite(t, c, "transit/keys/"+name, map[string]any{"type": string(typ)})
		for _, ad := range []string{"", "some context that must match"} {
			if ad != "" && typ == RSA2048 {
				continue
			}
			in := map[string]any{"plaintext": b64("attack at dawn")}
			if ad != "" {
				in["associated_data"] = b64(ad)
			}
			s := mustWrite(t, c, "transit/encrypt/"+name, in)
			ct := s.Data["ciphertext"].(string)
			if !strings.HasPrefix(ct, "vault:v1:") {
				t.Fatalf("%s: ciphertext %q", typ, ct)
			}
			out := map[string]any{"ciphertext": ct}
			if ad != "" {
				out["associated_data"] = b64(ad)
			}
			s = mustWrite(t, c, "transit/decrypt/"+name, out)
			if s.Data["plaintext"] != b64("attack at dawn") {
				t.Fatalf("%s: round trip gave %v", typ, s.Data["plaintext"])
			}
			if ad != "" {
				_, err := c.Logical().Write("transit/decrypt/"+name, map[string]any{"ciphertext": ct, "associated_data": b64("other")})
				if err == nil {
					t.Fatalf("%s: wrong associated data decrypted", typ)
				}
			}
		}
	}
}

func TestVaultClientBatch(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/batch", nil)
	var in []map[string]any
	for i := 0; i < 1000; i++ {
		in = append(in, map[string]any{"plaintext": b64(fmt.Sprint("item ", i))})
	}
	s := mustWrite(t, c, "transit/encrypt/batch", map[string]any{"batch_input": in})
	res := s.Data["batch_results"].([]any)
	if len(res) != 1000 {
		t.Fatalf("%d results", len(res))
	}
	var dec []map[string]any
	for _, r := range res {
		dec = append(dec, map[string]any{"ciphertext": r.(map[string]any)["ciphertext"]})
	}
	s = mustWrite(t, c, "transit/decrypt/batch", map[string]any{"batch_input": dec})
	for i, r := range s.Data["batch_results"].([]any) {
		if r.(map[string]any)["plaintext"] != b64(fmt.Sprint("item ", i)) {
			t.Fatalf("item %d: %v", i, r)
		}
	}
}

func TestVaultClientRotateAndMinDecryptionVersion(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/rot", nil)
	old := mustWrite(t, c, "transit/encrypt/rot", map[string]any{"plaintext": b64("v1 data")}).Data["ciphertext"].(string)
	mustWrite(t, c, "transit/keys/rot/rotate", nil)
	nw := mustWrite(t, c, "transit/encrypt/rot", map[string]any{"plaintext": b64("v2 data")}).Data["ciphertext"].(string)
	if !strings.HasPrefix(nw, "vault:v2:") {
		t.Fatalf("after rotation: %q", nw)
	}
	if s := mustWrite(t, c, "transit/decrypt/rot", map[string]any{"ciphertext": old}); s.Data["plaintext"] != b64("v1 data") {
		t.Fatal("old ciphertext no longer decrypts after rotation")
	}
	re := mustWrite(t, c, "transit/rewrap/rot", map[string]any{"ciphertext": old}).Data["ciphertext"].(string)
	if !strings.HasPrefix(re, "vault:v2:") {
		t.Fatalf("rewrap gave %q", re)
	}
	mustWrite(t, c, "transit/keys/rot/config", map[string]any{"min_decryption_version": 2})
	if _, err := c.Logical().Write("transit/decrypt/rot", map[string]any{"ciphertext": old}); err == nil || !strings.Contains(err.Error(), "min_decryption_version") {
		t.Fatalf("v1 ciphertext under min_decryption_version 2: %v", err)
	}
	if s := mustWrite(t, c, "transit/decrypt/rot", map[string]any{"ciphertext": re}); s.Data["plaintext"] != b64("v1 data") {
		t.Fatal("rewrapped ciphertext")
	}
}

func publicKey(t *testing.T, c *vault.Client, name string) crypto.PublicKey {
	s, err := c.Logical().Read("transit/export/public-key/" + name + "/1")
	if err != nil || s == nil {
		t.Fatalf("export %s: %v", name, err)
	}
	str := s.Data["keys"].(map[string]any)["1"].(string)
	if s.Data["type"] == string(Ed25519) {
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			t.Fatal(err)
		}
		return ed25519.PublicKey(b)
	}
	block, _ := pem.Decode([]byte(str))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// stdVerify checks a signature with the standard library only.
func stdVerify(t *testing.T, pub crypto.PublicKey, msg []byte, sig, hashAlg, sigAlg, marshaling string) bool {
	_, body, _ := strings.Cut(strings.TrimPrefix(sig, "vault:v1"), ":")
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(body)
		if err != nil {
			t.Fatal(err)
		}
	}
	h, digest := crypto.SHA256, sha256.Sum256(msg)
	d := digest[:]
	if hashAlg == "sha2-512" {
		h = crypto.SHA512
		s := sha512.Sum512(msg)
		d = s[:]
	}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(p, msg, raw)
	case *ecdsa.PublicKey:
		if marshaling == "jws" {
			n := len(raw) / 2
			der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
			raw = der
		}
		return ecdsa.VerifyASN1(p, d, raw)
	case *rsa.PublicKey:
		if sigAlg == "pkcs1v15" {
			return rsa.VerifyPKCS1v15(p, h, d, raw) == nil
		}
		return rsa.VerifyPSS(p, h, d, raw, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
	}
	return false
}

func TestVaultClientSignVerify(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	msg := []byte("sign this")
	type variant struct{ hash, sigAlg, marshaling string }
	for _, typ := range []KeyType{Ed25519, ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096} {
		name := "sig-" + string(typ)
		mustWrite(t, c, "transit/keys/"+name, map[string]any{"type": string(typ)})
		pub := publicKey(t, c, name)
		variants := []variant{{"sha2-256", "", ""}}
		switch typ {
		case ECDSAP256, ECDSAP384:
			variants = append(variants, variant{"sha2-512", "", "jws"}, variant{"sha2-256", "", "asn1"})
		case RSA2048, RSA3072, RSA4096:
			variants = append(variants, variant{"sha2-256", "pkcs1v15", ""}, variant{"sha2-512", "pss", ""})
		}
		for _, v := range variants {
			in := map[string]any{"input": base64.StdEncoding.EncodeToString(msg), "hash_algorithm": v.hash}
			if v.sigAlg != "" {
				in["signature_algorithm"] = v.sigAlg
			}
			if v.marshaling != "" {
				in["marshaling_algorithm"] = v.marshaling
			}
			sig := mustWrite(t, c, "transit/sign/"+name, in).Data["signature"].(string)
			in["signature"] = sig
			if s := mustWrite(t, c, "transit/verify/"+name, in); s.Data["valid"] != true {
				t.Errorf("%s %v: server does not verify its own signature", typ, v)
			}
			if !stdVerify(t, pub, msg, sig, v.hash, v.sigAlg, v.marshaling) {
				t.Errorf("%s %v: the standard library does not verify the signature with the exported key", typ, v)
			}
			in["input"] = base64.StdEncoding.EncodeToString([]byte("other message"))
			if s := mustWrite(t, c, "transit/verify/"+name, in); s.Data["valid"] != false {
				t.Errorf("%s %v: a signature verified over another message", typ, v)
			}
		}
	}
}

func TestVaultClientHMACAndDatakeysAndRandom(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/mac", map[string]any{"type": "hmac"})
	mac := mustWrite(t, c, "transit/hmac/mac/sha2-256", map[string]any{"input": b64("data")}).Data["hmac"].(string)
	if s := mustWrite(t, c, "transit/verify/mac/sha2-256", map[string]any{"input": b64("data"), "hmac": mac}); s.Data["valid"] != true {
		t.Fatal("hmac does not verify")
	}
	if s := mustWrite(t, c, "transit/verify/mac/sha2-256", map[string]any{"input": b64("dat4"), "hmac": mac}); s.Data["valid"] != false {
		t.Fatal("hmac verifies over other data")
	}

	mustWrite(t, c, "transit/keys/dk", nil)
	s := mustWrite(t, c, "transit/datakey/plaintext/dk", map[string]any{"bits": 256})
	pt, _ := base64.StdEncoding.DecodeString(s.Data["plaintext"].(string))
	if len(pt) != 32 {
		t.Fatalf("data key of %d bytes", len(pt))
	}
	if d := mustWrite(t, c, "transit/decrypt/dk", map[string]any{"ciphertext": s.Data["ciphertext"]}); d.Data["plaintext"] != s.Data["plaintext"] {
		t.Fatal("wrapped data key does not decrypt to the plaintext one")
	}
	w := mustWrite(t, c, "transit/datakey/wrapped/dk", nil)
	if _, ok := w.Data["plaintext"]; ok {
		t.Fatal("wrapped data key returned its plaintext")
	}
	r := mustWrite(t, c, "transit/random/24", map[string]any{"format": "hex"})
	if len(r.Data["random_bytes"].(string)) != 48 {
		t.Fatalf("random: %v", r.Data)
	}
}

func TestVaultClientDerivedKeys(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/derived", map[string]any{"derived": true})
	ct := mustWrite(t, c, "transit/encrypt/derived", map[string]any{"plaintext": b64("x"), "context": b64("user-1")}).Data["ciphertext"]
	if _, err := c.Logical().Write("transit/decrypt/derived", map[string]any{"ciphertext": ct, "context": b64("user-2")}); err == nil {
		t.Fatal("decrypted under another context")
	}
	if _, err := c.Logical().Write("transit/encrypt/derived", map[string]any{"plaintext": b64("x")}); err == nil {
		t.Fatal("derived key used without context")
	}
	if s := mustWrite(t, c, "transit/decrypt/derived", map[string]any{"ciphertext": ct, "context": b64("user-1")}); s.Data["plaintext"] != b64("x") {
		t.Fatal("derived round trip")
	}
}

func TestVaultClientTokensAndPolicies(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	root := k.vaultClient(t, k.root)
	mustWrite(t, root, "transit/keys/app", nil)
	mustWrite(t, root, "transit/keys/other", nil)
	if err := root.Sys().PutPolicy("app-encrypt", `
path "transit/encrypt/app" { capabilities = ["update"] }
path "transit/keys/app"    { capabilities = ["read"] }
`); err != nil {
		t.Fatal(err)
	}
	sec, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"app-encrypt"}})
	if err != nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		t.Fatalf("token create: %v %v", sec, err)
	}
	app := k.vaultClient(t, sec.Auth.ClientToken)
	mustWrite(t, app, "transit/encrypt/app", map[string]any{"plaintext": b64("ok")})
	if _, err := app.Logical().Read("transit/keys/app"); err != nil {
		t.Fatalf("read allowed key: %v", err)
	}
	for _, path := range []string{"transit/encrypt/other", "transit/decrypt/app", "transit/keys/app/rotate"} {
		_, err := app.Logical().Write(path, map[string]any{"plaintext": b64("x"), "ciphertext": "vault:v1:AAAA"})
		var re *vault.ResponseError
		if !asResponseError(err, &re) || re.StatusCode != 403 {
			t.Errorf("%s without the capability: %v", path, err)
		}
	}
	if _, err := app.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"root"}}); err == nil {
		t.Error("a limited token minted a root token")
	}
	none := k.vaultClient(t, "")
	if _, err := none.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": b64("x")}); err == nil {
		t.Error("no token, yet access")
	}
	bogus := k.vaultClient(t, "se.not-a-token")
	if _, err := bogus.Logical().Read("transit/keys/app"); err == nil {
		t.Error("bogus token accepted")
	}
}
