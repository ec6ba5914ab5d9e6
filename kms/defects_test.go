package kms

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is an injectable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAutoRotatePeriod(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	k := startKMS(t, dir, func(c *Config) { c.Now = clock.Now })
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/auto", map[string]any{"auto_rotate_period": "1h"})
	enc := func() string {
		return mustWrite(t, c, "transit/encrypt/auto", map[string]any{"plaintext": b64("x")}).Data["ciphertext"].(string)
	}
	if ct := enc(); !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatal(ct)
	}
	clock.Add(59 * time.Minute)
	if ct := enc(); !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("rotated early: %s", ct)
	}
	clock.Add(time.Minute)
	if ct := enc(); !strings.HasPrefix(ct, "vault:v2:") {
		t.Fatalf("not rotated after auto_rotate_period: %s", ct)
	}
	s, _ := c.Logical().Read("transit/keys/auto")
	if s.Data["latest_version"] != json.Number("2") || s.Data["auto_rotate_period"] != json.Number("3600") {
		t.Fatalf("read: %v", s.Data)
	}
	// Reading the key also rotates it once due; the rotation is stored.
	clock.Add(time.Hour)
	s, _ = c.Logical().Read("transit/keys/auto")
	if s.Data["latest_version"] != json.Number("3") {
		t.Fatalf("read after another period: %v", s.Data["latest_version"])
	}
	k.stop()
	k2 := startKMS(t, dir, func(c *Config) { c.Now = clock.Now })
	k2.root = k.root
	s, _ = k2.vaultClient(t, k2.root).Logical().Read("transit/keys/auto")
	if s == nil || s.Data["latest_version"] != json.Number("3") || s.Data["auto_rotate_period"] != json.Number("3600") {
		t.Fatalf("after restart: %v", s)
	}
	// Turned off with 0.
	mustWrite(t, k2.vaultClient(t, k2.root), "transit/keys/auto/config", map[string]any{"auto_rotate_period": 0})
	clock.Add(10 * time.Hour)
	s, _ = k2.vaultClient(t, k2.root).Logical().Read("transit/keys/auto")
	if s.Data["latest_version"] != json.Number("3") {
		t.Fatalf("rotated with auto_rotate_period 0: %v", s.Data["latest_version"])
	}
}

// The defects of issue 16's "accepted and silently ignored" list, each as
// a user meets it.
func TestAcceptedAndIgnoredDefects(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	for _, name := range []string{"a", "h"} {
		mustWrite(t, c, "transit/keys/"+name, nil)
		mustWrite(t, c, "transit/keys/"+name+"/rotate", nil)
		mustWrite(t, c, "transit/keys/"+name+"/config", map[string]any{"min_decryption_version": 2})
	}
	mustWrite(t, c, "transit/keys/ed", map[string]any{"type": "ed25519"})
	mustWrite(t, c, "transit/keys/p384", map[string]any{"type": "ecdsa-p384"})

	// Encrypt or HMAC with a version below min_decryption_version: the
	// result could never be decrypted or verified, so it is refused.
	for _, path := range []string{"transit/encrypt/a", "transit/hmac/h"} {
		_, err := c.Logical().Write(path, map[string]any{"plaintext": b64("x"), "key_version": 1})
		if path == "transit/hmac/h" {
			_, err = c.Logical().Write(path, map[string]any{"input": b64("x"), "key_version": 1})
		}
		if err == nil || !strings.Contains(err.Error(), "min_decryption_version") {
			t.Errorf("%s with key_version 1 < min_decryption_version 2: %v", path, err)
		}
	}
	// The read key shows only versions that can still be used.
	s, _ := c.Logical().Read("transit/keys/a")
	if keys := s.Data["keys"].(map[string]any); len(keys) != 1 || keys["2"] == nil {
		t.Errorf("keys below min_decryption_version shown: %v", keys)
	}
	// Encrypt without plaintext.
	if _, err := c.Logical().Write("transit/encrypt/a", map[string]any{}); err == nil || !strings.Contains(err.Error(), "missing plaintext") {
		t.Errorf("encrypt without plaintext: %v", err)
	}
	// An empty plaintext is still encrypted, as in Vault.
	ct := mustWrite(t, c, "transit/encrypt/a", map[string]any{"plaintext": ""}).Data["ciphertext"].(string)
	if s := mustWrite(t, c, "transit/decrypt/a", map[string]any{"ciphertext": ct}); s.Data["plaintext"] != "" {
		t.Errorf("empty plaintext: %v", s.Data)
	}
	// ed25519 with prehashed.
	if _, err := c.Logical().Write("transit/sign/ed", map[string]any{"input": b64(strings.Repeat("x", 32)), "prehashed": true}); err == nil || !strings.Contains(err.Error(), "prehashed") {
		t.Errorf("ed25519 prehashed: %v", err)
	}
	// A JWS signature verified without marshaling_algorithm is an error,
	// not valid:false (P-384: 96 bytes, whose base64url may also be
	// valid standard base64 — it must still not verify as true).
	sig := mustWrite(t, c, "transit/sign/p384", map[string]any{"input": b64("m"), "marshaling_algorithm": "jws"}).Data["signature"].(string)
	if s := mustWrite(t, c, "transit/verify/p384", map[string]any{"input": b64("m"), "signature": sig, "marshaling_algorithm": "jws"}); s.Data["valid"] != true {
		t.Fatalf("jws round trip: %v", s.Data)
	}
	mustWrite(t, c, "transit/keys/p256", map[string]any{"type": "ecdsa-p256"})
	sig = mustWrite(t, c, "transit/sign/p256", map[string]any{"input": b64("m"), "marshaling_algorithm": "jws"}).Data["signature"].(string)
	if s, err := c.Logical().Write("transit/verify/p256", map[string]any{"input": b64("m"), "signature": sig}); err == nil || !strings.Contains(err.Error(), "marshaling_algorithm=jws") {
		t.Errorf("jws signature without marshaling_algorithm: %v %v", s, err)
	}
	// And an RSA signature asked for as JWS is base64url, as in Vault.
	mustWrite(t, c, "transit/keys/r", map[string]any{"type": "rsa-2048"})
	sig = mustWrite(t, c, "transit/sign/r", map[string]any{"input": b64("m"), "marshaling_algorithm": "jws"}).Data["signature"].(string)
	if strings.ContainsAny(sig[len("vault:v1:"):], "+/=") {
		t.Errorf("RSA JWS signature is not base64url: %s", sig)
	}
	if s := mustWrite(t, c, "transit/verify/r", map[string]any{"input": b64("m"), "signature": sig, "marshaling_algorithm": "jws"}); s.Data["valid"] != true {
		t.Errorf("RSA jws verify: %v", s.Data)
	}
}
