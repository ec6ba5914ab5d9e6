package kms

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// startVaultDev runs HashiCorp Vault in dev mode (in memory, unsealed)
// from VAULT_BIN, with transit mounted, and returns its client. Without
// VAULT_BIN the test skips, or fails under SHARED_ENCLAVE_REQUIRE_CLIENTS=1
// (.ci/run builds vault with .ci/build-vault.sh and sets both).
func startVaultDev(t *testing.T) *vault.Client {
	t.Helper()
	bin := os.Getenv("VAULT_BIN")
	if bin == "" {
		msg := "no Vault to compare with: set VAULT_BIN to a vault binary (VAULT_BIN=$(.ci/build-vault.sh v1.21.0) builds it from its Go module)"
		if os.Getenv("SHARED_ENCLAVE_REQUIRE_CLIENTS") == "1" {
			t.Fatal("SHARED_ENCLAVE_REQUIRE_CLIENTS=1 but " + msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := fmt.Sprintf("dev-root-%x", randomBytesT(t, 8))
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+root, "-dev-listen-address="+addr, "-dev-no-store-token")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "VAULT_DISABLE_MLOCK=true"}
	logs := &syncBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cfg := vault.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(root)
	deadline := time.Now().Add(60 * time.Second) // liveness only
	for {
		if h, err := c.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault server -dev did not come up in 60 s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func randomBytesT(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// importBoth imports the same private key (PKCS #8) into Vault and kmsd.
func importBoth(t *testing.T, v, k *vault.Client, name string, pkcs8 []byte, params map[string]any) {
	t.Helper()
	for _, c := range []*vault.Client{v, k} {
		s, err := c.Logical().Read("transit/wrapping_key")
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode([]byte(s.Data["public_key"].(string)))
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		body := map[string]any{"ciphertext": encodeImport(t, pub.(*rsa.PublicKey), pkcs8)}
		for f, val := range params {
			body[f] = val
		}
		mustWrite(t, c, "transit/keys/"+name+"/import", body)
	}
}

// TestAgainstVault: what this branch added to signing is checked against
// real Vault with the same keys (imported into both): a derived ed25519
// key's signatures and public keys for a context, and RSA-PSS salt
// lengths, each signed by one and verified by the other.
func TestAgainstVault(t *testing.T) {
	v := startVaultDev(t)
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)

	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	importBoth(t, v, c, "edd", edDER, map[string]any{"type": "ed25519", "derived": true})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	importBoth(t, v, c, "rsa", rsaDER, map[string]any{"type": "rsa-2048"})

	ctx := b64("tenant-42")
	// The derived public key for a context, as each shows it.
	pubOf := func(cl *vault.Client) any {
		s, err := cl.Logical().ReadWithData("transit/keys/edd", map[string][]string{"context": {ctx}})
		if err != nil {
			t.Fatal(err)
		}
		return s.Data["keys"].(map[string]any)["1"].(map[string]any)["public_key"]
	}
	if kp, vp := pubOf(c), pubOf(v); kp != vp || kp == "" {
		t.Errorf("derived ed25519 public key: kmsd %v, Vault %v", kp, vp)
	}
	for _, tc := range []struct {
		key    string
		params map[string]any
	}{
		{"edd", map[string]any{"context": ctx}},
		{"rsa", map[string]any{"salt_length": "20"}},
		{"rsa", map[string]any{"salt_length": "hash", "hash_algorithm": "sha2-512"}},
		{"rsa", map[string]any{"salt_length": "auto"}},
	} {
		for _, dir := range []struct {
			signer, verifier *vault.Client
			what             string
		}{{c, v, "kmsd signs, Vault verifies"}, {v, c, "Vault signs, kmsd verifies"}} {
			in := map[string]any{"input": b64("differential")}
			for f, val := range tc.params {
				in[f] = val
			}
			s := mustWrite(t, dir.signer, "transit/sign/"+tc.key, in)
			in["signature"] = s.Data["signature"]
			if r := mustWrite(t, dir.verifier, "transit/verify/"+tc.key, in); r.Data["valid"] != true {
				t.Errorf("%s %v: %s: not valid", tc.key, tc.params, dir.what)
			}
		}
	}
}
