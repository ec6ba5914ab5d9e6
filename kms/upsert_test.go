package kms

import (
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// Encrypting to a key that does not exist creates it, as Vault does (and
// as sops relies on), for a token with the create capability.
func TestEncryptCreatesMissingKey(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	root := k.vaultClient(t, k.root)
	read := func(name string) map[string]any {
		s, err := root.Logical().Read("transit/keys/" + name)
		if err != nil || s == nil {
			return nil
		}
		return s.Data
	}
	ct := mustWrite(t, root, "transit/encrypt/fresh", map[string]any{"plaintext": b64("x")}).Data["ciphertext"].(string)
	if d := read("fresh"); d == nil || d["type"] != "aes256-gcm96" || d["derived"] != false {
		t.Fatalf("created key: %v", d)
	}
	if s := mustWrite(t, root, "transit/decrypt/fresh", map[string]any{"ciphertext": ct}); s.Data["plaintext"] != b64("x") {
		t.Fatal("round trip")
	}
	mustWrite(t, root, "transit/encrypt/cc", map[string]any{"plaintext": b64("x"), "type": "chacha20-poly1305"})
	if d := read("cc"); d["type"] != "chacha20-poly1305" {
		t.Fatalf("type not honoured: %v", d)
	}
	mustWrite(t, root, "transit/encrypt/der", map[string]any{"plaintext": b64("x"), "context": b64("c"), "convergent_encryption": true})
	if d := read("der"); d["derived"] != true || d["convergent_encryption"] != true {
		t.Fatalf("derived/convergent not honoured: %v", d)
	}
	if _, err := root.Logical().Write("transit/encrypt/sig", map[string]any{"plaintext": b64("x"), "type": "ed25519"}); err == nil || read("sig") != nil {
		t.Fatalf("encrypt created a signing key: %v", err)
	}
	// An existing key's type is not changed by type on encrypt.
	mustWrite(t, root, "transit/encrypt/cc", map[string]any{"plaintext": b64("x"), "type": "aes128-gcm96"})
	if d := read("cc"); d["type"] != "chacha20-poly1305" {
		t.Fatalf("existing key changed: %v", d)
	}

	// Capabilities: create for a missing key, update for an existing one.
	if err := root.Sys().PutPolicy("upd", `path "transit/encrypt/*" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("crt", `path "transit/encrypt/*" { capabilities = ["create"] }`); err != nil {
		t.Fatal(err)
	}
	tok := func(p string) *vault.Client {
		s, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{p}})
		if err != nil {
			t.Fatal(err)
		}
		return k.vaultClient(t, s.Auth.ClientToken)
	}
	upd, crt := tok("upd"), tok("crt")
	if _, err := upd.Logical().Write("transit/encrypt/newkey", map[string]any{"plaintext": b64("x")}); err == nil || !strings.Contains(err.Error(), "403") || read("newkey") != nil {
		t.Fatalf("update-only token created a key: %v", err)
	}
	if _, err := crt.Logical().Write("transit/encrypt/newkey", map[string]any{"plaintext": b64("x")}); err != nil || read("newkey") == nil {
		t.Fatalf("create token could not create: %v", err)
	}
	if _, err := upd.Logical().Write("transit/encrypt/newkey", map[string]any{"plaintext": b64("x")}); err != nil {
		t.Fatalf("update token on an existing key: %v", err)
	}
	if _, err := crt.Logical().Write("transit/encrypt/newkey", map[string]any{"plaintext": b64("x")}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("create-only token encrypted with an existing key: %v", err)
	}
	// Without create, a missing key is still 403, not a hint that it is missing.
	if _, err := upd.Logical().Write("transit/encrypt/other", map[string]any{"plaintext": b64("x")}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("missing key, update only: %v", err)
	}
}
