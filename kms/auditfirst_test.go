package kms

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// gateWriter fails every write once fail is set, or only writes whose
// line contains failOn.
type gateWriter struct {
	mu     sync.Mutex
	fail   bool
	failOn string
	lines  []string
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail || g.failOn != "" && strings.Contains(string(p), g.failOn) {
		return 0, errors.New("no space left on device")
	}
	g.lines = append(g.lines, string(p))
	return len(p), nil
}

func (g *gateWriter) set(fail bool, failOn string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail, g.failOn = fail, failOn
}

// TestUnauditedRequestIsNotPerformed: when the audit log cannot be
// written, no state-changing request has any effect, seen after a
// restart on the same store (the issue's /dev/full reproduction).
func TestUnauditedRequestIsNotPerformed(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
		unchanged                func(t *testing.T, k *testKMS)
	}{
		{"create key", "POST", "/v1/transit/keys/new", `{}`, func(t *testing.T, k *testKMS) {
			if _, err := k.svc.key("new"); err == nil {
				t.Error("the key exists after a request that could not be audited")
			}
		}},
		{"rotate key", "POST", "/v1/transit/keys/old/rotate", ``, func(t *testing.T, k *testKMS) {
			if key, _ := k.svc.key("old"); key == nil || key.LatestVersion != 1 {
				t.Error("the key was rotated by a request that could not be audited")
			}
		}},
		{"configure key", "POST", "/v1/transit/keys/old/config", `{"deletion_allowed":true}`, func(t *testing.T, k *testKMS) {
			if key, _ := k.svc.key("old"); key == nil || key.DeletionAllowed {
				t.Error("the key was reconfigured by a request that could not be audited")
			}
		}},
		{"write policy", "PUT", "/v1/sys/policies/acl/p", `{"policy":"path \"transit/*\" { capabilities = [\"read\"] }"}`, func(t *testing.T, k *testKMS) {
			k.svc.mu.RLock()
			defer k.svc.mu.RUnlock()
			if k.svc.policies["p"] != nil {
				t.Error("the policy exists after a request that could not be audited")
			}
		}},
		{"create token", "POST", "/v1/auth/token/create", `{"policies":["root"]}`, func(t *testing.T, k *testKMS) {
			k.svc.mu.RLock()
			defer k.svc.mu.RUnlock()
			if len(k.svc.tokens) != 1 {
				t.Errorf("%d tokens after a token creation that could not be audited, want only the root token", len(k.svc.tokens))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			gw := &gateWriter{}
			k := startKMS(t, dir, func(c *Config) { c.Audit = gw })
			root := k.root
			mustWrite(t, k.vaultClient(t, root), "transit/keys/old", nil)
			gw.set(true, "")
			if status, out := k.raw(t, tc.method, tc.path, root, tc.body); status != 500 {
				t.Fatalf("%s with a broken audit log: %d %v, want 500", tc.name, status, out)
			}
			tc.unchanged(t, k)
			if status, _ := k.raw(t, "GET", "/v1/transit/keys/old", root, ""); status != 503 {
				t.Errorf("a request after the audit log broke: %d, want 503", status)
			}
			k.stop()
			k = startKMS(t, dir, nil)
			tc.unchanged(t, k)
		})
	}
}

// TestAuditRequestEntryPrecedesEffect: when only the response entry
// fails, the request entry for the change is already in the log; a
// request entry is never missing for an effect.
func TestAuditRequestEntryPrecedesEffect(t *testing.T) {
	dir := t.TempDir()
	gw := &gateWriter{}
	k := startKMS(t, dir, func(c *Config) { c.Audit = gw })
	gw.set(false, `"type":"response"`)
	if status, _ := k.raw(t, "POST", "/v1/transit/keys/k1", k.root, `{}`); status != 500 {
		t.Fatalf("status %d, want 500 when the response entry cannot be written", status)
	}
	gw.mu.Lock()
	var sawRequest bool
	for _, l := range gw.lines {
		sawRequest = sawRequest || strings.Contains(l, `"type":"request"`) && strings.Contains(l, `/v1/transit/keys/k1`)
	}
	gw.mu.Unlock()
	if !sawRequest {
		t.Fatal("no request entry in the log for a performed change")
	}
}
