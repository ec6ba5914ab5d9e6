package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

// TestRelaydClusterNKeyAuth: against a NATS server that accepts only TLS
// connections and one nkey user, relayd with that user's seed
// (--cluster-nkey-seed) and the servers' CA (--cluster-ca) serves;
// without a seed, or with another user's, it is refused by the server;
// a seed that is not a user's, or a CA file without a certificate, is
// refused before connecting; without the CA (or with another) the TLS
// handshake fails. No error or log line quotes a seed.
func TestRelaydClusterNKeyAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	tmp := t.TempDir()
	user, seed, seedFile := nkeyUser(t, tmp, "relayd.nk")
	_, otherSeed, otherFile := nkeyUser(t, tmp, "other.nk")
	nc := natstest.StartWith(t, 1, natstest.Options{NKeyUsers: []string{user}, ProbeSeed: seed, TLS: true})
	otherCA := filepath.Join(tmp, "other-ca.pem")
	os.WriteFile(otherCA, otherCAPEM(t), 0o600)
	acct, _ := nkeys.CreateAccount()
	acctSeed, _ := acct.Seed()
	acctFile := filepath.Join(tmp, "account.nk")
	os.WriteFile(acctFile, acctSeed, 0o600)
	garbage := filepath.Join(tmp, "garbage.nk")
	os.WriteFile(garbage, []byte("not a seed\n"), 0o600)

	sim := filepath.Join(tmp, "sim")
	node := func(dir string, extra ...string) []string {
		return append([]string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, dir), "--listen", "127.0.0.1:0",
			"--cluster", strings.ReplaceAll(nc.URL(), "nats://", "tls://"), "--cluster-replicas", "1", "--log-format", "json"}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no seed", node("d0", "--cluster-ca", nc.CAFile), "Authorization Violation"},
		{"another user's seed", node("d0", "--cluster-ca", nc.CAFile, "--cluster-nkey-seed", otherFile), "Authorization Violation"},
		{"no CA", node("d0", "--cluster-nkey-seed", seedFile), "certificate"},
		{"another CA", node("d0", "--cluster-ca", otherCA, "--cluster-nkey-seed", seedFile), "certificate"},
		{"a CA file without a certificate", node("d0", "--cluster-ca", garbage, "--cluster-nkey-seed", seedFile), "no PEM certificate"},
		{"an account seed", node("d0", "--cluster-nkey-seed", acctFile), "the seed is not a user's"},
		{"not a seed", node("d0", "--cluster-nkey-seed", garbage), "not an nkey seed"},
		{"no such file", node("d0", "--cluster-nkey-seed", filepath.Join(tmp, "missing")), "--cluster-nkey-seed"},
	} {
		var out syncBuf
		code := run(context.Background(), c.args, noEnv, io.Discard, &out, nil)
		if code == 0 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%s: exit %d, %q; want %q", c.name, code, out.String(), c.want)
		}
		for _, s := range [][]byte{seed, otherSeed, acctSeed} {
			if strings.Contains(out.String(), string(s)) {
				t.Errorf("%s: a seed was printed", c.name)
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(tmp, "d0")); len(ents) != 0 {
		t.Fatalf("a refused start wrote %d files into its data dir", len(ents))
	}

	addr, logs, stop := startRun(t, node("d1", "--cluster-ca", nc.CAFile, "--cluster-nkey-seed", seedFile)...)
	defer stop()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	bob := dialAs(t, be, addr, "bob")
	defer bob.Close()
	alice := dialAs(t, be, addr, "alice")
	defer alice.Close()
	if err := alice.Send("bob", []byte("through an authenticated NATS")); err != nil {
		t.Fatal(err)
	}
	if from, data, ok, err := bob.Poll(); err != nil || !ok || from != "alice" || string(data) != "through an authenticated NATS" {
		t.Fatalf("poll: %q %q %v %v", from, data, ok, err)
	}
	if strings.Contains(logs.String(), string(seed)) {
		t.Fatal("the seed is in relayd's log")
	}
}

// nkeyUser makes a NATS user nkey and writes its seed to dir/name (0600).
func nkeyUser(t *testing.T, dir, name string) (pub string, seed []byte, file string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ = kp.PublicKey()
	seed, _ = kp.Seed()
	file = filepath.Join(dir, name)
	if err := os.WriteFile(file, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seed, file
}

// otherCAPEM is a CA certificate that issued nothing.
func otherCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
