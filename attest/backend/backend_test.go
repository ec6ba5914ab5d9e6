package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/gramine"
)

func TestSimulationCreatesPlatformOnlyWhenAllowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	if _, err := Open(Options{Simulation: true, SimDir: dir}); err == nil {
		t.Fatal("missing platform opened without CreateSim")
	}
	be, err := Open(Options{Simulation: true, SimDir: dir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	if !be.Simulated || be.DefaultPolicy == nil || !be.DefaultPolicy.AllowSimulated || len(be.DefaultPolicy.MRSigner) != 1 {
		t.Fatalf("backend %+v", be)
	}
	if !strings.Contains(be.Description, "SIMULATED") {
		t.Errorf("description %q does not say SIMULATED", be.Description)
	}
	again, err := Open(Options{Simulation: true, SimDir: dir})
	if err != nil || again.Platform.MRSigner() != be.Platform.MRSigner() {
		t.Fatalf("reopening gave another platform: %v", err)
	}
}

func TestConflictingOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	for name, o := range map[string]Options{
		"sim dir without simulation": {SimDir: dir},
		"simulation with a root":     {Simulation: true, SimDir: dir, CreateSim: true, RootPEM: "root.pem"},
		"simulation with a PCCS":     {Simulation: true, SimDir: dir, CreateSim: true, PCCS: "https://pccs"},
		"simulation without a dir":   {Simulation: true},
		"PCCS and collateral":        {GramineDir: fakeGramine(t), PCCS: "https://x", CollateralDir: "d"},
	} {
		if _, err := Open(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSGXOutsideGramine(t *testing.T) {
	_, err := Open(Options{GramineDir: t.TempDir()})
	if !errors.Is(err, gramine.ErrNotDCAP) || !strings.Contains(err.Error(), "--simulation") {
		t.Fatalf("%v", err)
	}
	be, err := Open(Options{GramineDir: fakeGramine(t)})
	if err != nil {
		t.Fatal(err)
	}
	if be.Simulated || be.DefaultPolicy != nil {
		t.Fatal("SGX mode must have no default policy")
	}
}

func fakeGramine(t *testing.T) string {
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "attestation_type"), "dcap")
	return d
}

func TestSealRoots(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	be, err := Open(Options{Simulation: true, SimDir: dir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{SealMREnclave, SealMRSigner} {
		if _, err := be.SealRoot(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := be.SealRoot("none"); err == nil {
		t.Error("unknown seal policy accepted")
	}
	g := fakeGramine(t)
	sgx, err := Open(Options{GramineDir: g})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sgx.SealRoot(SealMREnclave); err == nil {
		t.Error("missing Gramine seal key accepted")
	}
	os.MkdirAll(filepath.Join(g, "keys"), 0o700)
	writeFile(t, filepath.Join(g, "keys", "_sgx_mrsigner"), string(make([]byte, 16)))
	if _, err := sgx.SealRoot(SealMRSigner); err == nil {
		t.Error("all-zero Gramine seal key accepted")
	}
	writeFile(t, filepath.Join(g, "keys", "_sgx_mrsigner"), "0123456789abcdef")
	if _, err := sgx.SealRoot(SealMRSigner); err != nil {
		t.Errorf("good Gramine seal key: %v", err)
	}
}

// A program that only verifies (a KMS client checking kmsd's certificate)
// opens the SGX backend outside an enclave; asking it for a quote or a
// seal key is refused with ErrNoAttester / an error, never answered.
func TestVerifyOnlyNeedsNoEnclave(t *testing.T) {
	be, err := Open(Options{GramineDir: t.TempDir(), VerifyOnly: true})
	if err != nil {
		t.Fatalf("verify-only SGX backend outside Gramine: %v", err)
	}
	if be.Verifier == nil || be.Simulated || be.DefaultPolicy != nil {
		t.Fatalf("backend %+v", be)
	}
	if _, err := be.Attester.Quote(context.Background(), [64]byte{}); !errors.Is(err, ErrNoAttester) {
		t.Errorf("verify-only attester: %v, want ErrNoAttester", err)
	}
	if _, err := be.SealRoot(SealMRSigner); err == nil {
		t.Error("verify-only backend gave a seal key")
	}
	dir := filepath.Join(t.TempDir(), "sim")
	if _, err := Open(Options{Simulation: true, SimDir: dir, CreateSim: true}); err != nil {
		t.Fatal(err)
	}
	sb, err := Open(Options{Simulation: true, SimDir: dir, VerifyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Attester.Quote(context.Background(), [64]byte{}); !errors.Is(err, ErrNoAttester) {
		t.Errorf("verify-only simulated attester: %v, want ErrNoAttester", err)
	}
}
