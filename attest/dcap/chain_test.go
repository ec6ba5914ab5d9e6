package dcap_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// These run without node: the shapes of certificate chain the issue names,
// each refused with its step, its position and the right sentinel. Every
// one was accepted before the chains were fixed in shape.

func withCertData(t *testing.T, quote, certData []byte) []byte {
	t.Helper()
	q, err := sgxquote.Parse(quote)
	if err != nil {
		t.Fatal(err)
	}
	q.CertData = certData
	b, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPCKChainShapes(t *testing.T) {
	for _, b := range chainBases(t) {
		fake := impostor(t, b.root)
		leaf, ca, root, signer := b.leaf, b.pckCA, b.root, b.tcbSigner
		for _, tc := range []struct {
			name  string
			data  []byte
			want  error
			index int // 0: the chain as a whole
		}{
			{"reordered", pemOf(ca, leaf, root), dcap.ErrChainShape, 1},
			{"leaf duplicated", pemOf(leaf, leaf, ca, root), dcap.ErrChainShape, 0},
			{"CA duplicated", pemOf(leaf, ca, ca, root), dcap.ErrChainShape, 0},
			{"root duplicated", pemOf(leaf, ca, root, root), dcap.ErrChainShape, 0},
			{"root missing", pemOf(leaf, ca), dcap.ErrChainShape, 0},
			{"TCB signing certificate appended", pemOf(leaf, ca, root, signer), dcap.ErrChainShape, 0},
			{"TCB signing certificate for the root", pemOf(leaf, ca, signer), dcap.ErrUntrustedRoot, 3},
			{"impostor root for the root", pemOf(leaf, ca, fake), dcap.ErrUntrustedRoot, 3},
			{"impostor root appended", pemOf(leaf, ca, root, fake), dcap.ErrChainShape, 0},
			{"CRLF line ends", reframe(pemOf(leaf, ca, root), 64, "\r\n"), dcap.ErrPEMFraming, 0},
			{"text after the chain", append(pemOf(leaf, ca, root), "x"...), dcap.ErrPEMFraming, 0},
		} {
			_, err := b.v.Verify(b.ctx(), withCertData(t, b.quote, tc.data))
			var de *dcap.Error
			var ce *dcap.ChainError
			if !errors.As(err, &de) || de.Step != dcap.StepPCKChain || !errors.Is(err, tc.want) || !errors.As(err, &ce) || ce.Index != tc.index {
				t.Errorf("%s: %s: got %v; want a pck-chain failure at certificate %d wrapping %v", b.name, tc.name, err, tc.index, tc.want)
			}
		}
		// The exact chain verifies, with or without Intel's trailing NUL.
		for _, data := range [][]byte{pemOf(leaf, ca, root), append(pemOf(leaf, ca, root), 0)} {
			if _, err := b.v.Verify(b.ctx(), withCertData(t, b.quote, data)); err != nil {
				t.Errorf("%s: the exact chain is refused: %v", b.name, err)
			}
		}
	}
}

// TestRealQuoteRootBlockEveryByte: hundreds of single-byte changes inside
// the third PEM block (the root the quote carries) used to be accepted,
// because the chain builder never looked at it. Every one is refused now.
func TestRealQuoteRootBlockEveryByte(t *testing.T) {
	b := realBase(t)
	q := b.quote
	start := bytes.LastIndex(q, []byte("-----BEGIN CERTIFICATE-----"))
	for i := start; i < len(q); i++ {
		for _, mask := range []byte{0x01, 0x80} {
			m := slices.Clone(q)
			m[i] ^= mask
			if _, err := b.v.Verify(b.ctx(), m); err == nil {
				t.Errorf("byte %d ^ %#02x inside the root certificate block: still verifies", i, mask)
			}
		}
	}
}

func TestIssuerChainShapes(t *testing.T) {
	for _, b := range chainBases(t) {
		fake := impostor(t, b.root)
		for _, tc := range []struct {
			name string
			data []byte
			want error
		}{
			{"signer only", pemOf(b.tcbSigner), dcap.ErrChainShape},
			{"signer and an impostor root", pemOf(b.tcbSigner, fake), dcap.ErrUntrustedRoot},
			{"impostor root appended", pemOf(b.tcbSigner, b.root, fake), dcap.ErrChainShape},
			{"extra certificate", pemOf(b.tcbSigner, b.root, b.leaf), dcap.ErrChainShape},
			{"reordered", pemOf(b.root, b.tcbSigner), dcap.ErrUntrustedRoot},
			{"PCK CA for the signer", pemOf(b.pckCA, b.root), dcap.ErrChainShape},
		} {
			for _, field := range []string{"tcb", "qe"} {
				col := *b.col
				step := dcap.StepTCBInfo
				if field == "tcb" {
					col.TCBInfoIssuerChain = tc.data
				} else {
					col.QEIdentityIssuerChain, step = tc.data, dcap.StepQEIdentity
				}
				_, err := b.v.Verify(context.WithValue(context.Background(), walkCollateral{}, &col), b.quote)
				var de *dcap.Error
				if !errors.As(err, &de) || de.Step != step || !errors.Is(err, tc.want) {
					t.Errorf("%s: %s issuer chain %s: got %v; want a %s failure wrapping %v", b.name, field, tc.name, err, step, tc.want)
				}
			}
		}
	}
}

// With two trusted roots, collateral signed under one cannot vouch for a
// quote that chains to the other: "the same root as the quote's" is a
// check that can fail.
func TestIssuerChainMustEndAtTheQuotesRoot(t *testing.T) {
	simb := simBase(t)
	other := newSim(t, sim.InitOptions{})
	oc, err := other.Collateral().GetCollateral(context.Background(), sim.FMSPC, dcap.CAProcessor)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dcap.New(dcap.Options{
		Roots:      []*x509.Certificate{simb.root, other.Root()},
		Collateral: walkGetter{},
		Now:        func() time.Time { return simb.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(*dcap.Collateral)
		step dcap.Step
	}{
		{"TCB info issuer chain", func(c *dcap.Collateral) { c.TCBInfoIssuerChain = oc.TCBInfoIssuerChain }, dcap.StepTCBInfo},
		{"QE identity issuer chain", func(c *dcap.Collateral) { c.QEIdentityIssuerChain = oc.QEIdentityIssuerChain }, dcap.StepQEIdentity},
		{"PCK CRL issuer chain", func(c *dcap.Collateral) { c.PCKCRLIssuerChain = oc.PCKCRLIssuerChain }, dcap.StepCRL},
	} {
		col := *simb.col
		tc.set(&col)
		_, err := v.Verify(context.WithValue(context.Background(), walkCollateral{}, &col), simb.quote)
		var de *dcap.Error
		if !errors.As(err, &de) || de.Step != tc.step || !(errors.Is(err, dcap.ErrUntrustedRoot) || errors.Is(err, dcap.ErrChainShape)) {
			t.Errorf("%s of another trusted platform: %v", tc.name, err)
		}
	}
	// Both platforms trusted, each quote with its own collateral verifies.
	if _, err := v.Verify(simb.ctx(), simb.quote); err != nil {
		t.Errorf("own collateral: %v", err)
	}
}

// Every byte of the real quote, flipped, is refused: the Go-only half of
// the differential walk, for machines without node.
func TestRealQuoteEveryByteFlipped(t *testing.T) {
	b := realBase(t)
	step := 1
	if testing.Short() {
		step = 13
	}
	for i := 0; i < len(b.quote); i += step {
		for _, mask := range []byte{0x01, 0x80} {
			m := slices.Clone(b.quote)
			m[i] ^= mask
			r, err := b.v.Verify(b.ctx(), m)
			if err == nil {
				t.Errorf("byte %d ^ %#02x (%s): still verifies (%s)", i, mask, region(b.quote, i), r.TCBStatus)
			} else if !errors.Is(err, attest.ErrNotGenuine) {
				t.Errorf("byte %d: %v does not wrap ErrNotGenuine", i, err)
			}
		}
	}
	authLen := int(binary.LittleEndian.Uint16(b.quote[1012:]))
	if region(b.quote, 1014+authLen+6) != "certification data" {
		t.Fatal("region map is off")
	}
}

func chainBases(t *testing.T) []*walkBase {
	t.Helper()
	return walkBases(t)
}

// realBase is the first real quote in testdata; simBase a simulated one.
func realBase(t *testing.T) *walkBase { return walkBases(t)[0] }

func simBase(t *testing.T) *walkBase {
	for _, b := range walkBases(t) {
		if b.simulated {
			return b
		}
	}
	t.Fatal("no simulated base")
	return nil
}

func (b *walkBase) ctx() context.Context {
	return context.WithValue(context.Background(), walkCollateral{}, b.col)
}
