package atls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// FuzzTaggedEvidence feeds arbitrary bytes as Gramine's tagged evidence
// and claims. Nothing may panic, and claims are accepted only if they
// carry exactly the key hash asked for.
func FuzzTaggedEvidence(f *testing.F) {
	c, _ := claims([]byte("spki"))
	ev, _ := cborEnc.Marshal(map[string]any{})
	f.Add(ev, c)
	f.Add([]byte{0xd9, 0xea, 0x60, 0x82, 0x41, 0x00, 0x41, 0x00}, c)
	key := sha256.Sum256([]byte("spki"))
	f.Fuzz(func(t *testing.T, evidence, cl []byte) {
		parseTaggedEvidence(evidence)
		if checkClaims(cl, key) == nil {
			want, _ := claims([]byte("spki"))
			var m map[string][]byte
			if cborDec.Unmarshal(cl, &m) != nil {
				t.Fatalf("accepted claims that are not a map: %x (want like %x)", cl, want)
			}
		}
	})
}

func TestEvidenceOfGarbageCertificate(t *testing.T) {
	cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{}, GramineStandard)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cert.Leaf.Extensions {
		if cert.Leaf.Extensions[i].Id.Equal(OIDTaggedEvidence) {
			v := cert.Leaf.Extensions[i].Value
			for n := 0; n < len(v); n += 97 {
				cert.Leaf.Extensions[i].Value = v[:n]
				if _, _, err := VerifyCertificate(context.Background(), cert.Leaf, verifier, policyFor(serverID)); err == nil {
					t.Fatalf("evidence truncated to %d bytes accepted", n)
				}
			}
		}
	}
}

// FuzzCertificateEvidence feeds arbitrary values for the RA-TLS
// extensions of a certificate (which ones are present chosen by the bits
// of present, the legacy one under either encoding). Nothing may panic;
// Evidence must be exactly Extract's first entry (no falling back past an
// unusable preferred format); the formats come in preference order, once
// each; and every usable entry's report data binds the certificate's key.
func FuzzCertificateEvidence(f *testing.F) {
	spki := []byte("a SubjectPublicKeyInfo")
	c, _ := claims(spki)
	ev, _ := cborEnc.Marshal(cbor.Tag{Number: taggedEvidenceTag, Content: [][]byte{[]byte("quote"), c}})
	other, _ := claims([]byte("another key"))
	evOther, _ := cborEnc.Marshal(cbor.Tag{Number: taggedEvidenceTag, Content: [][]byte{[]byte("quote"), other}})
	ego := sgxquote.AddEGoHeader([]byte("quote"))
	for present := range byte(16) {
		f.Add(present, ev, []byte("quote"), ego)
		f.Add(present, evOther, []byte{}, ego[:15])
	}
	f.Fuzz(func(t *testing.T, present byte, std, legacy, egoReport []byte) {
		cert := &x509.Certificate{RawSubjectPublicKeyInfo: spki}
		if present&1 != 0 {
			cert.Extensions = append(cert.Extensions, pkix.Extension{Id: OIDTaggedEvidence, Value: std})
		}
		if present&2 != 0 {
			cert.Extensions = append(cert.Extensions, pkix.Extension{Id: OIDGramineQuote, Value: legacy})
		}
		if present&4 != 0 {
			cert.Extensions = append(cert.Extensions, pkix.Extension{Id: OIDGramineQuoteClean, Value: legacy})
		}
		if present&8 != 0 {
			cert.Extensions = append(cert.Extensions, pkix.Extension{Id: OIDEGoReport, Value: egoReport})
		}
		found := Extract(cert)
		q, rd, format, err := Evidence(cert)
		if len(found) == 0 {
			if present&15 != 0 || !errors.Is(err, ErrNoEvidence) {
				t.Fatalf("present %04b: nothing found, Evidence says %v", present, err)
			}
			return
		}
		first := found[0]
		if (err != nil) != (first.Err != nil) {
			t.Fatalf("Evidence error %v, first entry's %v", err, first.Err)
		}
		if err == nil && (format != first.Format || !bytes.Equal(q, first.Quote) || rd != first.ReportData) {
			t.Fatalf("Evidence gave %v, Extract's first entry is %v", format, first.Format)
		}
		if present&6 == 6 {
			for _, fd := range found {
				if fd.Format == GramineLegacy && fd.Err == nil {
					t.Fatal("legacy extension under both encodings accepted")
				}
			}
		}
		keyHash := sha256.Sum256(spki)
		for i, fd := range found {
			if i > 0 && fd.Format <= found[i-1].Format {
				t.Fatalf("formats out of order: %s", describe(found))
			}
			if fd.Err != nil {
				continue
			}
			if [32]byte(fd.ReportData[32:]) != [32]byte{} {
				t.Fatalf("%v: report data has a non-zero upper half", fd.Format)
			}
			want := keyHash
			if fd.Format == GramineStandard {
				// Usable only if its claims name this key: then they are
				// exactly the claims for it, and the report data their hash.
				if _, cl, _ := parseTaggedEvidence(std); !bytes.Equal(cl, c) {
					t.Fatalf("accepted claims %x for another key", cl)
				}
				want = sha256.Sum256(c)
			}
			if [32]byte(fd.ReportData[:32]) != want {
				t.Fatalf("%v: report data does not bind the key", fd.Format)
			}
		}
	})
}
