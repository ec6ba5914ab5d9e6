package dcap_test

import (
	"context"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// BenchmarkVerifyReal verifies the real Intel quote with its collateral
// cached in memory: every signature and chain is checked on each call.
func BenchmarkVerifyReal(b *testing.B) {
	q := realQuote(b)
	v := realVerifier(b, realTime, &pcs.Cache{Getter: pcs.Dir(realDir), Now: func() time.Time { return time.Unix(realTime, 0) }})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySimulated verifies a simulated quote (with CRLs) with
// collateral cached in memory.
func BenchmarkVerifySimulated(b *testing.B) {
	p, err := sim.Init(b.TempDir()+"/sim", sim.InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	q, err := p.Quote(sim.Identity{}, [64]byte{})
	if err != nil {
		b.Fatal(err)
	}
	v, err := dcap.New(dcap.Options{Roots: p.Roots(), Collateral: &pcs.Cache{Getter: p.Collateral()}, RequireCRLs: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
