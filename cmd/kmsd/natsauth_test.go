package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

// TestKMSDClusterNKeyAuth: against a NATS server that accepts only TLS
// connections and one nkey user, kmsd with that user's seed
// (--cluster-nkey-seed) and the servers' CA (--cluster-ca) serves; a
// replica without a seed, or with another user's, is refused by the
// server; --cluster-nkey-seed without --cluster is a usage error.
func TestKMSDClusterNKeyAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	tmp := t.TempDir()
	mk := func(name string) (string, []byte, string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		f := filepath.Join(tmp, name)
		os.WriteFile(f, seed, 0o600)
		return pub, seed, f
	}
	user, seed, seedFile := mk("kmsd.nk")
	_, _, otherFile := mk("other.nk")
	nc := natstest.StartWith(t, 1, natstest.Options{NKeyUsers: []string{user}, ProbeSeed: seed, TLS: true})
	sim, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "root.token")
	common := []string{"--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--cluster", nc.URL(), "--cluster-replicas", "1", "--cluster-ca", nc.CAFile}

	addr, logs, _, stop := startKMSD(t, append(common, "--data-dir", filepath.Join(tmp, "a"), "--root-token-file", tokFile, "--cluster-nkey-seed", seedFile)...)
	defer stop()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	ct := encryptHello(t, vaultOverRATLS(t, addr, readToken(t, tokFile), be, be.DefaultPolicy))
	if ct == nil {
		t.Fatal("no ciphertext")
	}
	if strings.Contains(logs.String(), string(seed)) {
		t.Fatal("the seed is in kmsd's log")
	}
	for name, extra := range map[string][]string{"no seed": nil, "another user's seed": {"--cluster-nkey-seed", otherFile}} {
		code, started, out := tryKMSD(t, "", append(append(common, "--data-dir", filepath.Join(tmp, "b")), extra...)...)
		if started || code == 0 || !strings.Contains(out, "Authorization Violation") {
			t.Errorf("%s: exit %d, started %v: %s", name, code, started, out)
		}
	}
	if code, _, out := tryKMSD(t, "", "--simulation", "--cluster-nkey-seed", seedFile); code != 2 || !strings.Contains(out, "--cluster-nkey-seed, --cluster-creds, --cluster-ca, --cluster-cert and --cluster-key need --cluster") {
		t.Errorf("--cluster-nkey-seed without --cluster: exit %d, %s", code, out)
	}
}

// TestKMSDClusterCredsAndClientCert: against NATS servers in operator
// mode (JWT authentication) that also verify clients' TLS certificates,
// kmsd with a user's credentials file (--cluster-creds) and a client
// certificate (--cluster-cert, --cluster-key) serves; without the
// credentials, or without the certificate, the servers refuse it. The
// credentials' seed is in no output.
func TestKMSDClusterCredsAndClientCert(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	tmp := t.TempDir()
	nc := natstest.StartWith(t, 1, natstest.Options{TLS: true, ClientCerts: true, Operator: true})
	sim, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "root.token")
	common := []string{"--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--cluster", nc.URL(), "--cluster-replicas", "1", "--cluster-ca", nc.CAFile}
	cert := []string{"--cluster-cert", nc.ClientCertFile, "--cluster-key", nc.ClientKeyFile}
	addr, logs, _, stop := startKMSD(t, append(append(common, "--data-dir", filepath.Join(tmp, "a"), "--root-token-file", tokFile, "--cluster-creds", nc.CredsFile), cert...)...)
	defer stop()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	if ct := encryptHello(t, vaultOverRATLS(t, addr, readToken(t, tokFile), be, be.DefaultPolicy)); ct == nil {
		t.Fatal("no ciphertext")
	}
	creds, _ := os.ReadFile(nc.CredsFile)
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	if strings.Contains(logs.String(), string(seed)) {
		t.Fatal("the credentials' seed is in kmsd's log")
	}
	for _, c := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"no credentials", cert, "Authorization Violation"},
		{"another account's user", append([]string{"--cluster-creds", nc.OtherCredsFile}, cert...), "Authorization Violation"},
		{"no client certificate", []string{"--cluster-creds", nc.CredsFile}, "give --cluster-cert and --cluster-key"},
	} {
		code, started, out := tryKMSD(t, "", append(append(common, "--data-dir", filepath.Join(tmp, "b")), c.extra...)...)
		if started || code == 0 || !strings.Contains(out, c.want) || strings.Contains(out, string(seed)) {
			t.Errorf("%s: exit %d, started %v, want %q: %s", c.name, code, started, c.want, out)
		}
	}
}
