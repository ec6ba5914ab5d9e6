package main

import (
	"bytes"
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

	"github.com/nats-io/jwt/v2"
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
	relays(t, sim, addr, "through an authenticated NATS")
	if strings.Contains(logs.String(), string(seed)) {
		t.Fatal("the seed is in relayd's log")
	}
}

// TestRelaydClusterCredsAndClientCert: against NATS servers in operator
// mode (JWT authentication) that verify clients' TLS certificates,
// relayd with a user's credentials file and a client certificate serves.
// Refused by the servers: no credentials, another account's user, no
// client certificate (the error says which flags to give). Refused
// before connecting, naming the flag: a file that is not a credentials
// file, a credentials file whose seed is not its JWT's key, both
// --cluster-creds and --cluster-nkey-seed, a certificate without its
// key, a key file that is not a key. A refused start writes nothing;
// no output quotes a seed.
func TestRelaydClusterCredsAndClientCert(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	tmp := t.TempDir()
	nc := natstest.StartWith(t, 1, natstest.Options{TLS: true, ClientCerts: true, Operator: true})
	_, _, seedFile := nkeyUser(t, tmp, "relayd.nk")
	garbage := filepath.Join(tmp, "garbage")
	os.WriteFile(garbage, []byte("not a credentials file\n"), 0o600)
	// The JWT of one user with the seed of another.
	mine, _ := os.ReadFile(nc.CredsFile)
	theirs, _ := os.ReadFile(nc.OtherCredsFile)
	otherKP, err := jwt.ParseDecoratedUserNKey(theirs)
	if err != nil {
		t.Fatal(err)
	}
	otherSeed, _ := otherKP.Seed()
	myKP, err := jwt.ParseDecoratedUserNKey(mine)
	if err != nil {
		t.Fatal(err)
	}
	mySeed, _ := myKP.Seed()
	swappedFile := filepath.Join(tmp, "swapped.creds")
	os.WriteFile(swappedFile, bytes.ReplaceAll(mine, mySeed, otherSeed), 0o600)

	sim := filepath.Join(tmp, "sim")
	node := func(dir string, extra ...string) []string {
		return append([]string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, dir), "--listen", "127.0.0.1:0",
			"--cluster", strings.ReplaceAll(nc.URL(), "nats://", "tls://"), "--cluster-ca", nc.CAFile, "--cluster-replicas", "1", "--log-format", "json"}, extra...)
	}
	cert := []string{"--cluster-cert", nc.ClientCertFile, "--cluster-key", nc.ClientKeyFile}
	with := func(a []string, b ...string) []string { return append(append([]string{}, a...), b...) }
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no credentials", node("d0", cert...), "Authorization Violation"},
		{"another account's user", node("d0", with(cert, "--cluster-creds", nc.OtherCredsFile)...), "Authorization Violation"},
		{"no client certificate", node("d0", "--cluster-creds", nc.CredsFile), "give --cluster-cert and --cluster-key"},
		{"not a credentials file", node("d0", with(cert, "--cluster-creds", garbage)...), "--cluster-creds " + garbage + ": no user JWT in it"},
		{"a seed that is not the JWT's", node("d0", with(cert, "--cluster-creds", swappedFile)...), "its seed is not the key its JWT names"},
		{"two ways to authenticate", node("d0", with(cert, "--cluster-creds", nc.CredsFile, "--cluster-nkey-seed", seedFile)...), "give one"},
		{"a certificate without its key", node("d0", "--cluster-creds", nc.CredsFile, "--cluster-cert", nc.ClientCertFile), "--cluster-cert and --cluster-key go together"},
		{"a key file that is not a key", node("d0", "--cluster-creds", nc.CredsFile, "--cluster-cert", nc.ClientCertFile, "--cluster-key", garbage), "not a PEM certificate and its private key"},
	} {
		var out syncBuf
		code := run(context.Background(), c.args, noEnv, io.Discard, &out, nil)
		if code == 0 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%s: exit %d, %q; want %q", c.name, code, out.String(), c.want)
		}
		for _, s := range [][]byte{mySeed, otherSeed} {
			if strings.Contains(out.String(), string(s)) {
				t.Errorf("%s: a seed was printed", c.name)
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(tmp, "d0")); len(ents) != 0 {
		t.Fatalf("a refused start wrote %d files into its data dir", len(ents))
	}

	addr, logs, stop := startRun(t, node("d1", with(cert, "--cluster-creds", nc.CredsFile)...)...)
	defer stop()
	relays(t, sim, addr, "through operator-mode NATS")
	if strings.Contains(logs.String(), string(mySeed)) {
		t.Fatal("the credentials' seed is in relayd's log")
	}
}

// relays checks that alice's message reaches bob through the relayd at
// addr (simulated platform sim).
func relays(t *testing.T, sim, addr, msg string) {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	bob := dialAs(t, be, addr, "bob")
	defer bob.Close()
	alice := dialAs(t, be, addr, "alice")
	defer alice.Close()
	if err := alice.Send("bob", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if from, data, ok, err := bob.Poll(); err != nil || !ok || from != "alice" || string(data) != msg {
		t.Fatalf("poll: %q %q %v %v", from, data, ok, err)
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
