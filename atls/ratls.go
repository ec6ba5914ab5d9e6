package atls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
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
	OIDGramineQuote   = asn1.ObjectIdentifier{1, 2, 840, 113741, 1337, 6}
	OIDTaggedEvidence = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 9}
	OIDEGoReport      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 105, 1}
)

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

// NewCertificate generates a key pair inside the enclave and a self-signed
// certificate carrying quotes from att that bind the public key, in each
// of the formats asked for (default: both Gramine formats, as Gramine
// itself issues). Each format's binding:
//
//   - GramineLegacy and EGo: report data = SHA-256(SubjectPublicKeyInfo) ‖ zeros;
//   - GramineStandard: report data = SHA-256(claims) ‖ zeros, where claims
//     is the CBOR map {"pubkey-hash": bstr(CBOR [1, SHA-256(SPKI)])}.
func NewCertificate(ctx context.Context, att attest.Attester, opts CertOptions, formats ...Format) (tls.Certificate, error) {
	opts.defaults()
	if len(formats) == 0 {
		formats = []Format{GramineStandard, GramineLegacy}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), opts.Rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	var keyQuote []byte // report data SHA-256(SPKI), shared by legacy and EGo
	quoteKey := func() ([]byte, error) {
		if keyQuote == nil {
			var rd [64]byte
			h := sha256.Sum256(spki)
			copy(rd[:], h[:])
			q, err := att.Quote(ctx, rd)
			if err != nil {
				return nil, fmt.Errorf("atls: quoting: %w", err)
			}
			keyQuote = q
		}
		return keyQuote, nil
	}
	var exts []pkix.Extension
	for _, f := range formats {
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
			q, err := att.Quote(ctx, rd)
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("atls: quoting: %w", err)
			}
			ev, err := cborEnc.Marshal(cbor.Tag{Number: taggedEvidenceTag, Content: [][]byte{q, c}})
			if err != nil {
				return tls.Certificate{}, err
			}
			ext = pkix.Extension{Id: OIDTaggedEvidence, Value: ev}
		default:
			return tls.Certificate{}, fmt.Errorf("atls: unknown certificate format %d", int(f))
		}
		exts = append(exts, ext)
	}
	return selfSigned(opts, key, exts)
}

func findExt(cert *x509.Certificate, oid asn1.ObjectIdentifier) ([]byte, bool, error) {
	var found []byte
	ok := false
	for _, e := range cert.Extensions {
		if e.Id.Equal(oid) {
			if ok {
				return nil, false, fmt.Errorf("atls: extension %s appears twice", oid)
			}
			found, ok = e.Value, true
		}
	}
	return found, ok, nil
}

// Evidence extracts the quote and the report data it must carry from an
// RA-TLS certificate, in the preferred format present.
func Evidence(cert *x509.Certificate) (quote []byte, reportData [64]byte, f Format, err error) {
	spki := cert.RawSubjectPublicKeyInfo
	keyHash := sha256.Sum256(spki)
	if v, ok, err := findExt(cert, OIDTaggedEvidence); err != nil {
		return nil, reportData, 0, err
	} else if ok {
		q, c, err := parseTaggedEvidence(v)
		if err != nil {
			return nil, reportData, 0, err
		}
		if err := checkClaims(c, keyHash); err != nil {
			return nil, reportData, 0, err
		}
		h := sha256.Sum256(c)
		copy(reportData[:], h[:])
		return q, reportData, GramineStandard, nil
	}
	copy(reportData[:], keyHash[:])
	if v, ok, err := findExt(cert, OIDGramineQuote); err != nil {
		return nil, reportData, 0, err
	} else if ok {
		return v, reportData, GramineLegacy, nil
	}
	if v, ok, err := findExt(cert, OIDEGoReport); err != nil {
		return nil, reportData, 0, err
	} else if ok {
		q, err := sgxquote.StripEGoHeader(v)
		if err != nil {
			return nil, reportData, 0, err
		}
		return q, reportData, EGo, nil
	}
	return nil, reportData, 0, ErrNoEvidence
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
