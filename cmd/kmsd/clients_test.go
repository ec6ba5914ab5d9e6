package main

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
)

// Clients nobody here wrote — sops, HashiCorp's vault CLI, node-vault —
// drive a kmsd started as the command starts it, in simulation, over its
// RA-TLS listener, with --stable-tls-ca. Each client trusts kmsd the way a
// Vault user pins a server's CA (VAULT_CACERT), after the test has checked
// the quote of the certificate it was served; the pin holds across
// restarts. A missing client skips with a message naming it and how to get
// it; under SHARED_ENCLAVE_REQUIRE_CLIENTS=1 (set by .ci/run, which
// installs all three) it fails instead.

// clientKMSD is a kmsd serving the real clients.
type clientKMSD struct {
	t     *testing.T
	args  []string
	stop  func()
	url   string // https://127.0.0.1:PORT
	root  string // the root token
	ca    string // PEM file of the attested certificate
	home  string // HOME for the clients: empty, nothing of the user's
	be    *backend.Backend
	vault *vault.Client // Vault's Go client over RA-TLS, for checks
}

func startForClients(t *testing.T) *clientKMSD {
	t.Helper()
	tmp := t.TempDir()
	sim, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "root.token")
	args := []string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, "data"),
		"--root-token-file", tokFile, "--stable-tls-ca", "--listen"}
	addr, _, _, stop := startKMSD(t, append(args, "127.0.0.1:0")...)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	k := &clientKMSD{t: t, args: append(args, addr), stop: stop, url: "https://" + addr, root: readToken(t, tokFile),
		ca: filepath.Join(tmp, "ca.pem"), home: filepath.Join(tmp, "home"), be: be}
	t.Cleanup(func() { k.stop() })
	// The CA is pinned only once the quote of the certificate it issued
	// has been checked.
	conn, err := tls.Dial("tcp", addr, atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy))
	if err != nil {
		t.Fatalf("RA-TLS handshake with kmsd: %v", err)
	}
	chain := conn.ConnectionState().PeerCertificates
	conn.Close()
	if len(chain) != 2 || chain[0].CheckSignatureFrom(chain[1]) != nil {
		t.Fatalf("kmsd --stable-tls-ca served %d certificates, want its certificate and the CA that issued it", len(chain))
	}
	if err := os.WriteFile(k.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[1].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(k.home, 0o700); err != nil {
		t.Fatal(err)
	}
	k.vault = vaultOverRATLS(t, addr, k.root, be, be.DefaultPolicy)
	return k
}

// restart stops kmsd and starts it again on the same address: the same
// keys and tokens, a new RA-TLS certificate under the same CA.
func (k *clientKMSD) restart() {
	k.t.Helper()
	k.stop()
	var addr string
	addr, _, _, k.stop = startKMSD(k.t, k.args...)
	k.vault = vaultOverRATLS(k.t, addr, k.root, k.be, k.be.DefaultPolicy)
}

// env is the whole environment of a client: the user's own Vault settings
// (~/.vault-token, VAULT_*) play no part.
func (k *clientKMSD) env(token string, more ...string) []string {
	return append([]string{"HOME=" + k.home, "PATH=" + os.Getenv("PATH"), "VAULT_ADDR=" + k.url, "VAULT_CACERT=" + k.ca, "VAULT_TOKEN=" + token}, more...)
}

// clientTool returns the path of a client program: $envVar if set, else
// name on PATH. Without it the test skips naming the tool and how to get
// it, or fails under SHARED_ENCLAVE_REQUIRE_CLIENTS=1.
func clientTool(t *testing.T, name, envVar, install string) string {
	t.Helper()
	if bin := os.Getenv(envVar); bin != "" {
		return bin
	}
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	missing(t, name+" not found (set "+envVar+" or put it on PATH): "+install)
	return ""
}

func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("SHARED_ENCLAVE_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("SHARED_ENCLAVE_REQUIRE_CLIENTS=1 but %s", msg)
	}
	t.Skip("skipped: " + msg + "; .ci/run installs it and sets SHARED_ENCLAVE_REQUIRE_CLIENTS=1")
}

// run runs a client to completion (a generous liveness bound, not a
// speed check) and returns its combined output.
func runClient(t *testing.T, env []string, stdin string, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s: no answer in 2 minutes\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
	}
	return "", nil
}
