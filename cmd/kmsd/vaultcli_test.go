package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/store/snapshot"
)

// vaultVersion is the vault CLI that .ci/build-vault.sh builds from its Go
// module (README: Tests).
const vaultVersion = "v1.21.0"

// TestVaultCLI drives kmsd with HashiCorp's own vault command, as a Vault
// user would. `go install github.com/hashicorp/vault@…` refuses the module
// (its go.mod replaces its submodules with directories the module zip
// lacks), so .ci/build-vault.sh builds it with those replaces pointed at
// the submodules from the module proxy, and .ci/run passes it as
// VAULT_BIN.
func TestVaultCLI(t *testing.T) {
	bin := clientTool(t, "vault", "VAULT_BIN", "VAULT_BIN=$(.ci/build-vault.sh "+vaultVersion+") builds it from its Go module")
	k := startForClients(t)
	vaultCmd := func(token, stdin string, args ...string) (string, error) {
		return runClient(t, k.env(token), stdin, bin, args...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := vaultCmd(k.root, "", args...)
		if err != nil {
			t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	if out := must("status", "-format=json"); !strings.Contains(out, `"sealed": false`) {
		t.Errorf("vault status: %s", out)
	}
	if out := must("secrets", "list", "-format=json"); !strings.Contains(out, `"transit/"`) {
		t.Errorf("vault secrets list: %s", out)
	}
	if out, err := vaultCmd(k.root, `path "transit/encrypt/cli" { capabilities = ["update"] }`, "policy", "write", "app", "-"); err != nil {
		t.Fatalf("vault policy write: %v %s", err, out)
	}
	if out := must("policy", "list"); !strings.Contains(out, "app") || !strings.Contains(out, "default") {
		t.Errorf("vault policy list: %s", out)
	}
	if out := must("policy", "read", "app"); !strings.Contains(out, `path "transit/encrypt/cli"`) {
		t.Errorf("vault policy read: %s", out)
	}

	must("write", "transit/keys/cli", "type=aes256-gcm96")
	if out := must("read", "-format=json", "transit/keys/cli"); !strings.Contains(out, `"type": "aes256-gcm96"`) {
		t.Errorf("vault read transit/keys/cli: %s", out)
	}
	if out := must("list", "transit/keys"); !strings.Contains(out, "cli") {
		t.Errorf("vault list transit/keys: %s", out)
	}
	ct := must("write", "-field=ciphertext", "transit/encrypt/cli", "plaintext="+b64("from the CLI"))
	if pt := must("write", "-field=plaintext", "transit/decrypt/cli", "ciphertext="+ct); pt != b64("from the CLI") {
		t.Errorf("decrypt: %q", pt)
	}
	// Encrypt to a key that does not exist creates it.
	ct2 := must("write", "-field=ciphertext", "transit/encrypt/cli-new", "plaintext="+b64("new key"))
	if pt := must("write", "-field=plaintext", "transit/decrypt/cli-new", "ciphertext="+ct2); pt != b64("new key") {
		t.Errorf("decrypt with the created key: %q", pt)
	}
	must("write", "-f", "transit/keys/cli/rotate")
	if out := must("write", "-field=ciphertext", "transit/rewrap/cli", "ciphertext="+ct); !strings.HasPrefix(out, "vault:v2:") {
		t.Errorf("rewrap: %s", out)
	}
	must("write", "transit/keys/sig", "type=ecdsa-p256")
	sig := must("write", "-field=signature", "transit/sign/sig/sha2-256", "input="+b64("signed"))
	if out := must("write", "-field=valid", "transit/verify/sig/sha2-256", "input="+b64("signed"), "signature="+sig); out != "true" {
		t.Errorf("verify: %s", out)
	}
	if out := must("write", "-field=sum", "sys/tools/hash", "input="+b64("abc")); out != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sys/tools/hash: %s", out)
	}

	// Tokens: create, look up, use, revoke.
	var created struct {
		Auth struct {
			ClientToken   string `json:"client_token"`
			Accessor      string `json:"accessor"`
			LeaseDuration int    `json:"lease_duration"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(must("token", "create", "-policy=app", "-ttl=1h", "-format=json")), &created); err != nil || created.Auth.LeaseDuration != 3600 {
		t.Fatalf("vault token create: %v %+v", err, created)
	}
	app := created.Auth.ClientToken
	if out := must("token", "lookup", app); !strings.Contains(out, "app") {
		t.Errorf("vault token lookup: %s", out)
	}
	if out := must("token", "lookup", "-accessor", created.Auth.Accessor); !strings.Contains(out, "app") {
		t.Errorf("vault token lookup -accessor: %s", out)
	}
	if out, err := vaultCmd(app, "", "token", "lookup"); err != nil || !strings.Contains(out, "app") {
		t.Errorf("vault token lookup (self): %v %s", err, out)
	}
	if out, err := vaultCmd(app, "", "token", "renew"); err != nil {
		t.Errorf("vault token renew (self): %v %s", err, out)
	}
	if out, err := vaultCmd(app, "", "token", "capabilities", "transit/encrypt/cli"); err != nil || !strings.Contains(out, "update") {
		t.Errorf("vault token capabilities: %v %s", err, out)
	}
	if out, err := vaultCmd(app, "", "write", "-field=ciphertext", "transit/encrypt/cli", "plaintext="+b64("app")); err != nil || !strings.HasPrefix(out, "vault:v2:") {
		t.Errorf("encrypt with the app token: %v %s", err, out)
	}
	if out, err := vaultCmd(app, "", "write", "transit/decrypt/cli", "ciphertext="+ct); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("decrypt with the app token: %v %s", err, out)
	}
	must("token", "revoke", app)
	if out, err := vaultCmd(app, "", "token", "lookup"); err == nil {
		t.Errorf("a revoked token still works: %s", out)
	}
	// vault login stores the token in ~/.vault-token, which later
	// commands use.
	if out, err := vaultCmd("", k.root, "login", "-no-print", "-"); err != nil {
		t.Fatalf("vault login: %v %s", err, out)
	}
	if out, err := vaultCmd("", "", "token", "lookup", "-format=json"); err != nil || !strings.Contains(out, `"root"`) {
		t.Errorf("vault token lookup after login: %v %s", err, out)
	}

	// Backups with Vault's own command: the snapshot kmsd streams is
	// complete (the CLI checks its last file) and unpacks; a restore into
	// the running kmsd is refused with what to do instead.
	snapFile := filepath.Join(t.TempDir(), "kms.snap")
	must("operator", "raft", "snapshot", "save", snapFile)
	sf, err := os.Open(snapFile)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if _, err := snapshot.Check(sf, snapshot.Limits{}); err != nil {
		t.Errorf("the snapshot vault saved: %v", err)
	}
	if out, err := vaultCmd(k.root, "", "operator", "raft", "snapshot", "restore", snapFile); err == nil || !strings.Contains(out, "enclavectl backup restore") {
		t.Errorf("vault operator raft snapshot restore: %v %s", err, out)
	}

	// Response wrapping is refused, not answered unwrapped.
	if out, err := vaultCmd(k.root, "", "write", "-force", "-wrap-ttl=60s", "transit/datakey/plaintext/cli"); err == nil || !strings.Contains(out, "X-Vault-Wrap-TTL") {
		t.Errorf("vault write -wrap-ttl: %v %s", err, out)
	}
}
