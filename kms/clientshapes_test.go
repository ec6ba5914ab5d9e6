package kms

import (
	"strings"
	"testing"
)

// Clients that build a request from one object send the path's :name in
// the body too (node-vault: encryptData({name, plaintext}),
// addPolicy({name, rules})). The same name is accepted; another is
// refused, naming the field, and nothing happens.
func TestNameFieldInBody(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	for _, tc := range []struct{ path, body string }{
		{"/v1/transit/keys/n", `{"name":"n","type":"aes128-gcm96"}`},
		{"/v1/transit/encrypt/n", `{"name":"n","plaintext":"aGk="}`},
		{"/v1/transit/keys/n/rotate", `{"name":"n"}`},
		{"/v1/transit/encrypt/fresh", `{"name":"fresh","plaintext":"aGk="}`},
		{"/v1/sys/policy/p", `{"name":"p","rules":"path \"transit/*\" { capabilities = [\"read\"] }"}`},
		{"/v1/sys/policies/acl/q", `{"name":"q","policy":"path \"transit/*\" { capabilities = [\"read\"] }"}`},
	} {
		if status, out := k.raw(t, "POST", tc.path, k.root, tc.body); status/100 != 2 {
			t.Errorf("%s %s: %d %v", tc.path, tc.body, status, out)
		}
	}
	if _, out := k.raw(t, "GET", "/v1/transit/keys/n", k.root, ""); out["data"].(map[string]any)["type"] != "aes128-gcm96" {
		t.Errorf("key n: %v", out)
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/transit/keys/other", `{"name":"n"}`},
		{"/v1/transit/encrypt/n", `{"name":"m","plaintext":"aGk="}`},
		{"/v1/transit/encrypt/n", `{"name":7,"plaintext":"aGk="}`},
		{"/v1/sys/policy/p2", `{"name":"p","rules":"path \"x\" { capabilities = [\"read\"] }"}`},
		{"/v1/transit/hash", `{"name":"x","input":"aGk="}`}, // no :name in the path: unknown field
	} {
		status, out := k.raw(t, "POST", tc.path, k.root, tc.body)
		if status != 400 || !strings.Contains(errorsOf(out), `"name"`) {
			t.Errorf("%s %s: %d %v", tc.path, tc.body, status, out)
		}
	}
	for _, path := range []string{"/v1/transit/keys/other", "/v1/sys/policy/p2"} {
		if status, _ := k.raw(t, "GET", path, k.root, ""); status != 404 {
			t.Errorf("%s exists after a refused request: %d", path, status)
		}
	}
}
