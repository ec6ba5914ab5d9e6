package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

// TestRelaydClusterNKeyAuth: against a NATS server that accepts only one
// nkey user, relayd with that user's seed (--cluster-nkey-seed) serves;
// without a seed, or with another user's, it is refused by the server;
// a seed that is not a user's is refused before connecting. No error or
// log line quotes a seed.
func TestRelaydClusterNKeyAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	tmp := t.TempDir()
	user, seed, seedFile := nkeyUser(t, tmp, "relayd.nk")
	_, otherSeed, otherFile := nkeyUser(t, tmp, "other.nk")
	nc := natstest.StartWith(t, 1, natstest.Options{NKeyUsers: []string{user}, ProbeSeed: seed})
	acct, _ := nkeys.CreateAccount()
	acctSeed, _ := acct.Seed()
	acctFile := filepath.Join(tmp, "account.nk")
	os.WriteFile(acctFile, acctSeed, 0o600)
	garbage := filepath.Join(tmp, "garbage.nk")
	os.WriteFile(garbage, []byte("not a seed\n"), 0o600)

	sim := filepath.Join(tmp, "sim")
	node := func(dir string, extra ...string) []string {
		return append([]string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, dir), "--listen", "127.0.0.1:0",
			"--cluster", nc.URL(), "--cluster-replicas", "1", "--log-format", "json"}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no seed", node("d0"), "Authorization Violation"},
		{"another user's seed", node("d0", "--cluster-nkey-seed", otherFile), "Authorization Violation"},
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

	addr, logs, stop := startRun(t, node("d1", "--cluster-nkey-seed", seedFile)...)
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
