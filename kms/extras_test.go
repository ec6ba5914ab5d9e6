package kms

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

func TestHashRandomConfigReadP521TrimCacheConfig(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)

	// transit/hash and sys/tools/hash: NIST's SHA-256("abc").
	const abc256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if s := mustWrite(t, c, "transit/hash", map[string]any{"input": b64("abc")}); s.Data["sum"] != abc256 {
		t.Errorf("transit/hash: %v", s.Data)
	}
	s := mustWrite(t, c, "sys/tools/hash/sha2-256", map[string]any{"input": b64("abc"), "format": "base64"})
	if b, _ := base64.StdEncoding.DecodeString(s.Data["sum"].(string)); hex.EncodeToString(b) != abc256 {
		t.Errorf("sys/tools/hash: %v", s.Data)
	}
	if s := mustWrite(t, c, "transit/hash/sha3-512", map[string]any{"input": b64("abc")}); len(s.Data["sum"].(string)) != 128 {
		t.Errorf("sha3-512: %v", s.Data)
	}
	if _, err := c.Logical().Write("transit/hash", map[string]any{"input": b64("abc"), "format": "raw"}); err == nil || !strings.Contains(err.Error(), `"format"`) {
		t.Errorf("bad format: %v", err)
	}

	// Random: transit/random/:source/:bytes and sys/tools/random.
	for _, p := range []string{"transit/random/platform/16", "sys/tools/random/16", "sys/tools/random/platform/16"} {
		s := mustWrite(t, c, p, map[string]any{"format": "hex"})
		if len(s.Data["random_bytes"].(string)) != 32 {
			t.Errorf("%s: %v", p, s.Data)
		}
	}
	if _, err := c.Logical().Write("transit/random/seal/16", nil); err == nil || !strings.Contains(err.Error(), "platform") {
		t.Errorf("seal source: %v", err)
	}

	// keys/:name/config read.
	mustWrite(t, c, "transit/keys/a", nil)
	if s, err := c.Logical().Read("transit/keys/a/config"); err != nil || s.Data["name"] != "a" || s.Data["min_decryption_version"] != json.Number("1") {
		t.Errorf("config read: %v %v", err, s)
	}

	// ecdsa-p521.
	mustWrite(t, c, "transit/keys/p521", map[string]any{"type": "ecdsa-p521"})
	for _, m := range []string{"asn1", "jws"} {
		sig := mustWrite(t, c, "transit/sign/p521", map[string]any{"input": b64("m"), "marshaling_algorithm": m}).Data["signature"].(string)
		if s := mustWrite(t, c, "transit/verify/p521", map[string]any{"input": b64("m"), "signature": sig, "marshaling_algorithm": m}); s.Data["valid"] != true {
			t.Errorf("p521 %s: %v", m, s.Data)
		}
	}
	if s, _ := c.Logical().Read("transit/keys/p521"); s.Data["keys"].(map[string]any)["1"].(map[string]any)["name"] != "P-521" {
		t.Errorf("p521 read: %v", s.Data)
	}

	// trim.
	old := mustWrite(t, c, "transit/encrypt/a", map[string]any{"plaintext": b64("v1")}).Data["ciphertext"].(string)
	mustWrite(t, c, "transit/keys/a/rotate", nil)
	mustWrite(t, c, "transit/keys/a/rotate", nil)
	if _, err := c.Logical().Write("transit/keys/a/trim", map[string]any{"min_available_version": 2}); err == nil || !strings.Contains(err.Error(), "min_decryption_version") {
		t.Fatalf("trim above min_decryption_version: %v", err)
	}
	mustWrite(t, c, "transit/keys/a/config", map[string]any{"min_decryption_version": 2})
	s = mustWrite(t, c, "transit/keys/a/trim", map[string]any{"min_available_version": 2})
	if s.Data["min_available_version"] != json.Number("2") {
		t.Fatalf("trim: %v", s.Data)
	}
	key, _ := k.svc.key("a")
	if key.Versions[1] != nil || key.Versions[2] == nil {
		t.Fatal("version 1's key material is still held")
	}
	if _, err := c.Logical().Write("transit/keys/a/config", map[string]any{"min_decryption_version": 1}); err == nil || !strings.Contains(err.Error(), "trimmed") {
		t.Fatalf("min_decryption_version below min_available_version: %v", err)
	}
	if _, err := c.Logical().Write("transit/decrypt/a", map[string]any{"ciphertext": old}); err == nil {
		t.Fatal("decrypted with a trimmed version")
	}

	// cache-config: kmsd has no cache to size.
	if s, err := c.Logical().Read("transit/cache-config"); err != nil || s.Data["size"] != json.Number("0") {
		t.Errorf("cache-config read: %v %v", err, s)
	}
	mustWrite(t, c, "transit/cache-config", map[string]any{"size": 0})
	if _, err := c.Logical().Write("transit/cache-config", map[string]any{"size": 500}); err == nil || !strings.Contains(err.Error(), `"size"`) {
		t.Errorf("cache-config size 500: %v", err)
	}
}
