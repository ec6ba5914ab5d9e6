package kms

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultCLI drives kmsd with HashiCorp's own vault binary, as a Vault
// user would. It is not built here: the module github.com/hashicorp/vault
// (v1.21.4) has replace directives, so `go install …@v1.21.4` refuses it,
// and building it from its source needs some 540 modules; so the test
// runs only where a vault binary is given (VAULT_BIN, or vault on PATH).
func TestVaultCLI(t *testing.T) {
	bin := os.Getenv("VAULT_BIN")
	if bin == "" {
		bin, _ = exec.LookPath("vault")
	}
	if bin == "" {
		t.Skip("no Vault CLI: set VAULT_BIN to a vault binary (HashiCorp's release, or built from github.com/hashicorp/vault v1.21.4 source; `go install` refuses that module because of its replace directives)")
	}
	k := startKMS(t, t.TempDir(), nil)
	home := t.TempDir()
	ca := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	vaultCmd := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=" + home, "VAULT_ADDR=" + k.srv.URL, "VAULT_CACERT=" + ca, "VAULT_TOKEN=" + k.root, "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := vaultCmd("", args...)
		if err != nil {
			t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	if out := must("status", "-format=json"); !strings.Contains(out, `"sealed": false`) {
		t.Errorf("vault status: %s", out)
	}
	if out := must("secrets", "list", "-format=json"); !strings.Contains(out, `"transit/"`) {
		t.Errorf("vault secrets list: %s", out)
	}
	if out, err := vaultCmd(`path "transit/encrypt/cli" { capabilities = ["update"] }`, "policy", "write", "app", "-"); err != nil {
		t.Fatalf("vault policy write: %v %s", err, out)
	}
	if out := must("policy", "list"); !strings.Contains(out, "app") || !strings.Contains(out, "default") {
		t.Errorf("vault policy list: %s", out)
	}
	must("write", "transit/keys/cli", "type=aes256-gcm96")
	ct := must("write", "-field=ciphertext", "transit/encrypt/cli", "plaintext="+b64("from the CLI"))
	if pt := must("write", "-field=plaintext", "transit/decrypt/cli", "ciphertext="+ct); pt != b64("from the CLI") {
		t.Errorf("decrypt: %q", pt)
	}
	var created struct {
		Auth struct {
			ClientToken   string `json:"client_token"`
			LeaseDuration int    `json:"lease_duration"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(must("token", "create", "-policy=app", "-ttl=1h", "-format=json")), &created); err != nil || created.Auth.LeaseDuration != 3600 {
		t.Fatalf("vault token create: %v %+v", err, created)
	}
	if out := must("token", "lookup", created.Auth.ClientToken); !strings.Contains(out, "app") {
		t.Errorf("vault token lookup: %s", out)
	}
	must("token", "revoke", created.Auth.ClientToken)
	if out, err := vaultCmd("", "write", "-wrap-ttl=60s", "transit/datakey/plaintext/cli"); err == nil || !strings.Contains(out, "X-Vault-Wrap-TTL") {
		t.Errorf("vault write -wrap-ttl: %v %s", err, out)
	}
}
