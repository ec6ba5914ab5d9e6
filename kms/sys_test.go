package kms

import (
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// What vault status, vault secrets list, vault policy list/read/write/
// delete and vault token capabilities call, through Vault's client.
func TestSysEndpointsForVaultCLI(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	root := k.vaultClient(t, k.root)

	// vault status: seal-status and leader, without a token.
	anon := k.vaultClient(t, "")
	st, err := anon.Sys().SealStatus()
	if err != nil || st.Sealed || !st.Initialized || st.Version == "" {
		t.Fatalf("seal-status: %v %+v", err, st)
	}
	if l, err := anon.Sys().Leader(); err != nil || l.HAEnabled {
		t.Fatalf("leader: %v %+v", err, l)
	}

	// vault secrets list.
	mounts, err := root.Sys().ListMounts()
	if err != nil || mounts["transit/"] == nil || mounts["transit/"].Type != "transit" || mounts["sys/"] == nil {
		t.Fatalf("mounts: %v %v", err, mounts)
	}
	if err := root.Sys().Mount("kv/", &vault.MountInput{Type: "kv"}); err == nil {
		t.Fatal("mounting something else succeeded")
	}

	// vault policy write/list/read/delete.
	if err := root.Sys().PutPolicy("app", `path "transit/encrypt/app" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	names, err := root.Sys().ListPolicies()
	if err != nil || !slices.Equal(names, []string{"app", "default", "root"}) {
		t.Fatalf("policy list: %v %v", err, names)
	}
	if p, err := root.Sys().GetPolicy("default"); err != nil || !strings.Contains(p, "auth/token/lookup-self") {
		t.Fatalf("default policy: %v %q", err, p)
	}
	if p, err := root.Sys().GetPolicy("root"); err != nil || p != "" {
		t.Fatalf("root policy: %v %q", err, p)
	}
	if err := root.Sys().DeletePolicy("default"); err == nil {
		t.Fatal("deleted the default policy")
	}
	if err := root.Sys().PutPolicy("root", `path "*" { capabilities = ["read"] }`); err == nil {
		t.Fatal("changed the root policy")
	}
	// The legacy endpoints.
	mustWrite(t, root, "sys/policy/legacy", map[string]any{"rules": `path "transit/keys/*" { capabilities = ["read"] }`})
	s, err := root.Logical().Read("sys/policy")
	if err != nil || !strings.Contains(strings.Join(toStrings(s.Data["policies"]), ","), "legacy") {
		t.Fatalf("legacy list: %v %v", err, s)
	}
	if s, err := root.Logical().Read("sys/policy/legacy"); err != nil || !strings.Contains(s.Data["rules"].(string), "transit/keys") {
		t.Fatalf("legacy read: %v %v", err, s)
	}
	if _, err := root.Logical().Delete("sys/policy/legacy"); err != nil {
		t.Fatal(err)
	}
	if p, _ := root.Sys().GetPolicy("legacy"); p != "" {
		t.Fatal("legacy policy not deleted")
	}

	// vault token capabilities, and the mount lookup the CLI does, for
	// an ordinary token.
	app, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	ac := k.vaultClient(t, app.Auth.ClientToken)
	caps, err := ac.Sys().CapabilitiesSelf("transit/encrypt/app")
	if err != nil || !slices.Equal(caps, []string{"update"}) {
		t.Fatalf("capabilities-self: %v %v", err, caps)
	}
	if caps, _ := ac.Sys().CapabilitiesSelf("transit/decrypt/app"); !slices.Equal(caps, []string{"deny"}) {
		t.Fatalf("capabilities-self elsewhere: %v", caps)
	}
	if caps, _ := root.Sys().CapabilitiesSelf("anything"); !slices.Equal(caps, []string{"root"}) {
		t.Fatalf("root capabilities: %v", caps)
	}
	if caps, err := root.Sys().Capabilities(app.Auth.ClientToken, "transit/encrypt/app"); err != nil || !slices.Equal(caps, []string{"update"}) {
		t.Fatalf("capabilities of another token: %v %v", err, caps)
	}
	if _, err := ac.Sys().Capabilities(k.root, "transit/encrypt/app"); err == nil {
		t.Fatal("an app token asked sys/capabilities about another token")
	}
	m, err := ac.Logical().Read("sys/internal/ui/mounts/transit/encrypt/app")
	if err != nil || m.Data["path"] != "transit/" || m.Data["type"] != "transit" {
		t.Fatalf("ui mounts: %v %v", err, m)
	}
	if _, err := ac.Sys().ListMounts(); err == nil {
		t.Fatal("a token without a policy for sys/mounts listed the mounts")
	}
}
