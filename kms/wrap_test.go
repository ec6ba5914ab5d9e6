package kms

import (
	"net/http"
	"strings"
	"testing"
)

// A request asking for response wrapping must not be answered with the
// unwrapped secret: Vault would return a wrapping token instead, and a
// caller relying on that hands the answer on unopened.
func TestWrapTTLRefused(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/k1", nil)

	c.SetWrappingLookupFunc(func(op, path string) string { return "60s" })
	s, err := c.Logical().Write("transit/datakey/plaintext/k1", nil)
	if err == nil {
		t.Fatalf("datakey with -wrap-ttl answered: %v", s.Data)
	}
	if !strings.Contains(err.Error(), "X-Vault-Wrap-TTL") || !strings.Contains(err.Error(), "Code: 400") {
		t.Fatalf("error does not name the header or is not 400: %v", err)
	}
	c.SetWrappingLookupFunc(nil)

	if _, err := c.Logical().Unwrap("whatever"); err == nil || !strings.Contains(err.Error(), "wrapping is not supported") {
		t.Fatalf("sys/wrapping/unwrap: %v", err)
	}
	// Without a token, wrapping changes nothing about the 403.
	req, _ := http.NewRequest("POST", k.srv.URL+"/v1/transit/datakey/plaintext/k1", nil)
	req.Header.Set("X-Vault-Wrap-TTL", "60")
	resp, err := k.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}
