package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestKMSDClusterJoinThroughHandoff: a second replica with an empty data
// dir joins with --join: the first (--join-listen) hands it the cluster
// data key after mutual attestation; it then decrypts what the first
// encrypted, with the same root token, and its data dir holds the key
// sealed under its own seal key.
func TestKMSDClusterJoinThroughHandoff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := natstest.Start(t, 3)
	tmp := t.TempDir()
	sim, dataA, dataB, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "root.token")
	common := []string{"--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--cluster", c.URL()}
	join := freeAddr(t)
	addrA, _, _, stopA := startKMSD(t, append(common, "--data-dir", dataA, "--root-token-file", tokFile, "--join-listen", join)...)
	defer stopA()
	tok := readToken(t, tokFile)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	ct := encryptHello(t, vaultOverRATLS(t, addrA, tok, be, be.DefaultPolicy))
	addrB, _, _, stopB := startKMSD(t, append(common, "--data-dir", dataB, "--join", join)...)
	defer stopB()
	decryptHello(t, vaultOverRATLS(t, addrB, tok, be, be.DefaultPolicy), ct)
	if _, err := os.Stat(filepath.Join(dataB, "custody.json")); err != nil {
		t.Fatalf("the joined replica kept no sealed key: %v", err)
	}
	// Its next start needs no member.
	stopB()
	addrB, _, _, stopB = startKMSD(t, append(common, "--data-dir", dataB)...)
	decryptHello(t, vaultOverRATLS(t, addrB, tok, be, be.DefaultPolicy), ct)

	// A member whose hand-off policy names another MRENCLAVE gives a
	// joining node nothing, and the refused node writes nothing.
	pol := filepath.Join(tmp, "other.toml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf("[peers]\nmrenclave = [%q]\nallow_simulated = true\n", strings.Repeat("cd", 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	stopB()
	strictJoin := freeAddr(t)
	_, _, _, stopB = startKMSD(t, append(common, "--data-dir", dataB, "--join-listen", strictJoin, "--handoff-policy", pol)...)
	defer stopB()
	dataC := filepath.Join(tmp, "c")
	var out syncBuf
	code := run(context.Background(), append(common, "--data-dir", dataC, "--join", strictJoin), noEnv, strings.NewReader(""), io.Discard, &out, nil)
	if code == 0 || !strings.Contains(out.String(), "MRENCLAVE") {
		t.Fatalf("a node outside the policy: exit %d, %q", code, out.String())
	}
	if ents, _ := os.ReadDir(dataC); len(ents) != 0 {
		t.Fatalf("the refused node wrote %d files", len(ents))
	}
}
