package dcap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

// swapped serves the real collateral with one body replaced.
type swapped struct {
	base                *dcap.Collateral
	tcbInfo, qeIdentity []byte
}

func (s *swapped) GetCollateral(context.Context, [6]byte, dcap.CA) (*dcap.Collateral, error) {
	c := *s.base
	c.TCBInfo, c.QEIdentity = s.tcbInfo, s.qeIdentity
	return &c, nil
}

func member(body []byte, name string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	return m[name]
}

// FuzzCollateral feeds arbitrary TCB info and QE identity bodies to the
// verifier with the real quote. Nothing may panic, and a body can only be
// accepted if its signed member is exactly Intel's.
func FuzzCollateral(f *testing.F) {
	ti, _ := os.ReadFile(filepath.Join(realDir, "tcb_info.json"))
	qi, _ := os.ReadFile(filepath.Join(realDir, "qe_identity.json"))
	f.Add(ti, qi)
	f.Add([]byte(`{"tcbInfo":{},"signature":"00"}`), []byte(`{}`))
	q := realQuote(f)
	wantTI, wantQI := member(ti, "tcbInfo"), member(qi, "enclaveIdentity")
	base, err := realGetter().GetCollateral(context.Background(), [6]byte{0, 0x60, 0x6A}, dcap.CAPlatform)
	if err != nil {
		f.Fatal(err)
	}
	// One verifier for all inputs: what it remembers is keyed by exact bytes.
	g := &swapped{base: base}
	v := realVerifier(f, realTime, g)
	f.Fuzz(func(t *testing.T, tcbInfo, qeIdentity []byte) {
		dcap.ParseTCBInfo(tcbInfo)
		dcap.ParseQEIdentity(qeIdentity)
		g.tcbInfo, g.qeIdentity = tcbInfo, qeIdentity
		if _, err := v.Verify(context.Background(), q); err == nil {
			if !bytes.Equal(member(tcbInfo, "tcbInfo"), wantTI) || !bytes.Equal(member(qeIdentity, "enclaveIdentity"), wantQI) {
				t.Fatal("verification accepted collateral whose signed content differs from Intel's")
			}
		}
	})
}

// FuzzPCKExtensions parses arbitrary DER as the SGX extension; a parse
// that succeeds must marshal back to something that parses the same.
func FuzzPCKExtensions(f *testing.F) {
	ext := &dcap.PCKExtensions{CompSVN: [16]uint8{1, 2, 3}, PCESVN: 13, FMSPC: [6]byte{1}}
	der, _ := ext.Marshal()
	f.Add(der)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := dcap.ParseSGXExtension(b)
		if err != nil {
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		e2, err := dcap.ParseSGXExtension(out)
		if err != nil || e2.FMSPC != e.FMSPC || e2.CompSVN != e.CompSVN || e2.PCESVN != e.PCESVN || e2.PPID != e.PPID {
			t.Fatalf("re-marshalled extension differs: %v", err)
		}
	})
}
