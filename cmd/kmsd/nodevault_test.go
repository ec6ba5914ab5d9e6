package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNodeVault: node-vault, the npm Vault client, pinned in
// testdata/node-vault/package-lock.json, runs testdata/node-vault/client.js
// against kmsd: health and seal status, create, read and list keys,
// encrypt, decrypt, create-on-encrypt, rotate and rewrap, token
// lookup-self, a policy and a child token with num_uses, and the errors it
// reports for a denied request and a tampered ciphertext.
func TestNodeVault(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node not found on PATH (apt-get install -y nodejs npm)")
	}
	if _, err := os.Stat("../../testdata/node-vault/node_modules/node-vault/package.json"); err != nil {
		missing(t, "node-vault is not installed: npm ci --prefix testdata/node-vault")
	}
	k := startForClients(t)
	out, err := runClient(t, k.env(k.root, "NODE_OPTIONS="), "", node, "../../testdata/node-vault/client.js", k.ca)
	if err != nil {
		t.Fatalf("node client.js: %v\n%s", err, out)
	}
	var r struct {
		Error, Plaintext, Created, Ciphertext, Rewrapped, RewrappedPlaintext string
		ErrorStatus                                                          int
		Health                                                               struct{ Initialized, Sealed bool }
		Status                                                               struct {
			Sealed bool
			Type   string
		}
		Key struct {
			Name          string
			Type          string
			LatestVersion int `json:"latest_version"`
		}
		List []string
		Self struct {
			Policies []string
			Accessor string
		}
		Child struct {
			ClientToken   string   `json:"client_token"`
			Policies      []string `json:"policies"`
			LeaseDuration int      `json:"lease_duration"`
			NumUses       int      `json:"num_uses"`
		}
		ChildLookup struct {
			Policies []string
			NumUses  int `json:"num_uses"`
			TTL      int `json:"ttl"`
		}
		ChildDecrypt, AfterLastUse, Tampered struct {
			Status  int
			Message string
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("client.js output: %v\n%s", err, out)
	}
	if r.Error != "" {
		t.Fatalf("node-vault failed: %s (HTTP %d)\n%s", r.Error, r.ErrorStatus, out)
	}
	if !r.Health.Initialized || r.Health.Sealed || r.Status.Sealed || r.Status.Type != "enclave" {
		t.Errorf("health %+v, status %+v", r.Health, r.Status)
	}
	if r.Key.Name != "node" || r.Key.Type != "aes256-gcm96" || r.Key.LatestVersion != 1 || strings.Join(r.List, ",") != "node" {
		t.Errorf("key %+v, list %v", r.Key, r.List)
	}
	if r.Plaintext != "from node-vault" || !strings.HasPrefix(r.Ciphertext, "vault:v1:") || r.Created != "a new key" {
		t.Errorf("encrypt/decrypt: %q %q, create-on-encrypt %q", r.Ciphertext, r.Plaintext, r.Created)
	}
	if !strings.HasPrefix(r.Rewrapped, "vault:v2:") || r.RewrappedPlaintext != "from node-vault" {
		t.Errorf("rewrap: %q %q", r.Rewrapped, r.RewrappedPlaintext)
	}
	if strings.Join(r.Self.Policies, ",") != "root" || r.Self.Accessor == "" {
		t.Errorf("lookup-self: %+v", r.Self)
	}
	if r.Child.ClientToken == "" || strings.Join(r.Child.Policies, ",") != "default,node-app" || r.Child.LeaseDuration != 3600 || r.Child.NumUses != 3 {
		t.Errorf("token create: %+v", r.Child)
	}
	// lookup-self spent one of the three uses.
	if strings.Join(r.ChildLookup.Policies, ",") != "default,node-app" || r.ChildLookup.NumUses != 2 || r.ChildLookup.TTL < 3500 || r.ChildLookup.TTL > 3600 {
		t.Errorf("child lookup-self: %+v", r.ChildLookup)
	}
	if r.ChildDecrypt.Status != 403 || !strings.Contains(r.ChildDecrypt.Message, "permission denied") {
		t.Errorf("decrypt by a token without the policy: %+v", r.ChildDecrypt)
	}
	if r.AfterLastUse.Status != 403 {
		t.Errorf("token after its last use: %+v", r.AfterLastUse)
	}
	if r.Tampered.Status != 400 || !strings.Contains(r.Tampered.Message, "message authentication failed") {
		t.Errorf("tampered ciphertext: %+v", r.Tampered)
	}
}
