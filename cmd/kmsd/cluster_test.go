package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

// TestKMSDCluster runs kmsd --cluster against a real three-node NATS
// JetStream cluster: the first replica makes the bucket and the root
// token; a second kmsd started from a copy of its data dir (the same
// simulated machine, so the sealed cluster data key opens) serves the
// same keys and tokens over RA-TLS; a kmsd with a data dir of its own is
// refused, naming the hand-off it would need.
func TestKMSDCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := natstest.Start(t, 3)
	tmp := t.TempDir()
	sim, dataA, dataB, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "root.token")
	common := []string{"--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--cluster", c.URL()}
	addrA, logsA, _, stopA := startKMSD(t, append(common, "--data-dir", dataA, "--root-token-file", tokFile)...)
	defer func() { stopA() }()
	tok := readToken(t, tokFile)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	a := vaultOverRATLS(t, addrA, tok, be, be.DefaultPolicy)
	if _, err := a.Logical().Write("transit/keys/app", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	s, err := a.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("hello"))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logsA.String(), "cluster bucket initialised") {
		t.Fatalf("A did not make the bucket: %s", logsA.String())
	}

	copyDir(t, dataA, dataB)
	addrB, _, _, stopB := startKMSD(t, append(common, "--data-dir", dataB)...)
	defer stopB()
	b := vaultOverRATLS(t, addrB, tok, be, be.DefaultPolicy)
	decryptHello(t, b, s.Data["ciphertext"])
	child, err := b.Auth().Token().Create(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Auth().Token().RevokeAccessor(child.Auth.Accessor); err != nil {
		t.Fatal(err)
	}
	b.SetToken(child.Auth.ClientToken)
	if _, err := b.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": "aGk="}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("B accepted a token revoked through A: %v", err)
	}

	// A restarts from its data dir: the same cluster, no new root token.
	stopA()
	addrA, _, _, stopA = startKMSD(t, append(common, "--data-dir", dataA, "--root-token-file", tokFile)...)
	b.SetToken(tok)
	if _, err := b.Logical().Write("transit/keys/app/rotate", nil); err != nil {
		t.Fatal(err)
	}
	a = vaultOverRATLS(t, addrA, tok, be, be.DefaultPolicy)
	if r, err := a.Logical().Read("transit/keys/app"); err != nil || r.Data["latest_version"].(json.Number).String() != "2" {
		t.Fatalf("A after its restart: %v %v", r, err)
	}
	decryptHello(t, a, s.Data["ciphertext"])

	// A replica with a data key of its own is refused.
	code, started, stderr := tryKMSD(t, "", append(common, "--data-dir", filepath.Join(tmp, "c"))...)
	if started || code != 1 || !strings.Contains(stderr, "hand-off") {
		t.Fatalf("a replica with another data key: exit %d, started %v: %s", code, started, stderr)
	}
}

func TestKMSDClusterFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--simulation", "--cluster", "nats://127.0.0.1:4222"}, // no --data-dir
		{"--simulation", "--data-dir", t.TempDir(), "--cluster", "127.0.0.1:4222"},
		{"--simulation", "--data-dir", t.TempDir(), "--cluster", "nats://u:hunter2@127.0.0.1:4222"},
		{"--simulation", "--data-dir", t.TempDir(), "--cluster", "nats://127.0.0.1:4222", "--cluster-replicas", "7"},
		{"--simulation", "--data-dir", t.TempDir(), "--cluster", "nats://127.0.0.1:4222", "--cluster-bucket", "a.b"},
		{"--simulation", "--data-dir", t.TempDir(), "--cluster", "nats://127.0.0.1:4222", "--generate-root", "--print-root-token"},
	} {
		var b syncBuf
		if code := run(context.Background(), args, noEnv, strings.NewReader(""), io.Discard, &b, nil); code != 2 || !strings.Contains(b.String(), "--cluster") {
			t.Errorf("%q: exit %d %q", args, code, b.String())
		}
		if strings.Contains(b.String(), "hunter2") {
			t.Errorf("%q: the password was echoed: %q", args, b.String())
		}
	}
	// The config file and the environment set it as any other flag.
	cfg := filepath.Join(t.TempDir(), "kmsd.toml")
	os.WriteFile(cfg, []byte("simulation = true\ncluster = \"nats://127.0.0.1:4222\"\ncluster-replicas = 9\n"), 0o600)
	var f syncBuf
	if code := run(context.Background(), []string{"--config", cfg, "--data-dir", t.TempDir()}, noEnv, strings.NewReader(""), io.Discard, &f, nil); code != 2 || !strings.Contains(f.String(), "--cluster-replicas") {
		t.Errorf("config file: exit %d %q", code, f.String())
	}
	// The environment sets it as any other flag.
	env := func(k string) string {
		if k == "KMSD_CLUSTER" {
			return "nats://127.0.0.1:4222"
		}
		return ""
	}
	var b syncBuf
	if code := run(context.Background(), []string{"--simulation"}, env, strings.NewReader(""), io.Discard, &b, nil); code != 2 || !strings.Contains(b.String(), "--cluster needs --data-dir") {
		t.Errorf("KMSD_CLUSTER: exit %d %q", code, b.String())
	}
}

// TestKMSDClusterReplicaThroughRecovery: a second replica on another
// machine (another simulated platform) from a copy of the first one's
// data dir starts sealed; once two operators have unsealed it (their
// shares reach only the attested enclave) it holds the cluster data key
// and serves the cluster's keys and tokens, while the first keeps serving.
func TestKMSDClusterReplicaThroughRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := natstest.Start(t, 3)
	tmp := t.TempDir()
	simA, simB, dataA, dataB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB"), filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	ops := custodytest.NewOperators(t, tmp, 3)
	sharesDir, tokFile := filepath.Join(tmp, "shares"), filepath.Join(tmp, "root.token")
	addrA, _, _, stopA := startKMSD(t, "--simulation", "--sim-dir", simA, "--data-dir", dataA, "--root-token-file", tokFile, "--listen", "127.0.0.1:0",
		"--cluster", c.URL(), "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", sharesDir)
	defer stopA()
	tok := readToken(t, tokFile)
	beA, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	a := vaultOverRATLS(t, addrA, tok, beA, beA.DefaultPolicy)
	ct := encryptHello(t, a)
	shares := ops.Shares(t, sharesDir, "kms-")

	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, dataA, dataB)
	addrB, _, _, stopB := startKMSD(t, "--simulation", "--sim-dir", simB, "--data-dir", dataB, "--listen", "127.0.0.1:0", "--cluster", c.URL())
	defer stopB()
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	b := vaultOverRATLS(t, addrB, tok, beB, beB.DefaultPolicy)
	if st, err := b.Sys().SealStatus(); err != nil || !st.Sealed {
		t.Fatalf("B on another machine is not sealed: %+v %v", st, err)
	}
	b.Sys().Unseal(shares[1])
	if st, err := b.Sys().Unseal(shares[2]); err != nil || st.Sealed {
		t.Fatalf("unseal: %+v %v", st, err)
	}
	decryptHello(t, b, ct)
	if _, err := b.Logical().Write("transit/keys/app/rotate", nil); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Logical().Read("transit/keys/app"); err != nil || r.Data["latest_version"].(json.Number).String() != "2" {
		t.Fatalf("A does not see B's rotation: %v %v", r, err)
	}
}
