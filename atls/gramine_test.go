package atls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// The OIDs' bytes as they appear in a certificate, tag and length included.
var (
	// Gramine's legacy OID: its constant (06 09 …) wrapped again by Mbed TLS.
	derGramineLegacyOID = []byte{0x06, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x8A, 0x39, 0x06}
	// The 11 bytes Gramine's verifier searches for (its constant).
	gramineLegacyNeedle = derGramineLegacyOID[2:]
	// 2.23.133.5.4.9, which Gramine's verifier searches for with its tag and length.
	derTaggedEvidenceOID = []byte{0x06, 0x06, 0x67, 0x81, 0x05, 0x05, 0x04, 0x09}
)

// gramineCert lays out a certificate byte for byte as Gramine's
// ra_tls_attest.c has Mbed TLS write it (facts from Gramine's source and
// a real certificate; no code copied): version 3, serial 1,
// ecdsa-with-SHA256 (with a P-384 key), issuer = subject =
// CN=RATLS,O=GramineDevelopers,C=US (UTF8String, UTF8String,
// PrintableString), validity 2001-01-01 00:00:00 to 2030-12-31 23:59:59
// (UTCTime), then the extensions in the order Gramine sets them:
// basicConstraints (CA:FALSE, empty SEQUENCE), subject key id and
// authority key id (SHA-1 of the public key bits), the legacy quote under
// the double-wrapped OID, and, when evidence is not nil (Gramine ≥ 1.8),
// the TCG DICE tagged evidence. None is critical, so none carries the
// critical BOOLEAN.
func gramineCert(t testing.TB, key *ecdsa.PrivateKey, quote, evidence []byte) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	point, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	keyID := sha1.Sum(point)
	sigAlg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
	}
	name := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, rdn := range []struct {
				oid asn1.ObjectIdentifier
				tag cbasn1.Tag
				val string
			}{
				{asn1.ObjectIdentifier{2, 5, 4, 3}, cbasn1.UTF8String, "RATLS"},
				{asn1.ObjectIdentifier{2, 5, 4, 10}, cbasn1.UTF8String, "GramineDevelopers"},
				{asn1.ObjectIdentifier{2, 5, 4, 6}, cbasn1.PrintableString, "US"},
			} {
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(rdn.oid)
						b.AddASN1(rdn.tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(rdn.val)) })
					})
				})
			}
		})
	}
	// ext writes one Extension with the OID given as raw DER (tag and
	// length included), as Mbed TLS does with whatever bytes it is given.
	ext := func(b *cryptobyte.Builder, derOID, value []byte) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(derOID)
			b.AddASN1OctetString(value)
		})
	}
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(2) })
		b.AddASN1Int64(1)
		sigAlg(b)
		name(b)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.UTCTime, func(b *cryptobyte.Builder) { b.AddBytes([]byte("010101000000Z")) })
			b.AddASN1(cbasn1.UTCTime, func(b *cryptobyte.Builder) { b.AddBytes([]byte("301231235959Z")) })
		})
		name(b)
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				ext(b, []byte{0x06, 0x03, 0x55, 0x1D, 0x13}, []byte{0x30, 0x00})
				ext(b, []byte{0x06, 0x03, 0x55, 0x1D, 0x0E}, append([]byte{0x04, 0x14}, keyID[:]...))
				ext(b, []byte{0x06, 0x03, 0x55, 0x1D, 0x23}, append([]byte{0x30, 0x16, 0x80, 0x14}, keyID[:]...))
				ext(b, derGramineLegacyOID, quote)
				if evidence != nil {
					ext(b, derTaggedEvidenceOID, evidence)
				}
			})
		})
	})
	tbsDER := tbs.BytesOrPanic()
	h := sha256.Sum256(tbsDER)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	var cert cryptobyte.Builder
	cert.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		sigAlg(b)
		b.AddASN1BitString(sig)
	})
	return cert.BytesOrPanic()
}

// gramineFind locates an extension value the way Gramine's verifier does
// (ra_tls_verify_common.c, find_oid_in_cert_extensions; re-implemented
// from its description): search the certificate's bytes for needle, skip
// an optional BOOLEAN FALSE, then require an OCTET STRING whose length is
// in the two-byte long form (0x82), 128 to 65535 bytes. (Gramine searches
// the extensions only; the whole certificate is the same here, where the
// needle occurs nowhere else.)
func gramineFind(der, needle []byte) ([]byte, bool) {
	i := bytes.Index(der, needle)
	if i < 0 {
		return nil, false
	}
	p := der[i+len(needle):]
	if len(p) >= 3 && p[0] == 0x01 {
		if p[1] != 0x01 || p[2] != 0x00 {
			return nil, false
		}
		p = p[3:]
	}
	if len(p) < 4 || p[0] != 0x04 || p[1] != 0x82 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if n < 128 || n > len(p)-4 {
		return nil, false
	}
	return p[4 : 4+n], true
}

// simQuote quotes rd on the simulated platform as the server enclave.
func simQuote(t testing.TB, rd [64]byte) []byte {
	t.Helper()
	q, err := platform.Attester(serverID).Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// gramineVector builds a Gramine certificate with simulated quotes: the
// legacy-only layout of Gramine 1.4–1.7 (standard false) or the
// legacy + standard layout of Gramine ≥ 1.8.
func gramineVector(t testing.TB, standard bool) (der []byte, legacyQuote, evidence []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	var rd [64]byte
	h := sha256.Sum256(spki)
	copy(rd[:], h[:])
	legacyQuote = simQuote(t, rd)
	if standard {
		c := gramineClaims(h)
		var crd [64]byte
		ch := sha256.Sum256(c)
		copy(crd[:], ch[:])
		evidence = cborHead(6, taggedEvidenceTag)
		evidence = append(evidence, cborHead(4, 2)...)
		stdQuote := simQuote(t, crd)
		evidence = append(append(evidence, cborHead(2, uint64(len(stdQuote)))...), stdQuote...)
		evidence = append(append(evidence, cborHead(2, uint64(len(c)))...), c...)
	}
	return gramineCert(t, key, legacyQuote, evidence), legacyQuote, evidence
}

// cborHead is a CBOR item head in its shortest form (RFC 8949 §3), as
// libcbor writes definite-length items.
func cborHead(major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return []byte{m | byte(n)}
	case n <= 0xFF:
		return []byte{m | 24, byte(n)}
	case n <= 0xFFFF:
		return []byte{m | 25, byte(n >> 8), byte(n)}
	case n <= 0xFFFFFFFF:
		return binary.BigEndian.AppendUint32([]byte{m | 26}, uint32(n))
	}
	return binary.BigEndian.AppendUint64([]byte{m | 27}, n)
}

// gramineClaims is Gramine's serialized claims, built by hand from its
// documented layout: map(1) { text "pubkey-hash": bstr(array(2) [uint 1,
// bstr SHA-256(SPKI)]) }.
func gramineClaims(keyHash [32]byte) []byte {
	entry := append(cborHead(4, 2), cborHead(0, 1)...)
	entry = append(append(entry, cborHead(2, 32)...), keyHash[:]...)
	c := cborHead(5, 1)
	c = append(append(c, cborHead(3, 11)...), "pubkey-hash"...)
	return append(append(c, cborHead(2, uint64(len(entry)))...), entry...)
}

// describe summarizes Extract's result without the quotes.
func describe(found []Found) string {
	s := ""
	for _, f := range found {
		s += fmt.Sprintf("[%v %s err=%v] ", f.Format, f.OID, f.Err)
	}
	return s
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("Go cannot parse the certificate: %v", err)
	}
	return c
}

// assertGramineLegacyBytes checks that the legacy extension sits in der
// exactly as Gramine writes it, and that the clean encoding appears
// nowhere as an extension id.
func assertGramineLegacyBytes(t *testing.T, der []byte) {
	t.Helper()
	want := append(append([]byte{}, derGramineLegacyOID...), 0x04, 0x82)
	if !bytes.Contains(der, want) {
		t.Fatalf("certificate lacks the legacy extension id %X followed by a long-form OCTET STRING", want)
	}
	for i := 0; ; {
		j := bytes.Index(der[i:], gramineLegacyNeedle)
		if j < 0 {
			break
		}
		if at := i + j; at < 2 || der[at-2] != 0x06 || der[at-1] != 0x0B {
			t.Fatalf("the bytes %X occur at %d without Gramine's outer 06 0B", gramineLegacyNeedle, at)
		}
		i += j + 1
	}
}

func TestGramineLegacyOnlyVector(t *testing.T) {
	der, quote, _ := gramineVector(t, false)
	assertGramineLegacyBytes(t, der)
	if bytes.Contains(der, derTaggedEvidenceOID) {
		t.Fatal("a Gramine 1.7 certificate has no tagged evidence")
	}
	cert := mustParse(t, der)
	found := Extract(cert)
	if len(found) != 1 || found[0].Format != GramineLegacy || !found[0].OID.Equal(OIDGramineQuote) || found[0].Err != nil {
		t.Fatalf("Extract: %s", describe(found))
	}
	if found[0].OID.String() != "0.6.9.42.840.113741.1337.6" {
		t.Errorf("legacy OID reads as %s", found[0].OID)
	}
	if !bytes.Equal(found[0].Quote, quote) {
		t.Error("Extract returned another quote than the certificate carries")
	}
	r, f, err := VerifyCertificate(context.Background(), cert, verifier, policyFor(serverID))
	if err != nil || f != GramineLegacy || r.MREnclave != serverID.MREnclave {
		t.Fatalf("verify: %v %v %v", f, err, r)
	}
	if _, _, err := VerifyCertificate(context.Background(), transplant(t, cert), verifier, policyFor(serverID)); err == nil {
		t.Fatal("the legacy quote moved to a certificate for another key was accepted")
	}
	if _, _, err := VerifyCertificate(context.Background(), cert, verifier, policyFor(clientID)); err == nil {
		t.Fatal("a policy for another enclave accepted it")
	}
}

func TestGramineStandardAndLegacyVector(t *testing.T) {
	der, quote, evidence := gramineVector(t, true)
	assertGramineLegacyBytes(t, der)
	li, si := bytes.Index(der, derGramineLegacyOID), bytes.Index(der, derTaggedEvidenceOID)
	if li < 0 || si < 0 || li > si {
		t.Fatalf("legacy extension at %d, standard at %d: Gramine writes legacy first", li, si)
	}
	cert := mustParse(t, der)
	found := Extract(cert)
	if len(found) != 2 || found[0].Format != GramineStandard || found[1].Format != GramineLegacy || found[0].Err != nil || found[1].Err != nil {
		t.Fatalf("Extract: %s", describe(found))
	}
	if !bytes.Equal(found[1].Quote, quote) {
		t.Error("legacy quote differs")
	}
	// What Gramine's own verifier would extract is what we extract.
	if v, ok := gramineFind(der, derTaggedEvidenceOID); !ok || !bytes.Equal(v, evidence) {
		t.Error("Gramine-style search does not find the tagged evidence")
	}
	r, f, err := VerifyCertificate(context.Background(), cert, verifier, policyFor(serverID))
	if err != nil || f != GramineStandard || r.MREnclave != serverID.MREnclave {
		t.Fatalf("verify: %v %v", f, err)
	}
	// The project writes the claims byte for byte as Gramine does.
	mine, err := claims(cert.RawSubjectPublicKeyInfo)
	if err != nil || !bytes.Equal(mine, gramineClaims(sha256.Sum256(cert.RawSubjectPublicKeyInfo))) {
		t.Errorf("claims %x differ from Gramine's layout", mine)
	}
	// Each quote binds only its own format's report data.
	if bytes.Equal(found[0].ReportData[:], found[1].ReportData[:]) {
		t.Error("standard and legacy report data are equal")
	}
}

// The project's certificates carry the legacy extension exactly as Gramine
// does, so a parser keyed on Gramine's real OID (Gramine's own verifier,
// re-implemented here from its description) finds it.
func TestProjectCertificateHasGramineLayout(t *testing.T) {
	cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{}, GramineStandard, GramineLegacy)
	if err != nil {
		t.Fatal(err)
	}
	der := cert.Certificate[0]
	assertGramineLegacyBytes(t, der)
	li, si := bytes.Index(der, derGramineLegacyOID), bytes.Index(der, derTaggedEvidenceOID)
	if li < 0 || si < 0 || li > si {
		t.Fatalf("legacy extension at %d, standard at %d: want Gramine's order, legacy first", li, si)
	}
	found := Extract(cert.Leaf)
	if len(found) != 2 {
		t.Fatalf("Extract: %s", describe(found))
	}
	if v, ok := gramineFind(der, gramineLegacyNeedle); !ok || !bytes.Equal(v, found[1].Quote) {
		t.Error("Gramine-style search does not find the legacy quote")
	}
	if _, ok := gramineFind(der, derTaggedEvidenceOID); !ok {
		t.Error("Gramine-style search does not find the tagged evidence")
	}
	pub, ok := cert.Leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		t.Errorf("key %s, want ECDSA P-384 as Gramine", KeyDescription(cert.Leaf.PublicKey))
	}
	// The quote inside reports the enclave that made it.
	q, err := sgxquote.Parse(found[1].Quote)
	if err != nil || q.Body.MREnclave != serverID.MREnclave || q.Body.ReportData != found[1].ReportData {
		t.Errorf("legacy quote: %v", err)
	}
}

// certWith makes a self-signed certificate carrying the given extensions.
func certWith(t *testing.T, key *ecdsa.PrivateKey, exts ...pkix.Extension) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, der)
}

func keyQuote(t *testing.T, key *ecdsa.PrivateKey) []byte {
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	var rd [64]byte
	h := sha256.Sum256(spki)
	copy(rd[:], h[:])
	return simQuote(t, rd)
}

// Certificates with the clean OID (other implementations, and this
// project's older ones) are still read; one with both encodings is refused.
func TestLegacyCleanOIDAndAmbiguity(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	q := keyQuote(t, key)
	clean := certWith(t, key, pkix.Extension{Id: OIDGramineQuoteClean, Value: q})
	if !bytes.Contains(clean.Raw, []byte{0x30, 0x82}) || !bytes.Contains(clean.Raw, append([]byte{0x06, 0x09}, gramineLegacyNeedle[2:]...)) {
		t.Fatal("test certificate does not carry the clean OID")
	}
	r, f, err := VerifyCertificate(context.Background(), clean, verifier, policyFor(serverID))
	if err != nil || f != GramineLegacy || r.MREnclave != serverID.MREnclave {
		t.Fatalf("clean OID: %v %v", f, err)
	}
	if found := Extract(clean); len(found) != 1 || !found[0].OID.Equal(OIDGramineQuoteClean) {
		t.Fatalf("Extract: %s", describe(found))
	}
	both := certWith(t, key, pkix.Extension{Id: OIDGramineQuoteClean, Value: q}, pkix.Extension{Id: OIDGramineQuote, Value: q})
	if _, _, err := VerifyCertificate(context.Background(), both, verifier, policyFor(serverID)); err == nil {
		t.Fatal("a certificate with the legacy extension under both encodings was accepted")
	}
}

func TestRATLSKeyCurves(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		key, _ := ecdsa.GenerateKey(c, rand.Reader)
		cert, err := NewCertificateForKey(context.Background(), platform.Attester(serverID), key, CertOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.Params().Name, err)
		}
		if !cert.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
			t.Fatalf("%s: the certificate is for another key", c.Params().Name)
		}
		if _, f, err := VerifyCertificate(context.Background(), cert.Leaf, verifier, policyFor(serverID)); err != nil || f != GramineStandard {
			t.Fatalf("%s: %v %v", c.Params().Name, f, err)
		}
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := NewCertificateForKey(context.Background(), platform.Attester(serverID), p521, CertOptions{}); err == nil {
		t.Error("a P-521 key, which Gramine's verifier refuses, was accepted")
	}
	if _, err := NewCertificateForKey(context.Background(), platform.Attester(serverID), ed, CertOptions{}); err == nil {
		t.Error("an Ed25519 key was accepted")
	}
	for _, fs := range [][]Format{{GramineLegacy, GramineLegacy}, {Format(9)}} {
		if _, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{}, fs...); err == nil {
			t.Errorf("formats %v accepted", fs)
		}
	}
}
