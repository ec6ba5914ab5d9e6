package explorer

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// Field is one field of a quote, where it sits and what it holds.
type Field struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Offset  int    `json:"offset"`
	Size    int    `json:"size"`
	// Hex is the field's bytes as they appear in the quote (long fields
	// are cut, with Size saying how long they are).
	Hex string `json:"hex"`
	// Value is the field decoded, when that says more than the bytes.
	Value string `json:"value,omitempty"`
	Note  string `json:"note,omitempty"`
}

const maxFieldHex = 128 // bytes shown in full; longer fields are cut

// layout lays out a quote that sgxquote.Parse accepted: every offset
// follows from the fixed sizes and the two length fields Parse checked.
// b is the quote's bytes.
func layout(b []byte, q *sgxquote.Quote) []Field {
	var out []Field
	add := func(section, name string, off, size int, value, note string) {
		h := b[off : off+size]
		s := hex.EncodeToString(h)
		if size > maxFieldHex {
			s = hex.EncodeToString(h[:maxFieldHex]) + "…"
		}
		out = append(out, Field{Section: section, Name: name, Offset: off, Size: size, Hex: s, Value: value, Note: note})
	}
	h := q.Header
	add("header", "version", 0, 2, fmt.Sprint(h.Version), "3: ECDSA quote v3")
	add("header", "attestation key type", 2, 2, fmt.Sprint(h.AttestationKeyType), "2: ECDSA-256 with P-256")
	add("header", "TEE type", 4, 4, fmt.Sprintf("%#x", h.TEEType), "0: SGX")
	add("header", "QE SVN", 8, 2, fmt.Sprint(h.QESVN), "")
	add("header", "PCE SVN", 10, 2, fmt.Sprint(h.PCESVN), "")
	add("header", "QE vendor id", 12, 16, "", "939a7233f79c4ca9940a0db3957f0607: Intel")
	add("header", "user data", 28, 20, "", "first 16 bytes: platform id of the QE")
	body("ISV enclave report", sgxquote.HeaderSize, &q.Body, add)
	add("signature data", "signature data length", sgxquote.SignedSize, 4, fmt.Sprint(len(b)-sgxquote.SignedSize-4), "")
	sd := sgxquote.SignedSize + 4
	add("signature data", "ISV report signature", sd, 64, "", "ECDSA P-256 r ‖ s over header ‖ ISV report, by the attestation key")
	add("signature data", "attestation key", sd+64, 64, "", "P-256 point X ‖ Y")
	qe := sd + 128
	body("QE report", qe, &q.QEReport, add)
	add("signature data", "QE report signature", qe+sgxquote.ReportBodySize, 64, "", "by the PCK leaf key")
	auth := qe + sgxquote.ReportBodySize + 64
	add("signature data", "QE auth data length", auth, 2, fmt.Sprint(len(q.QEAuthData)), "")
	if len(q.QEAuthData) > 0 {
		add("signature data", "QE auth data", auth+2, len(q.QEAuthData), "", "hashed with the attestation key into the QE report data")
	}
	cd := auth + 2 + len(q.QEAuthData)
	add("certification data", "type", cd, 2, fmt.Sprint(q.CertDataType), "5: PEM PCK chain (leaf ‖ PCK CA ‖ root)")
	add("certification data", "length", cd+2, 4, fmt.Sprint(len(q.CertData)), "")
	if len(q.CertData) > 0 {
		add("certification data", "PCK certificate chain", cd+6, len(q.CertData), firstLine(q.CertData), "")
	}
	return out
}

func body(section string, base int, r *sgxquote.ReportBody, add func(section, name string, off, size int, value, note string)) {
	add(section, "CPUSVN", base+0, 16, "", "")
	add(section, "MISCSELECT", base+16, 4, fmt.Sprintf("%#08x", r.MiscSelect), "")
	add(section, "reserved", base+20, 28, "", "")
	add(section, "ATTRIBUTES", base+48, 16, attrString(r), "flags u64 ‖ XFRM u64, little-endian")
	add(section, "MRENCLAVE", base+64, 32, "", "measurement of the enclave's code and data")
	add(section, "reserved", base+96, 32, "", "")
	add(section, "MRSIGNER", base+128, 32, "", "hash of the enclave signer's public key")
	add(section, "reserved", base+160, 96, "", "")
	add(section, "ISVPRODID", base+256, 2, fmt.Sprint(r.ISVProdID), "")
	add(section, "ISVSVN", base+258, 2, fmt.Sprint(r.ISVSVN), "")
	add(section, "reserved", base+260, 60, "", "")
	add(section, "REPORTDATA", base+320, 64, "", "64 bytes the enclave chose: binds a key, a nonce or a TLS session")
}

func attrString(r *sgxquote.ReportBody) string {
	f := r.Flags()
	var names []string
	for _, a := range []struct {
		bit  uint64
		name string
	}{{sgxquote.AttrInit, "INIT"}, {sgxquote.AttrDebug, "DEBUG"}, {sgxquote.AttrMode64Bit, "MODE64BIT"}, {sgxquote.AttrProvisionKey, "PROVISIONKEY"}, {sgxquote.AttrEInitTokenKey, "EINITTOKENKEY"}, {sgxquote.AttrKSS, "KSS"}} {
		if f&a.bit != 0 {
			names = append(names, a.name)
		}
	}
	if len(names) == 0 {
		return "no flags"
	}
	return strings.Join(names, " | ")
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return s + " …"
}
