package dcap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
)

// Facts about the real quote, from testdata/dcap-real-quote-a/PROVENANCE.md.
const (
	realDir       = "../../testdata/dcap-real-quote-a"
	realTime      = 1671497404
	realMREnclave = "68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f"
	realMRSigner  = "9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"
)

func realQuote(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realDir, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func realVerifier(t testing.TB, at int64, getter dcap.Getter) *dcap.Verifier {
	t.Helper()
	if getter == nil {
		getter = realGetter()
	}
	v, err := dcap.New(dcap.Options{
		Roots:      []*x509Cert{dcap.IntelRoot()},
		Collateral: getter,
		Now:        func() time.Time { return time.Unix(at, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRealQuoteVerifies(t *testing.T) {
	r, err := realVerifier(t, realTime, nil).Verify(context.Background(), realQuote(t))
	if err != nil {
		t.Fatalf("real quote at its stated time: %v", err)
	}
	if r.MREnclave.String() != realMREnclave || r.MRSigner.String() != realMRSigner {
		t.Errorf("measurements %s / %s, want %s / %s", r.MREnclave, r.MRSigner, realMREnclave, realMRSigner)
	}
	if r.TCBStatus != attest.SWHardeningNeeded {
		t.Errorf("status %s, want SWHardeningNeeded", r.TCBStatus)
	}
	if r.Simulated {
		t.Error("a quote chaining to Intel's root is reported as simulated")
	}
	if len(r.AdvisoryIDs) == 0 {
		t.Error("SWHardeningNeeded with no advisory ids")
	}
	if got := r.FMSPC; len(got) != 6 || got[0] != 0x00 || got[1] != 0x60 || got[2] != 0x6A {
		t.Errorf("FMSPC %x, want 00606a000000", got)
	}
}

func TestRealQuoteTimes(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int64
	}{
		{"QE identity not yet valid", 1671194735},
		{"QE identity expired", 1673786737},
		{"PCK chain not yet valid", 1670238720},
		{"PCK chain expired", 1891163522},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := realVerifier(t, tc.at, nil).Verify(context.Background(), realQuote(t))
			if err == nil {
				t.Fatal("verified at a time it must not")
			}
			if !errors.Is(err, attest.ErrNotGenuine) || !errors.Is(err, dcap.ErrExpired) {
				t.Errorf("error %v does not wrap ErrNotGenuine and ErrExpired", err)
			}
		})
	}
}

// badChain serves the real collateral but with the bad TCB issuer chain.
type badChain struct{ pcs.Dir }

func (b badChain) GetCollateral(ctx context.Context, fmspc [6]byte, ca dcap.CA) (*dcap.Collateral, error) {
	c, err := b.Dir.GetCollateral(ctx, fmspc, ca)
	if err != nil {
		return nil, err
	}
	bad, err := os.ReadFile(filepath.Join(realDir, "tcb_info_issuer_chain_bad.pem"))
	if err != nil {
		return nil, err
	}
	c.TCBInfoIssuerChain = bad
	return c, nil
}

func TestRealQuoteBadIssuerChain(t *testing.T) {
	_, err := realVerifier(t, realTime, badChain{pcs.Dir(realDir)}).Verify(context.Background(), realQuote(t))
	var de *dcap.Error
	if !errors.As(err, &de) || de.Step != dcap.StepTCBInfo {
		t.Fatalf("bad issuer chain: got %v, want a tcb-info failure", err)
	}
}

func TestRealQuoteUntrustedRoot(t *testing.T) {
	v, err := dcap.New(dcap.Options{
		Roots:      []*x509Cert{selfSigned(t)},
		Collateral: pcs.Dir(realDir),
		Now:        func() time.Time { return time.Unix(realTime, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), realQuote(t))
	var de *dcap.Error
	if !errors.As(err, &de) || de.Step != dcap.StepPCKChain {
		t.Fatalf("real quote under another root: got %v, want a pck-chain failure", err)
	}
}

func TestNewRefusesMissingRootsAndCollateral(t *testing.T) {
	if _, err := dcap.New(dcap.Options{Collateral: pcs.Dir(realDir)}); !errors.Is(err, dcap.ErrNoRoots) {
		t.Errorf("no roots: %v", err)
	}
	if _, err := dcap.New(dcap.Options{Roots: []*x509Cert{dcap.IntelRoot()}}); err == nil {
		t.Error("no collateral source accepted")
	}
}

func realGetter() dcap.Getter { return pcs.Dir(realDir) }
