package kms

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSeedEndpointsNeedAToken: by default the seed endpoints answer only
// a token whose policy grants read on their own policy path.
func TestSeedEndpointsNeedAToken(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "sys/policies/acl/aes-only", map[string]any{"policy": `path "seed/generate-aes-key" { capabilities = ["read"] }`})
	mustWrite(t, c, "sys/policies/acl/transit-all", map[string]any{"policy": `path "transit/*" { capabilities = ["read", "update", "create"] }`})
	mustWrite(t, c, "sys/policies/acl/seed", map[string]any{"policy": `path "seed/*" { capabilities = ["read"] }`})
	tokenFor := func(policy string) string {
		s := mustWrite(t, c, "auth/token/create", map[string]any{"policies": []string{policy}})
		return s.Auth.ClientToken
	}
	aesOnly, transit, seed := tokenFor("aes-only"), tokenFor("transit-all"), tokenFor("seed")

	for _, tc := range []struct {
		name, path, token string
		status            int
	}{
		{"aes, no token", "/generate-aes-key", "", 403},
		{"rsa, no token", "/generate-rsa-key-pair", "", 403},
		{"rsa, unknown token", "/generate-rsa-key-pair", "se.not-a-token", 403},
		{"rsa, transit token", "/generate-rsa-key-pair", transit, 403},
		{"rsa, aes-only token", "/generate-rsa-key-pair", aesOnly, 403},
		{"aes, aes-only token", "/generate-aes-key", aesOnly, 200},
		{"rsa, seed/* token", "/generate-rsa-key-pair", seed, 200},
		{"aes, root", "/generate-aes-key", k.root, 200},
	} {
		status, out := k.raw(t, "GET", tc.path, tc.token, "")
		if status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, status, out, tc.status)
		}
		if status == 403 && !strings.Contains(errorsOf(out), "seed/") {
			t.Errorf("%s: the refusal does not name the policy path: %v", tc.name, out)
		}
	}
	// Refusals and successes are audited, with the accessor when there is one.
	if !strings.Contains(k.audit.String(), `"path":"/generate-rsa-key-pair","status":403`) {
		t.Error("a refused seed request was not audited")
	}
}

// TestSeedEndpointsOpen: with SeedOpen, callers without a token are
// served, RSA generation for them is rate-limited (429), AES is not, and
// a token with the seed policy is not limited.
func TestSeedEndpointsOpen(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	k := startKMS(t, t.TempDir(), func(c *Config) { c.SeedOpen, c.SeedRSARate, c.Now = true, 2, clock })

	for i := range 2 { // a burst of 2
		if status, out := k.raw(t, "GET", "/generate-rsa-key-pair", "", ""); status != 200 {
			t.Fatalf("open rsa #%d: %d %v", i, status, out)
		}
	}
	status, out := k.raw(t, "GET", "/generate-rsa-key-pair", "", "")
	if status != 429 || !strings.Contains(errorsOf(out), "retry later") {
		t.Fatalf("rsa over the rate: %d %v, want 429 with a hint", status, out)
	}
	for range 20 {
		if status, _ := k.raw(t, "GET", "/generate-aes-key", "", ""); status != 200 {
			t.Fatalf("open aes is limited: %d", status)
		}
	}
	if status, _ := k.raw(t, "GET", "/generate-rsa-key-pair", k.root, ""); status != 200 {
		t.Fatalf("rsa with an authorized token while the anonymous rate is spent: %d", status)
	}
	mu.Lock()
	now = now.Add(500 * time.Millisecond) // one more token at 2 per second
	mu.Unlock()
	if status, _ := k.raw(t, "GET", "/generate-rsa-key-pair", "", ""); status != 200 {
		t.Fatalf("rsa after the limiter refilled: %d", status)
	}
	if status, _ := k.raw(t, "GET", "/generate-rsa-key-pair", "", ""); status != 429 {
		t.Fatalf("rsa right after: %d, want 429", status)
	}
	if status, _ := k.raw(t, "POST", "/generate-rsa-key-pair", "", ""); status != 405 {
		t.Fatalf("POST to an open seed endpoint: %d, want 405", status)
	}
}
