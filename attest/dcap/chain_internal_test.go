package dcap

import (
	"bytes"
	"encoding/pem"
	"os"
	"testing"
)

// FuzzCanonicalPEM: whatever splitCanonicalPEM accepts is exactly the
// canonical encoding of what it returns (plus Intel's trailing NULs), so a
// chain has one spelling; and it never panics.
func FuzzCanonicalPEM(f *testing.F) {
	for _, p := range []string{"../../testdata/dcap-real-quote-a/tcb_info_issuer_chain.pem", "intel_sgx_root_ca.pem"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, false)
			f.Add(append(bytes.Clone(b), 0), true)
		}
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, nuls bool) {
		ders, err := splitCanonicalPEM(data, nuls)
		if err != nil {
			return
		}
		var re []byte
		for _, d := range ders {
			re = append(re, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		rest := data[len(re):]
		if !bytes.Equal(data[:len(re)], re) || len(bytes.Trim(rest, "\x00")) != 0 || (!nuls && len(rest) != 0) {
			t.Fatalf("accepted %q, which is not the canonical %q", data, re)
		}
	})
}

func TestCanonicalPEMStrictPrefixes(t *testing.T) {
	b, err := os.ReadFile("../../testdata/dcap-real-quote-a/tcb_info_issuer_chain.pem")
	if err != nil {
		t.Fatal(err)
	}
	ders, err := splitCanonicalPEM(b, false)
	if err != nil || len(ders) != 2 {
		t.Fatalf("Intel's TCB issuer chain: %v (%d certificates)", err, len(ders))
	}
	// Every strict prefix either fails or holds fewer certificates (the
	// shape check then refuses it).
	for n := range b {
		if d, err := splitCanonicalPEM(b[:n], false); err == nil && len(d) >= 2 {
			t.Errorf("prefix of %d bytes parses as %d certificates", n, len(d))
		}
	}
}
