package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sopsVersion is the sops that .ci/run installs (README: Tests).
const sopsVersion = "v3.13.3"

// TestSops: Mozilla's (now CNCF's) sops encrypts, decrypts and rotates a
// file with kmsd as its hc_vault_transit key service, to key names that
// do not exist yet (sops relies on Vault's create-on-encrypt), and keeps
// working across a restart of kmsd (its CA pinned) and a rotation of the
// transit key.
func TestSops(t *testing.T) {
	sops := clientTool(t, "sops", "SOPS_BIN", "go install github.com/getsops/sops/v3/cmd/sops@"+sopsVersion)
	k := startForClients(t)
	dir := t.TempDir()
	env := k.env(k.root)
	sopsRun := func(args ...string) string {
		t.Helper()
		out, err := runClient(t, env, "", sops, args...)
		if err != nil {
			t.Fatalf("sops %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	keyURI := func(name string) string { return k.url + "/v1/transit/keys/" + name }

	plain := filepath.Join(dir, "secrets.yaml")
	const secrets = "db:\n    user: app\n    password: hunter2-for-sops\napi_key: k-123456\n"
	if err := os.WriteFile(plain, []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "secrets.enc.yaml")
	sopsRun("encrypt", "--hc-vault-transit", keyURI("sops-a"), "--output", enc, plain)
	file := readFile(t, enc)
	if strings.Contains(file, "hunter2") || strings.Contains(file, "k-123456") || !strings.Contains(file, "key_name: sops-a") ||
		!regexp.MustCompile(`enc: vault:v1:`).MatchString(file) {
		t.Fatalf("encrypted file:\n%s", file)
	}
	// sops made the key by encrypting to it (Vault's create-on-encrypt).
	if s, err := k.vault.Logical().Read("transit/keys/sops-a"); err != nil || s == nil || s.Data["type"] != "aes256-gcm96" {
		t.Fatalf("key sops-a after sops encrypt: %v %v", s, err)
	}
	if out := sopsRun("decrypt", enc); out != secrets {
		t.Fatalf("sops decrypt: %q", out)
	}
	dataBefore := encryptedValues(file)

	// kmsd restarts: a new RA-TLS certificate, under the CA sops pinned.
	k.restart()
	if out := sopsRun("decrypt", enc); out != secrets {
		t.Fatalf("sops decrypt after kmsd restarted: %q", out)
	}

	// Rotate: a new data key, also encrypted to a second new key.
	sopsRun("rotate", "--in-place", "--add-hc-vault-transit", keyURI("sops-b"), enc)
	file = readFile(t, enc)
	if !strings.Contains(file, "key_name: sops-a") || !strings.Contains(file, "key_name: sops-b") {
		t.Fatalf("after rotate --add-hc-vault-transit:\n%s", file)
	}
	if encryptedValues(file) == dataBefore {
		t.Fatal("sops rotate did not re-encrypt the values under a new data key")
	}
	// Drop the first key: sops-b alone opens the file.
	sopsRun("rotate", "--in-place", "--rm-hc-vault-transit", keyURI("sops-a"), enc)
	if file = readFile(t, enc); strings.Contains(file, "sops-a") {
		t.Fatalf("after rotate --rm-hc-vault-transit:\n%s", file)
	}
	if out := sopsRun("decrypt", enc); out != secrets {
		t.Fatalf("sops decrypt with sops-b alone: %q", out)
	}

	// The transit key rotates in kmsd; the file's data key is still
	// encrypted under version 1 until sops rotate re-encrypts it, under
	// version 2; then version 1 can be retired.
	if _, err := k.vault.Logical().Write("transit/keys/sops-b/rotate", nil); err != nil {
		t.Fatal(err)
	}
	sopsRun("rotate", "--in-place", enc)
	if file = readFile(t, enc); !strings.Contains(file, "enc: vault:v2:") {
		t.Fatalf("after the transit key's rotation and sops rotate:\n%s", file)
	}
	if _, err := k.vault.Logical().Write("transit/keys/sops-b/config", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	if out := sopsRun("decrypt", enc); out != secrets {
		t.Fatalf("sops decrypt after min_decryption_version=2: %q", out)
	}

	// A token that may not decrypt: sops fails and says what kmsd said.
	policy := `path "transit/encrypt/*" { capabilities = ["create", "update"] }`
	if _, err := k.vault.Logical().Write("sys/policies/acl/encrypt-only", map[string]any{"policy": policy}); err != nil {
		t.Fatal(err)
	}
	s, err := k.vault.Logical().Write("auth/token/create", map[string]any{"policies": []string{"encrypt-only"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runClient(t, k.env(s.Auth.ClientToken), "", sops, "decrypt", enc)
	if err == nil || strings.Contains(out, "hunter2") || !strings.Contains(out, "permission denied") {
		t.Fatalf("sops decrypt with an encrypt-only token: %v\n%s", err, out)
	}
	// ... but it may encrypt a new file, to a new key (create).
	out, err = runClient(t, k.env(s.Auth.ClientToken), "", sops, "encrypt", "--hc-vault-transit", keyURI("sops-c"), plain)
	if err != nil || !strings.Contains(out, "key_name: sops-c") {
		t.Fatalf("sops encrypt with an encrypt-only token: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// encryptedValues is the ENC[…] values of a sops file, in order.
func encryptedValues(file string) string {
	b, _ := json.Marshal(regexp.MustCompile(`ENC\[[^\]]*\]`).FindAllString(file, -1))
	return string(b)
}
