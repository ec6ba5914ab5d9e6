package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
)

// firstStart runs kmsd on a new data dir with 2-of-3 recovery on the
// simulated platform simA, makes a key and encrypts "hello" under it. It
// returns the ciphertext, the root token and the operators' decrypted
// shares.
func firstStart(t *testing.T, tmp, simA, data string) (ct any, tok string, shares []string) {
	t.Helper()
	ops := custodytest.NewOperators(t, tmp, 3)
	sharesDir, tokFile := filepath.Join(tmp, "shares"), filepath.Join(tmp, "root.token")
	addr, logs, _, stop := startKMSD(t, "--simulation", "--sim-dir", simA, "--data-dir", data, "--root-token-file", tokFile, "--listen", "127.0.0.1:0",
		"--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", sharesDir)
	tok = readToken(t, tokFile)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	ct = encryptHello(t, vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy))
	stop()
	shares = ops.Shares(t, sharesDir, "kms-")
	for _, sh := range shares {
		if strings.Contains(logs.String(), strings.Fields(sh)[5]) {
			t.Fatal("a share was logged")
		}
	}
	if _, err := os.Stat(filepath.Join(data, startup.CustodyFile)); err != nil {
		t.Fatal(err)
	}
	// No share, no share value, no root token on disk in the clear.
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte(tok)), data, sharesDir)
	return ct, tok, shares
}

// encryptHello creates the key "app" through c and returns the
// ciphertext of "hello" under it (decryptHello checks it).
func encryptHello(t *testing.T, c *vault.Client) any {
	t.Helper()
	if _, err := c.Logical().Write("transit/keys/app", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("hello"))})
	if err != nil {
		t.Fatal(err)
	}
	return s.Data["ciphertext"]
}

func decryptHello(t *testing.T, c *vault.Client, ct any) {
	t.Helper()
	s, err := c.Logical().Write("transit/decrypt/app", map[string]any{"ciphertext": ct})
	if err != nil || s.Data["plaintext"] != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Fatalf("decrypt: %v %v", s, err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestKMSDRecoveryOnAnotherMachine is issue 14's machine loss: the data
// dir copied to another simulated platform (another platform secret, as
// another CPU) opens only through recovery. With k-1 shares, forged
// shares or another deployment's shares nothing opens and nothing on disk
// changes; with k shares the key encrypted before decrypts after, and the
// next start opens without the operators.
func TestKMSDRecoveryOnAnotherMachine(t *testing.T) {
	tmp := t.TempDir()
	simA, simB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB")
	dataA, dataB := filepath.Join(tmp, "dataA"), filepath.Join(tmp, "dataB")
	ct, tok, shares := firstStart(t, tmp, simA, dataA)

	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, dataA, dataB)
	args := []string{"--simulation", "--sim-dir", simB, "--data-dir", dataB, "--listen", "127.0.0.1:0"}
	addr, logs, _, stop := startKMSD(t, args...)
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultOverRATLS(t, addr, tok, beB, beB.DefaultPolicy)
	st, err := c.Sys().SealStatus()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Sealed || st.T != 2 || st.N != 3 || st.Progress != 0 || st.Type != "shamir" {
		t.Fatalf("seal-status on the new machine: %+v", st)
	}
	// Sealed: the KMS answers nothing else.
	if _, err := c.Logical().Write("transit/decrypt/app", map[string]any{"ciphertext": ct}); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("decrypt while sealed: %v", err)
	}
	before := custodytest.HashDir(t, dataB)

	// k-1 shares.
	if st, err := c.Sys().Unseal(shares[0]); err != nil || !st.Sealed || st.Progress != 1 {
		t.Fatalf("first share: %+v %v", st, err)
	}
	if st, err := c.Sys().UnsealWithOptions(&vault.UnsealOpts{Reset: true}); err != nil || st.Progress != 0 {
		t.Fatalf("reset: %+v %v", st, err)
	}
	// Forged shares: well formed, this deployment, wrong values.
	c.Sys().Unseal(custodytest.Forge(t, shares[0]))
	if _, err := c.Sys().Unseal(custodytest.Forge(t, shares[1])); err == nil {
		t.Fatal("forged shares unsealed kmsd")
	}
	// One genuine share and one forged.
	c.Sys().Unseal(shares[2])
	if _, err := c.Sys().Unseal(custodytest.Forge(t, shares[1])); err == nil {
		t.Fatal("a forged share with a genuine one unsealed kmsd")
	}
	// Another deployment's shares.
	for _, f := range custodytest.Foreign(t, 2, 3) {
		if _, err := c.Sys().Unseal(f); err == nil {
			t.Fatal("another deployment's share was accepted")
		}
	}
	if st, _ := c.Sys().SealStatus(); !st.Sealed || st.Progress != 0 {
		t.Fatalf("after refused shares: %+v", st)
	}
	if after := custodytest.HashDir(t, dataB); after != before {
		t.Fatal("the data dir changed while kmsd was sealed")
	}

	// k genuine shares: unsealed, without a restart.
	c.Sys().Unseal(shares[2])
	st, err = c.Sys().Unseal(shares[0])
	if err != nil || st.Sealed {
		t.Fatalf("unseal with 2 shares: %+v %v", st, err)
	}
	decryptHello(t, c, ct)
	stop()
	if strings.Contains(logs.String(), "refusing") {
		t.Errorf("records refused one by one:\n%s", logs.String())
	}
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte(tok)), dataB)

	// The data key is now sealed for this machine: the next start opens.
	addr, _, _, stop = startKMSD(t, args...)
	defer stop()
	c = vaultOverRATLS(t, addr, tok, beB, beB.DefaultPolicy)
	decryptHello(t, c, ct)
}

// TestKMSDSealedWithoutRecovery: a data dir made without recovery shares,
// moved to another machine, is refused in one line that says why.
func TestKMSDSealedWithoutRecovery(t *testing.T) {
	tmp := t.TempDir()
	simA, simB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB")
	data := filepath.Join(tmp, "data")
	_, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", simA, "--data-dir", data, "--print-root-token", "--listen", "127.0.0.1:0")
	stop()
	code, started, out := tryKMSD(t, "", "--simulation", "--sim-dir", simB, "--data-dir", data, "--listen", "127.0.0.1:0")
	if code != 1 || started || !strings.Contains(out, "no recovery shares were made") {
		t.Fatalf("exit %d, started %v:\n%s", code, started, out)
	}
}

// TestKMSDBackupRestoredElsewhere: a backup taken with --backup-to and
// restored on another simulated platform gives back the key through
// recovery: encrypted before, decrypted after.
func TestKMSDBackupRestoredElsewhere(t *testing.T) {
	tmp := t.TempDir()
	simA, simB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB")
	data, backup, restored := filepath.Join(tmp, "data"), filepath.Join(tmp, "backup"), filepath.Join(tmp, "restored")
	ct, tok, shares := firstStart(t, tmp, simA, data)
	code, started, out := tryKMSD(t, "", "--simulation", "--sim-dir", simA, "--data-dir", data, "--backup-to", backup)
	if code != 0 || started {
		t.Fatalf("--backup-to: exit %d, started %v\n%s", code, started, out)
	}
	if code, _, out := tryKMSD(t, "", "--simulation", "--sim-dir", simA, "--data-dir", data, "--backup-to", backup); code != 1 || !strings.Contains(out, "already exists") {
		t.Fatalf("--backup-to an existing dir: exit %d\n%s", code, out)
	}
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte(tok)), backup)

	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, restored)
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", simB, "--data-dir", restored, "--listen", "127.0.0.1:0")
	defer stop()
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultOverRATLS(t, addr, tok, beB, beB.DefaultPolicy)
	c.Sys().Unseal(shares[1])
	if st, err := c.Sys().Unseal(shares[2]); err != nil || st.Sealed {
		t.Fatalf("unseal the restored backup: %+v %v", st, err)
	}
	decryptHello(t, c, ct)
}
