package kms

import (
	"slices"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// Answers shaped as Vault's: what a client parsing Vault's JSON sees.
func TestResponseShapesAsVault(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)

	// Creating a key answers 200 with the key, in an envelope with
	// mount_type.
	status, out := k.raw(t, "POST", "/v1/transit/keys/s", k.root, `{"type":"ecdsa-p256"}`)
	d, _ := out["data"].(map[string]any)
	if status != 200 || d["name"] != "s" || d["type"] != "ecdsa-p256" || out["mount_type"] != "transit" {
		t.Fatalf("create: %d %v", status, out)
	}
	v1 := d["keys"].(map[string]any)["1"].(map[string]any)
	if v1["name"] != "P-256" || v1["public_key"] == nil || v1["creation_time"] == nil {
		t.Fatalf("ECDSA version entry: %v", v1)
	}
	for _, f := range []string{"allow_plaintext_backup", "auto_rotate_period", "imported_key", "min_available_version", "supports_derivation"} {
		if _, ok := d[f]; !ok {
			t.Errorf("read key lacks %q", f)
		}
	}
	if _, out := k.raw(t, "GET", "/v1/auth/token/lookup-self", k.root, ""); out["mount_type"] != "token" {
		t.Errorf("lookup-self mount_type: %v", out["mount_type"])
	}

	mustWrite(t, c, "transit/keys/a", nil)
	ct := mustWrite(t, c, "transit/encrypt/a", map[string]any{"plaintext": b64("x")}).Data["ciphertext"].(string)
	sig := mustWrite(t, c, "transit/sign/s", map[string]any{"input": b64("m")}).Data["signature"].(string)

	// A batch with one bad item: encrypt and decrypt answer 400, rewrap,
	// sign, verify and hmac 200; every item echoes its reference; failed
	// items carry Vault's empty fields.
	for _, tc := range []struct {
		path, body string
		status     int
		failed     map[string]any // fields the failed item must have
	}{
		{"transit/encrypt/a", `{"batch_input":[{"plaintext":"eA=="},{"plaintext":"%"}]}`, 400, map[string]any{"reference": ""}},
		{"transit/decrypt/a", `{"batch_input":[{"ciphertext":"` + ct + `","reference":"ok"},{"ciphertext":"vault:v1:AAAA","reference":"bad"}]}`, 400,
			map[string]any{"plaintext": "", "reference": "bad"}},
		{"transit/rewrap/a", `{"batch_input":[{"ciphertext":"` + ct + `"},{"ciphertext":"vault:v1:AAAA"}]}`, 200, map[string]any{"reference": ""}},
		{"transit/sign/s", `{"batch_input":[{"input":"bQ=="},{"input":"%"}]}`, 200, map[string]any{"reference": ""}},
		{"transit/verify/s", `{"batch_input":[{"input":"bQ==","signature":"` + sig + `"},{"input":"bQ==","signature":"bad"}]}`, 200,
			map[string]any{"valid": false, "reference": ""}},
		{"transit/hmac/a", `{"batch_input":[{"input":"bQ=="},{"input":"%"}]}`, 200, map[string]any{"reference": ""}},
	} {
		status, out := k.raw(t, "POST", "/v1/"+tc.path, k.root, tc.body)
		res, _ := out["data"].(map[string]any)["batch_results"].([]any)
		if status != tc.status || len(res) != 2 {
			t.Errorf("%s: %d %v; want %d", tc.path, status, out, tc.status)
			continue
		}
		good, bad := res[0].(map[string]any), res[1].(map[string]any)
		if good["error"] != nil || bad["error"] == nil {
			t.Errorf("%s: items %v", tc.path, res)
		}
		for f, want := range tc.failed {
			if got, ok := bad[f]; !ok || got != want {
				t.Errorf("%s: failed item %q = %v, want %v (item %v)", tc.path, f, got, want, bad)
			}
		}
		if _, ok := good["reference"]; !ok {
			t.Errorf("%s: no reference in %v", tc.path, good)
		}
	}

	// Status codes as Vault's for the same mistakes.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/transit/encrypt/a", 405},
		{"GET", "/v1/transit/keys/a/rotate", 405},
		{"PUT", "/v1/transit/export/public-key/s", 405},
		{"GET", "/v1/transit/nothing/here", 404},
		{"POST", "/v1/transit/decrypt/nope", 400},
		{"GET", "/v1/transit/keys/nope", 404},
		{"LIST", "/v1/transit/keys/", 200},
		{"GET", "/v1/transit/keys/?list=true", 200},
	} {
		body := ""
		if tc.method == "POST" {
			body = `{"ciphertext":"vault:v1:AAAA"}`
		}
		if status, out := k.raw(t, tc.method, tc.path, k.root, body); status != tc.status {
			t.Errorf("%s %s: %d %v; want %d", tc.method, tc.path, status, out, tc.status)
		}
	}
	// A policy written for Vault's LIST path ("transit/keys/") works.
	if err := c.Sys().PutPolicy("lister", `path "transit/keys/" { capabilities = ["list"] }`); err != nil {
		t.Fatal(err)
	}
	s, _ := c.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"lister"}})
	l, err := k.vaultClient(t, s.Auth.ClientToken).Logical().List("transit/keys")
	if err != nil || l == nil || !slices.Contains(toStrings(l.Data["keys"]), "a") {
		t.Fatalf("list with a Vault-style policy: %v %v", err, l)
	}
}
