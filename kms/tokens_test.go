package kms

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

func num(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// createToken makes a token with Vault's client.
func createToken(t *testing.T, c *vault.Client, req *vault.TokenCreateRequest) *vault.Secret {
	t.Helper()
	s, err := c.Auth().Token().Create(req)
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	return s
}

// works reports whether the token can still be used (lookup-self).
func works(t *testing.T, k *testKMS, tok string) bool {
	_, err := k.vaultClient(t, tok).Auth().Token().LookupSelf()
	return err == nil
}

func TestTokenTTLAndExpiry(t *testing.T) {
	clock := newClock()
	k := startKMS(t, t.TempDir(), func(c *Config) { c.Now = clock.Now })
	root := k.vaultClient(t, k.root)
	s := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", DisplayName: "app", Metadata: map[string]string{"team": "a"}})
	a := s.Auth
	if a.LeaseDuration != 3600 || !a.Renewable || a.Accessor == "" || a.Orphan ||
		len(a.Policies) != 1 || a.Policies[0] != "default" || a.Metadata["team"] != "a" {
		t.Fatalf("auth block: %+v", a)
	}
	l, err := k.vaultClient(t, a.ClientToken).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if l.Data["id"] != a.ClientToken || num(l.Data["ttl"]) != 3600 || num(l.Data["creation_ttl"]) != 3600 || l.Data["accessor"] != a.Accessor ||
		l.Data["display_name"] != "token-app" || l.Data["type"] != "service" || l.Data["expire_time"] == nil {
		t.Fatalf("lookup-self: %v", l.Data)
	}
	clock.Add(59 * time.Minute)
	if !works(t, k, a.ClientToken) {
		t.Fatal("expired early")
	}
	clock.Add(time.Minute)
	if works(t, k, a.ClientToken) {
		t.Fatal("a token with ttl=1h still works after an hour")
	}
	// A token without a ttl gets Vault's default (768h); root's children
	// that are root do not expire.
	s = createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	if s.Auth.LeaseDuration != 768*3600 {
		t.Fatalf("default ttl: %d", s.Auth.LeaseDuration)
	}
	// ttl over the maximum is refused, naming it.
	if _, err := root.Auth().Token().Create(&vault.TokenCreateRequest{TTL: "10000h"}); err == nil || !strings.Contains(err.Error(), `"ttl"`) {
		t.Fatalf("ttl over the max: %v", err)
	}
	// So are fields kmsd does not implement.
	for _, req := range []*vault.TokenCreateRequest{{ID: "chosen"}, {Type: "batch"}, {EntityAlias: "x"}, {Lease: "1h"}} {
		if _, err := root.Auth().Token().Create(req); err == nil || !strings.Contains(err.Error(), "Code: 400") {
			t.Errorf("%+v: %v", req, err)
		}
	}
}

func TestTokenNumUses(t *testing.T) {
	dir := t.TempDir()
	k := startKMS(t, dir, nil)
	root := k.vaultClient(t, k.root)
	mustWrite(t, root, "transit/keys/k", nil)
	if err := root.Sys().PutPolicy("enc", `path "transit/encrypt/k" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	once := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"enc"}, NumUses: 1}).Auth.ClientToken
	c := k.vaultClient(t, once)
	if _, err := c.Logical().Write("transit/encrypt/k", map[string]any{"plaintext": b64("x")}); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := c.Logical().Write("transit/encrypt/k", map[string]any{"plaintext": b64("x")}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a num_uses=1 token worked twice: %v", err)
	}
	three := createToken(t, root, &vault.TokenCreateRequest{NumUses: 3})
	c = k.vaultClient(t, three.Auth.ClientToken)
	l, _ := c.Auth().Token().LookupSelf() // use 1 of 3
	if num(l.Data["num_uses"]) != 2 {
		t.Fatalf("num_uses after one use: %v", l.Data["num_uses"])
	}
	// Uses survive a restart.
	k.stop()
	k2 := startKMS(t, dir, nil)
	k2.root = k.root
	c = k2.vaultClient(t, three.Auth.ClientToken)
	if _, err := c.Auth().Token().LookupSelf(); err != nil { // use 2
		t.Fatal(err)
	}
	if _, err := c.Auth().Token().LookupSelf(); err != nil { // use 3, the last
		t.Fatal(err)
	}
	if _, err := c.Auth().Token().LookupSelf(); err == nil {
		t.Fatal("a num_uses=3 token worked a fourth time")
	}
	if !strings.Contains(k2.audit.String(), `"path":"auth/token/revoked"`) {
		t.Fatal("exhausting a token is not in the audit log")
	}
}

func TestTokenRenew(t *testing.T) {
	clock := newClock()
	k := startKMS(t, t.TempDir(), func(c *Config) { c.Now = clock.Now })
	root := k.vaultClient(t, k.root)
	tok := createToken(t, root, &vault.TokenCreateRequest{TTL: "1h", ExplicitMaxTTL: "3h"}).Auth.ClientToken
	c := k.vaultClient(t, tok)
	clock.Add(50 * time.Minute)
	s, err := c.Auth().Token().RenewSelf(7200)
	if err != nil || s.Auth.LeaseDuration != 7200 {
		t.Fatalf("renew-self: %v %+v", err, s)
	}
	clock.Add(100 * time.Minute) // 2h30 after creation: would have expired without the renewal
	if !works(t, k, tok) {
		t.Fatal("renewed token expired")
	}
	s, err = c.Auth().Token().RenewSelf(7200) // capped at creation + explicit_max_ttl
	if err != nil || s.Auth.LeaseDuration != 30*60 {
		t.Fatalf("renew past explicit_max_ttl: %v %+v", err, s.Auth)
	}
	l, _ := c.Auth().Token().LookupSelf()
	if l.Data["last_renewal"] == nil || num(l.Data["explicit_max_ttl"]) != 3*3600 {
		t.Fatalf("lookup after renew: %v", l.Data)
	}
	clock.Add(30 * time.Minute)
	if works(t, k, tok) {
		t.Fatal("token outlived explicit_max_ttl")
	}
	// Not renewable.
	f := false
	fixed := createToken(t, root, &vault.TokenCreateRequest{TTL: "1h", Renewable: &f})
	if fixed.Auth.Renewable {
		t.Fatal("renewable=false token says renewable")
	}
	if _, err := k.vaultClient(t, fixed.Auth.ClientToken).Auth().Token().RenewSelf(0); err == nil {
		t.Fatal("renewed a renewable=false token")
	}
	// renew by token and by accessor.
	other := createToken(t, root, &vault.TokenCreateRequest{TTL: "1h"}).Auth
	if s, err := root.Auth().Token().Renew(other.ClientToken, 1800); err != nil || s.Auth.LeaseDuration != 1800 {
		t.Fatalf("renew: %v %v", err, s)
	}
	if s, err := root.Logical().Write("auth/token/renew-accessor", map[string]any{"accessor": other.Accessor, "increment": "45m"}); err != nil || s.Auth.LeaseDuration != 2700 {
		t.Fatalf("renew-accessor: %v %v", err, s)
	}
	// A periodic token renews to its period, and can live past the
	// maximum TTL by renewing.
	per := createToken(t, root, &vault.TokenCreateRequest{Period: "1h"}).Auth
	if per.LeaseDuration != 3600 {
		t.Fatalf("periodic: %+v", per)
	}
	pc := k.vaultClient(t, per.ClientToken)
	for range 800 { // 800 h > 768 h
		clock.Add(59 * time.Minute)
		if s, err := pc.Auth().Token().RenewSelf(99999); err != nil || s.Auth.LeaseDuration != 3600 {
			t.Fatalf("periodic renew: %v %v", err, s)
		}
	}
	l, _ = pc.Auth().Token().LookupSelf()
	if num(l.Data["period"]) != 3600 {
		t.Fatalf("lookup of periodic token: %v", l.Data)
	}
}

func TestTokenRevocation(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	k := startKMS(t, dir, func(c *Config) { c.Now = clock.Now })
	root := k.vaultClient(t, k.root)
	if err := root.Sys().PutPolicy("mint", `path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	parent := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"mint"}, TTL: "2h"}).Auth
	pc := k.vaultClient(t, parent.ClientToken)
	child := createToken(t, pc, &vault.TokenCreateRequest{TTL: "10h"}).Auth
	grandchild := createToken(t, k.vaultClient(t, child.ClientToken), &vault.TokenCreateRequest{})
	_ = grandchild
	if child.Orphan || child.Policies[0] != "default" {
		t.Fatalf("child: %+v", child)
	}
	// A child does not outlive its parent's expiry.
	clock.Add(2 * time.Hour)
	if works(t, k, child.ClientToken) {
		t.Fatal("child works after its parent expired")
	}
	clock.Add(-2 * time.Hour)
	if !works(t, k, child.ClientToken) {
		t.Fatal("child should work again before its parent expires (the clock went back)")
	}
	// Revoking the parent revokes the tree.
	if err := root.Auth().Token().RevokeTree(parent.ClientToken); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{parent.ClientToken, child.ClientToken} {
		if works(t, k, tok) {
			t.Fatal("token works after its tree was revoked")
		}
	}
	// revoke-orphan keeps the children, now orphans.
	p2 := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"mint"}}).Auth
	c2 := createToken(t, k.vaultClient(t, p2.ClientToken), &vault.TokenCreateRequest{}).Auth
	if err := root.Auth().Token().RevokeOrphan(p2.ClientToken); err != nil {
		t.Fatal(err)
	}
	if works(t, k, p2.ClientToken) || !works(t, k, c2.ClientToken) {
		t.Fatal("revoke-orphan")
	}
	if l, _ := root.Auth().Token().Lookup(c2.ClientToken); l == nil || l.Data["orphan"] != true {
		t.Fatalf("orphaned child: %v", l)
	}
	// revoke-self, revoke-accessor, lookup-accessor, accessors.
	self := createToken(t, root, &vault.TokenCreateRequest{}).Auth
	if err := k.vaultClient(t, self.ClientToken).Auth().Token().RevokeSelf(""); err != nil {
		t.Fatal(err)
	}
	byAcc := createToken(t, root, &vault.TokenCreateRequest{}).Auth
	l, err := root.Auth().Token().LookupAccessor(byAcc.Accessor)
	if err != nil || l.Data["id"] != "" || l.Data["accessor"] != byAcc.Accessor {
		t.Fatalf("lookup-accessor must not reveal the token: %v %v", err, l)
	}
	list, err := root.Logical().List("auth/token/accessors")
	if err != nil || !strings.Contains(strings.Join(toStrings(list.Data["keys"]), ","), byAcc.Accessor) {
		t.Fatalf("accessors: %v %v", err, list)
	}
	if err := root.Auth().Token().RevokeAccessor(byAcc.Accessor); err != nil {
		t.Fatal(err)
	}
	if works(t, k, self.ClientToken) || works(t, k, byAcc.ClientToken) {
		t.Fatal("revoke-self / revoke-accessor")
	}
	// Revocations are durable and audited.
	k.stop()
	k2 := startKMS(t, dir, func(c *Config) { c.Now = clock.Now })
	for _, tok := range []string{parent.ClientToken, child.ClientToken, self.ClientToken, byAcc.ClientToken} {
		if works(t, k2, tok) {
			t.Fatal("a revoked token works after a restart")
		}
	}
	if !works(t, k2, c2.ClientToken) {
		t.Fatal("the orphaned child was lost at restart")
	}
	for _, acc := range []string{parent.Accessor, child.Accessor, byAcc.Accessor, self.Accessor} {
		if !strings.Contains(k.audit.String(), `"accessor":"`+acc+`","method":"INTERNAL","path":"auth/token/revoked"`) {
			t.Errorf("revocation of %s not audited", acc)
		}
	}
	// Without no_parent a non-root token cannot make orphans, except
	// through create-orphan when its policy allows that path.
	mint := createToken(t, k2.vaultClient(t, k.root), &vault.TokenCreateRequest{Policies: []string{"mint"}}).Auth.ClientToken
	if _, err := k2.vaultClient(t, mint).Auth().Token().Create(&vault.TokenCreateRequest{NoParent: true}); err == nil {
		t.Fatal("non-root token made an orphan with no_parent")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
