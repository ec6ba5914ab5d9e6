package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

var testID = Identity{MREnclave: attest.Hash32{1, 2, 3}, ISVProdID: 7, ISVSVN: 3}

func newPlatform(t testing.TB, opts InitOptions) *Platform {
	t.Helper()
	p, err := Init(filepath.Join(t.TempDir(), "sim"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func policyFor(p *Platform) *attest.Policy {
	return &attest.Policy{MRSigner: []attest.Hash32{p.MRSigner()}, AllowSimulated: true}
}

func quote(t testing.TB, p *Platform, id Identity) []byte {
	t.Helper()
	var rd [64]byte
	copy(rd[:], "report data")
	q, err := p.Quote(id, rd)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestSimulatedQuoteVerifies(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	v, err := p.Verifier(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := attest.VerifyAndCheck(context.Background(), v, policyFor(p), quote(t, p, testID))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Simulated || r.TCBStatus != attest.UpToDate || r.MREnclave != testID.MREnclave || r.ISVProdID != 7 || r.ISVSVN != 3 {
		t.Errorf("report %+v", r)
	}
	if string(r.ReportData[:11]) != "report data" {
		t.Errorf("report data %q", r.ReportData[:11])
	}
	// The same platform loaded from disk quotes the same way.
	p2, err := Load(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), quote(t, p2, testID)); err != nil {
		t.Fatalf("quote from the loaded platform: %v", err)
	}
}

func TestSimulatedQuoteRefusedUnderIntelRoot(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	v, err := dcap.New(dcap.Options{Roots: []*x509Cert{dcap.IntelRoot()}, Collateral: p.Collateral()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), quote(t, p, testID))
	var de *dcap.Error
	if !errors.As(err, &de) || de.Step != dcap.StepPCKChain {
		t.Fatalf("simulated quote under Intel's root: %v", err)
	}
}

func TestQuoteFromOtherPlatformRefused(t *testing.T) {
	a, b := newPlatform(t, InitOptions{}), newPlatform(t, InitOptions{})
	v, _ := a.Verifier(nil)
	if _, err := v.Verify(context.Background(), quote(t, b, testID)); !errors.Is(err, attest.ErrNotGenuine) {
		t.Fatalf("quote from platform B verified under A's root: %v", err)
	}
}

func TestRevokedPCKRefused(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	v, _ := p.Verifier(nil)
	q := quote(t, p, testID)
	if _, err := v.Verify(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if err := p.RevokePCK(time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), q)
	if !errors.Is(err, dcap.ErrRevoked) || !errors.Is(err, attest.ErrNotGenuine) {
		t.Fatalf("quote from a revoked PCK: %v", err)
	}
}

func TestOutOfDatePlatform(t *testing.T) {
	p := newPlatform(t, InitOptions{OutOfDate: true})
	v, _ := p.Verifier(nil)
	r, err := v.Verify(context.Background(), quote(t, p, testID))
	if err != nil {
		t.Fatal(err)
	}
	if r.TCBStatus != attest.OutOfDate || len(r.AdvisoryIDs) != 1 || r.AdvisoryIDs[0] != OutOfDateAdvisory {
		t.Fatalf("status %s advisories %v", r.TCBStatus, r.AdvisoryIDs)
	}
	var pe *attest.PolicyError
	if err := policyFor(p).Check(r); !errors.As(err, &pe) || pe.Rule != "tcb-status" {
		t.Fatalf("default policy on OutOfDate: %v", err)
	}
	pol := policyFor(p)
	pol.TCBStatuses = []attest.TCBStatus{attest.OutOfDate}
	if err := pol.Check(r); err != nil {
		t.Fatalf("policy that accepts OutOfDate: %v", err)
	}
}

func TestDebugRefusedByDefault(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	v, _ := p.Verifier(nil)
	id := testID
	id.Debug = true
	r, err := v.Verify(context.Background(), quote(t, p, id))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Debug {
		t.Fatal("debug attribute not reported")
	}
	var pe *attest.PolicyError
	if err := policyFor(p).Check(r); !errors.As(err, &pe) || pe.Rule != "debug" {
		t.Fatalf("default policy on a debug enclave: %v", err)
	}
}

func TestCollateralExpires(t *testing.T) {
	p := newPlatform(t, InitOptions{CollateralValidity: time.Hour})
	v, _ := p.Verifier(func() time.Time { return time.Now().Add(2 * time.Hour) })
	if _, err := v.Verify(context.Background(), quote(t, p, testID)); !errors.Is(err, dcap.ErrExpired) {
		t.Fatalf("expired collateral: %v", err)
	}
}

func TestRequireCRLs(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	os.Remove(filepath.Join(p.Dir(), DirCollateral, "pck_crl.der"))
	v, _ := dcap.New(dcap.Options{Roots: p.Roots(), Collateral: p.Collateral(), RequireCRLs: true})
	var de *dcap.Error
	if _, err := v.Verify(context.Background(), quote(t, p, testID)); !errors.As(err, &de) || de.Step != dcap.StepCRL {
		t.Fatalf("missing CRL with RequireCRLs: %v", err)
	}
}

func TestInitRefusesExistingPlatform(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	if _, err := Init(p.Dir(), InitOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Fatal("Load of an empty directory succeeded")
	}
}

func TestPrivateKeysNotWorldReadable(t *testing.T) {
	p := newPlatform(t, InitOptions{})
	entries, err := os.ReadDir(filepath.Join(p.Dir(), DirPrivate))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", e.Name(), info.Mode())
		}
	}
}
