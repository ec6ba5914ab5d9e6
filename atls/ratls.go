package atls

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// Format is an RA-TLS certificate format.
type Format int

// The formats, in the order a verifier prefers them when a certificate
// carries several.
const (
	// GramineStandard: TCG DICE tagged evidence, Gramine ≥ 1.8.
	GramineStandard Format = iota + 1
	// GramineLegacy: the raw quote, Gramine ≥ 1.0.
	GramineLegacy
	// EGo: EGo's report (16-byte header ‖ quote).
	EGo
)

func (f Format) String() string {
	switch f {
	case GramineStandard:
		return "gramine-standard"
	case GramineLegacy:
		return "gramine-legacy"
	case EGo:
		return "ego"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Extension OIDs.
var (
	// OIDGramineQuote is the legacy Gramine extension's OID exactly as
	// every Gramine release writes it, and as NewCertificate writes it.
	// Gramine's constant for 1.2.840.113741.1337.6 already holds the DER
	// tag and length (06 09 2A 86 48 86 F8 4D 8A 39 06), and Mbed TLS
	// wraps it once more, so the certificate carries
	//
	//	06 0B 06 09 2A 86 48 86 F8 4D 8A 39 06
	//
	// which decodes as 0.6.9.42.840.113741.1337.6.
	OIDGramineQuote = asn1.ObjectIdentifier{0, 6, 9, 42, 840, 113741, 1337, 6}
	// OIDGramineQuoteClean is the OID Gramine meant,
	// 1.2.840.113741.1337.6 (06 09 2A 86 48 86 F8 4D 8A 39 06). Some
	// other implementations write it (and this package did before); it is
	// read, never written.
	OIDGramineQuoteClean = asn1.ObjectIdentifier{1, 2, 840, 113741, 1337, 6}
	// OIDTaggedEvidence is TCG DICE tagged evidence (2.23.133.5.4.9),
	// Gramine's standard format since 1.8.
	OIDTaggedEvidence = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 9}
	// OIDEGoReport is EGo's report extension.
	OIDEGoReport = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 105, 1}
)

// writeOrder is the order NewCertificate writes the extensions in:
// Gramine's (legacy, then standard), then EGo's.
var writeOrder = []Format{GramineLegacy, GramineStandard, EGo}

const (
	// taggedEvidenceTag is the CBOR tag Gramine uses for an SGX quote as
	// TCG DICE tagged evidence.
	taggedEvidenceTag = 60000
	// hashAlgSHA256 is SHA-256's id in IANA's Named Information registry.
	hashAlgSHA256   = 1
	claimPubKeyHash = "pubkey-hash"
)

// ErrNoEvidence: the certificate carries none of the RA-TLS extensions.
var ErrNoEvidence = errors.New("atls: certificate carries no RA-TLS evidence")

var (
	cborEnc cbor.EncMode
	cborDec cbor.DecMode
)

func init() {
	var err error
	if cborEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if cborDec, err = (cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
	}).DecMode(); err != nil {
		panic(err)
	}
}

// claims builds Gramine's serialized claims for a public key:
// {"pubkey-hash": bstr(serialized [1, bstr SHA-256(SPKI DER)])}.
func claims(spki []byte) ([]byte, error) {
	h := sha256.Sum256(spki)
	entry, err := cborEnc.Marshal([]any{uint64(hashAlgSHA256), h[:]})
	if err != nil {
		return nil, err
	}
	return cborEnc.Marshal(map[string][]byte{claimPubKeyHash: entry})
}

// NewCertificate generates an ECDSA P-384 key pair inside the enclave
// (the curve Gramine uses, and the only one Gramine 1.4–1.7 verifiers
// accept) and returns NewCertificateForKey for it.
func NewCertificate(ctx context.Context, att attest.Attester, opts CertOptions, formats ...Format) (tls.Certificate, error) {
	opts.defaults()
	key, err := ecdsa.GenerateKey(elliptic.P384(), opts.Rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	return NewCertificateForKey(ctx, att, key, opts, formats...)
}

// NewCertificateForKey returns a self-signed certificate for key carrying
// quotes from att that bind its public key, in each of the formats asked
// for (default: both Gramine formats, as Gramine ≥ 1.8 issues). The
// quotes prove only that the enclave asked for a certificate for this
// key: the key must have been generated inside the enclave and never
// leave it, or whoever else holds it can pose as the enclave.
//
// The key must be ECDSA on P-256 or P-384, the curves Gramine's verifier
// accepts (P-384 alone before Gramine 1.8). Each format's binding:
//
//   - GramineLegacy and EGo: report data = SHA-256(SubjectPublicKeyInfo) ‖ zeros;
//   - GramineStandard: report data = SHA-256(claims) ‖ zeros, where claims
//     is the CBOR map {"pubkey-hash": bstr(CBOR [1, SHA-256(SPKI)])}.
//
// The extensions are written in Gramine's order whatever the order of
// formats: the legacy extension (under OIDGramineQuote, byte for byte as
// Gramine writes it), then the standard one, then EGo's.
func NewCertificateForKey(ctx context.Context, att attest.Attester, key crypto.Signer, opts CertOptions, formats ...Format) (tls.Certificate, error) {
	opts.defaults()
	if len(formats) == 0 {
		formats = []Format{GramineLegacy, GramineStandard}
	}
	want := map[Format]bool{}
	for _, f := range formats {
		if f != GramineStandard && f != GramineLegacy && f != EGo {
			return tls.Certificate{}, fmt.Errorf("atls: unknown certificate format %d", int(f))
		}
		if want[f] {
			return tls.Certificate{}, fmt.Errorf("atls: certificate format %v asked for twice", f)
		}
		want[f] = true
	}
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || (pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384()) {
		return tls.Certificate{}, fmt.Errorf("atls: RA-TLS key is %s; want ECDSA P-256 or P-384 (Gramine's verifier accepts only these)", KeyDescription(key.Public()))
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return tls.Certificate{}, err
	}
	quote := func(rd [64]byte) ([]byte, error) {
		q, err := att.Quote(ctx, rd)
		if err != nil {
			return nil, fmt.Errorf("atls: quoting: %w", err)
		}
		return q, nil
	}
	var keyQuote []byte // report data SHA-256(SPKI), shared by legacy and EGo
	quoteKey := func() ([]byte, error) {
		if keyQuote == nil {
			var rd [64]byte
			h := sha256.Sum256(spki)
			copy(rd[:], h[:])
			q, err := quote(rd)
			if err != nil {
				return nil, err
			}
			keyQuote = q
		}
		return keyQuote, nil
	}
	var exts []pkix.Extension
	for _, f := range writeOrder {
		if !want[f] {
			continue
		}
		var ext pkix.Extension
		switch f {
		case GramineLegacy:
			q, err := quoteKey()
			if err != nil {
				return tls.Certificate{}, err
			}
			ext = pkix.Extension{Id: OIDGramineQuote, Value: q}
		case EGo:
			q, err := quoteKey()
			if err != nil {
				return tls.Certificate{}, err
			}
			ext = pkix.Extension{Id: OIDEGoReport, Value: sgxquote.AddEGoHeader(q)}
		case GramineStandard:
			c, err := claims(spki)
			if err != nil {
				return tls.Certificate{}, err
			}
			var rd [64]byte
			h := sha256.Sum256(c)
			copy(rd[:], h[:])
			q, err := quote(rd)
			if err != nil {
				return tls.Certificate{}, err
			}
			ev, err := cborEnc.Marshal(cbor.Tag{Number: taggedEvidenceTag, Content: [][]byte{q, c}})
			if err != nil {
				return tls.Certificate{}, err
			}
			ext = pkix.Extension{Id: OIDTaggedEvidence, Value: ev}
		}
		exts = append(exts, ext)
	}
	return selfSigned(opts, key, exts)
}

// KeyDescription names a public key's algorithm and size for messages,
// e.g. "ECDSA P-384".
func KeyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// Found is one RA-TLS extension of a certificate, as Extract reads it.
type Found struct {
	Format Format
	// OID is the extension's OID as the certificate spells it: for
	// GramineLegacy, OIDGramineQuote (Gramine's encoding) or
	// OIDGramineQuoteClean.
	OID asn1.ObjectIdentifier
	// Quote is the SGX quote, EGo's 16-byte header removed. Not checked.
	Quote []byte
	// ReportData is what the quote's report data must be for the quote to
	// bind the certificate's public key.
	ReportData [64]byte
	// Err says why this extension cannot be used: it is malformed,
	// appears twice, or (standard format) its claims name another key.
	// Quote and ReportData are then unset.
	Err error
}

// Extract returns every RA-TLS extension of cert, in the order a verifier
// prefers them: GramineStandard, GramineLegacy, EGo. It reads the legacy
// extension under both of its encodings (OIDGramineQuote and
// OIDGramineQuoteClean); a certificate carrying both has an ambiguous
// legacy extension, reported as an Err. Extract checks the structure and,
// for the standard format, that the claims name the certificate's key; it
// checks no quote (see VerifyCertificate).
func Extract(cert *x509.Certificate) []Found {
	keyHash := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	var keyRD [64]byte
	copy(keyRD[:], keyHash[:])
	var out []Found

	if v, oid, n := findExt(cert, OIDTaggedEvidence); n > 0 {
		f := Found{Format: GramineStandard, OID: oid}
		if n > 1 {
			f.Err = fmt.Errorf("atls: extension %s appears %d times", oid, n)
		} else if q, c, err := parseTaggedEvidence(v); err != nil {
			f.Err = err
		} else if err := checkClaims(c, keyHash); err != nil {
			f.Err = err
		} else {
			h := sha256.Sum256(c)
			copy(f.ReportData[:], h[:])
			f.Quote = q
		}
		out = append(out, f)
	}
	if v, oid, n := findExt(cert, OIDGramineQuote, OIDGramineQuoteClean); n > 0 {
		f := Found{Format: GramineLegacy, OID: oid}
		if n > 1 {
			f.Err = fmt.Errorf("atls: the legacy Gramine extension appears %d times (%s, %s)", n, OIDGramineQuote, OIDGramineQuoteClean)
		} else {
			f.Quote, f.ReportData = v, keyRD
		}
		out = append(out, f)
	}
	if v, oid, n := findExt(cert, OIDEGoReport); n > 0 {
		f := Found{Format: EGo, OID: oid}
		if n > 1 {
			f.Err = fmt.Errorf("atls: extension %s appears %d times", oid, n)
		} else if q, err := sgxquote.StripEGoHeader(v); err != nil {
			f.Err = err
		} else {
			f.Quote, f.ReportData = q, keyRD
		}
		out = append(out, f)
	}
	return out
}

// findExt returns the value and OID of the last extension of cert whose
// OID is one of oids, and how many there are.
func findExt(cert *x509.Certificate, oids ...asn1.ObjectIdentifier) (value []byte, oid asn1.ObjectIdentifier, n int) {
	for _, e := range cert.Extensions {
		for _, o := range oids {
			if e.Id.Equal(o) {
				value, oid, n = e.Value, e.Id, n+1
			}
		}
	}
	return value, oid, n
}

// Evidence extracts the quote and the report data it must carry from an
// RA-TLS certificate, in the preferred format present (see Extract). As in
// Gramine's verifier, a preferred extension that is present but unusable
// is an error: there is no falling back to another format.
func Evidence(cert *x509.Certificate) (quote []byte, reportData [64]byte, f Format, err error) {
	found := Extract(cert)
	if len(found) == 0 {
		return nil, reportData, 0, ErrNoEvidence
	}
	fd := found[0] // the preferred format
	if fd.Err != nil {
		return nil, reportData, 0, fd.Err
	}
	return fd.Quote, fd.ReportData, fd.Format, nil
}

func parseTaggedEvidence(v []byte) (quote, claims []byte, err error) {
	var tag cbor.RawTag
	if err := cborDec.Unmarshal(v, &tag); err != nil {
		return nil, nil, fmt.Errorf("atls: tagged evidence: %w", err)
	}
	if tag.Number != taggedEvidenceTag {
		return nil, nil, fmt.Errorf("atls: tagged evidence has CBOR tag %d, want %d", tag.Number, taggedEvidenceTag)
	}
	var arr [][]byte
	if err := cborDec.Unmarshal(tag.Content, &arr); err != nil || len(arr) != 2 {
		return nil, nil, fmt.Errorf("atls: tagged evidence is not [quote, claims]: %v", err)
	}
	return arr[0], arr[1], nil
}

func checkClaims(c []byte, keyHash [32]byte) error {
	var m map[string]cbor.RawMessage
	if err := cborDec.Unmarshal(c, &m); err != nil {
		return fmt.Errorf("atls: claims: %w", err)
	}
	raw, ok := m[claimPubKeyHash]
	if !ok {
		return errors.New("atls: claims lack pubkey-hash")
	}
	var entryBytes []byte
	if err := cborDec.Unmarshal(raw, &entryBytes); err != nil {
		return fmt.Errorf("atls: pubkey-hash is not a byte string: %w", err)
	}
	var entry []cbor.RawMessage
	if err := cborDec.Unmarshal(entryBytes, &entry); err != nil || len(entry) != 2 {
		return fmt.Errorf("atls: pubkey-hash entry is not [alg, hash]: %v", err)
	}
	var alg uint64
	var hash []byte
	if err := cborDec.Unmarshal(entry[0], &alg); err != nil || alg != hashAlgSHA256 {
		return fmt.Errorf("atls: pubkey-hash algorithm %d, want %d (SHA-256)", alg, hashAlgSHA256)
	}
	if err := cborDec.Unmarshal(entry[1], &hash); err != nil || len(hash) != 32 {
		return errors.New("atls: pubkey-hash is not 32 bytes")
	}
	if string(hash) != string(keyHash[:]) {
		return errors.New("atls: pubkey-hash does not match the certificate's key")
	}
	return nil
}

// VerifyCertificate checks an RA-TLS certificate: its quote is genuine
// (v), satisfies p, and binds the certificate's public key. It returns the
// verified report and the format used.
func VerifyCertificate(ctx context.Context, cert *x509.Certificate, v attest.Verifier, p *attest.Policy) (*attest.Report, Format, error) {
	quote, rd, f, err := Evidence(cert)
	if err != nil {
		return nil, 0, &PeerError{err}
	}
	r, err := attest.VerifyAndCheck(ctx, v, p.WithReportData(rd[:]), quote)
	if err != nil {
		return nil, f, &PeerError{err}
	}
	return r, f, nil
}

// VerifyConnection returns a tls.Config.VerifyConnection callback that
// requires the peer's leaf certificate to be an RA-TLS certificate
// accepted by v and p. It runs on every handshake, resumed ones included.
func VerifyConnection(v attest.Verifier, p *attest.Policy) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &PeerError{errors.New("peer sent no certificate")}
		}
		_, _, err := VerifyCertificate(context.Background(), cs.PeerCertificates[0], v, p)
		return err
	}
}

// RATLSClientConfig is a client TLS configuration that accepts a server
// only if its certificate is an RA-TLS certificate accepted by v and p.
func RATLSClientConfig(v attest.Verifier, p *attest.Policy) *tls.Config {
	c := ClientConfig()
	c.VerifyConnection = VerifyConnection(v, p)
	return c
}
