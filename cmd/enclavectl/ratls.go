package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

const ratlsUsage = `Usage:
  enclavectl ratls cert --out CERT.pem (--key KEY.pem | --key-out KEY.pem)
        [--format gramine|gramine-legacy|ego] [--curve p384|p256]
        [--validity DURATION] [--simulation --sim-dir DIR]
        make an RA-TLS certificate for a key, with quotes from this enclave
        (under Gramine) or from the simulated platform
  enclavectl ratls inspect CERT [--collateral DIR | --pccs URL] [--root PEM]
        [--at RFC3339] [--require-crls]
        print, as JSON, the RA-TLS formats a certificate carries, each
        quote's identity, whether the quotes bind the certificate's key and,
        with collateral, whether they are genuine

Formats (the extensions' bytes are in docs/SECURITY.md):
  gramine         legacy quote extension, then TCG DICE tagged evidence
                  (as Gramine >= 1.8 writes them)
  gramine-legacy  the legacy quote extension alone (Gramine 1.0-1.7)
  ego             EGo's report extension

Run "enclavectl ratls cert --help" or "... inspect --help" for the flags.
`

var ratlsFormats = map[string][]atls.Format{
	"gramine":        {atls.GramineLegacy, atls.GramineStandard},
	"gramine-legacy": {atls.GramineLegacy},
	"ego":            {atls.EGo},
}

func ratlsCmd(ctx context.Context, sub string, args []string, _ func(string) string, stdout, stderr io.Writer) int {
	switch sub {
	case "cert":
		return ratlsCert(ctx, args, stdout, stderr)
	case "inspect":
		return ratlsInspect(ctx, args, stdout, stderr)
	}
	return unknownSub(stderr, "ratls", sub)
}

func ratlsCert(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("ratls cert", "ratls cert --out CERT.pem (--key KEY.pem | --key-out KEY.pem) [flags]", args, stdout, stderr)
	format := fs.String("format", "gramine", "gramine (legacy + standard, as Gramine >= 1.8), gramine-legacy (Gramine 1.0-1.7) or ego")
	keyPath := fs.String("key", "", "the certificate's private key, PEM (PKCS #8 or SEC 1), ECDSA P-256 or P-384; it must have been made inside this enclave")
	keyOut := fs.String("key-out", "", "generate a key and write it here, PEM PKCS #8, mode 0600 (a new file)")
	curve := fs.String("curve", "p384", "curve of a generated key: p384 (as Gramine) or p256")
	out := fs.String("out", "", "write the certificate here, PEM (a new file)")
	validity := fs.Duration("validity", 30*24*time.Hour, "how long the certificate is valid")
	simulation := fs.Bool("simulation", false, "quote on the simulated SGX platform in --sim-dir (NOT a real enclave)")
	simDir := fs.String("sim-dir", "", "simulated platform directory (default .sim, with --simulation)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, "unexpected argument %q", pos[0])
	}
	formats, ok := ratlsFormats[*format]
	if !ok {
		return usageErr(stderr, fs, "--format %q: want gramine, gramine-legacy or ego", *format)
	}
	if *out == "" {
		return usageErr(stderr, fs, "--out is required")
	}
	if (*keyPath == "") == (*keyOut == "") {
		return usageErr(stderr, fs, "give exactly one of --key (an existing key) and --key-out (generate one)")
	}
	var c elliptic.Curve
	switch *curve {
	case "p384":
		c = elliptic.P384()
	case "p256":
		c = elliptic.P256()
	default:
		return usageErr(stderr, fs, "--curve %q: want p384 or p256", *curve)
	}
	if *keyPath != "" && *curve != "p384" {
		return usageErr(stderr, fs, "--curve applies to a generated key only")
	}
	if *validity <= 0 {
		return usageErr(stderr, fs, "--validity must be positive")
	}
	dir := *simDir
	if *simulation && dir == "" {
		dir = ".sim"
	}
	be, err := backend.Open(backend.Options{Simulation: *simulation, SimDir: dir})
	if err != nil {
		hint := "" // the backend's error says how to run under Gramine
		if *simulation {
			hint = "--sim-dir must be a platform made by `enclavectl sim init DIR` (relayd --simulation makes .sim)"
		}
		return fail(stderr, "ratls cert", err, hint)
	}

	var key crypto.Signer
	var keyPEM []byte
	if *keyPath != "" {
		if key, err = readPrivateKey(*keyPath); err != nil {
			return fail(stderr, "ratls cert", err, "--key must be a readable PEM private key (PKCS #8 or SEC 1), ECDSA P-256 or P-384; or generate one with --key-out")
		}
	} else {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return fail(stderr, "ratls cert", err, "the system could not generate a key: try again")
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return fail(stderr, "ratls cert", err, "the system could not encode the key: try again")
		}
		key, keyPEM = k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	cert, err := atls.NewCertificateForKey(ctx, be.Attester, key, atls.CertOptions{Validity: *validity}, formats...)
	if err != nil {
		return fail(stderr, "ratls cert", err, "the certificate could not be made: check the --key and, with --simulation, the --sim-dir platform")
	}
	// The key first: if it cannot be written, no certificate for a lost key
	// is left behind.
	if keyPEM != nil {
		if err := writeNew(*keyOut, keyPEM, 0o600); err != nil {
			return fail(stderr, "ratls cert", err, "choose a path that does not exist yet")
		}
	}
	if err := writeNew(*out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		if keyPEM != nil {
			os.Remove(*keyOut)
		}
		return fail(stderr, "ratls cert", err, "choose a path that does not exist yet")
	}
	var names []string
	for _, f := range formats { // in the order they are written
		names = append(names, f.String())
	}
	fmt.Fprintf(stdout, "wrote %s: RA-TLS certificate (extensions: %s), key %s\n", *out, strings.Join(names, ", "), atls.KeyDescription(cert.Leaf.PublicKey))
	if keyPEM != nil {
		fmt.Fprintf(stdout, "wrote %s: its private key\n", *keyOut)
	}
	if be.Simulated {
		fmt.Fprintf(stdout, "quoted by the SIMULATED platform in %s as MRENCLAVE %s: not a real enclave\n", dir, be.Self.MREnclave)
	}
	return 0
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
	}
	return werr
}

// maxPEM bounds the files ratls reads; an RA-TLS certificate is a few KiB.
const maxPEM = 1 << 20

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEM {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxPEM)
	}
	return b, nil
}

func readPrivateKey(path string) (crypto.Signer, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q, want PRIVATE KEY or EC PRIVATE KEY", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not a signing key", path, k)
	}
	return s, nil
}

// readCertificate reads a DER certificate, or the first certificate of a
// PEM file. DER is tried first: an RA-TLS certificate's quote embeds the
// PCK chain as PEM text, which a PEM scan of a DER file would find.
func readCertificate(path string) (*x509.Certificate, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	if c, err := x509.ParseCertificate(b); err == nil {
		return c, nil
	}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("%s: not a PEM or DER certificate", path)
}

// quoteIdentity is what a quote says about its enclave, before any check.
type quoteIdentity struct {
	MREnclave  attest.Hash32 `json:"mrenclave"`
	MRSigner   attest.Hash32 `json:"mrsigner"`
	ISVProdID  uint16        `json:"isvprodid"`
	ISVSVN     uint16        `json:"isvsvn"`
	Debug      bool          `json:"debug"`
	Attributes string        `json:"attributes"`
	ReportData string        `json:"report_data"`
}

type inspectFormat struct {
	Format string `json:"format"`
	OID    string `json:"oid"`
	// OIDDER is the extension id's DER (tag, length, value), hex.
	OIDDER string `json:"oid_der"`
	// OIDEncoding, for the legacy format: "gramine" (the double-wrapped
	// OID every Gramine writes) or "clean" (1.2.840.113741.1337.6).
	OIDEncoding string `json:"oid_encoding,omitempty"`
	Error       string `json:"error,omitempty"`
	QuoteSize   int    `json:"quote_size,omitempty"`
	// Identity is read from the quote without checking it.
	Identity *quoteIdentity `json:"identity,omitempty"`
	// ExpectedReportData is what the report data must be to bind the key.
	ExpectedReportData string `json:"expected_report_data,omitempty"`
	BindingHolds       bool   `json:"binding_holds"`
	// Genuine is set only when collateral was given.
	Genuine     *bool          `json:"genuine,omitempty"`
	VerifyError string         `json:"verify_error,omitempty"`
	FailedStep  string         `json:"failed_step,omitempty"`
	Report      *attest.Report `json:"report,omitempty"`
}

type inspectOutput struct {
	Subject    string          `json:"subject"`
	PublicKey  string          `json:"public_key"`
	SPKISHA256 string          `json:"spki_sha256"`
	Formats    []inspectFormat `json:"formats"`
	// Preferred is the format a verifier uses: the first of formats.
	Preferred    string `json:"preferred,omitempty"`
	BindingHolds bool   `json:"binding_holds"`
	Genuine      *bool  `json:"genuine,omitempty"`
}

func ratlsInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("ratls inspect", "ratls inspect CERT [--collateral DIR | --pccs URL] [flags]", args, stdout, stderr)
	vf := addVerifyFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, fs, "want exactly one CERT, got %d arguments", len(pos))
	}
	if msg := vf.usage(); msg != "" {
		return usageErr(stderr, fs, "%s", msg)
	}
	if !vf.given() && (*vf.root != "" || *vf.at != "" || *vf.requireCRLs) {
		return usageErr(stderr, fs, "--root, --at and --require-crls need --collateral or --pccs")
	}
	cert, err := readCertificate(pos[0])
	if err != nil {
		return fail(stderr, "ratls inspect", err, "CERT must be a readable PEM or DER certificate, such as `enclavectl ratls cert` writes")
	}
	var v *dcap.Verifier
	if vf.given() {
		if v, err = vf.verifier(); err != nil {
			return fail(stderr, "ratls inspect", err, "--root must be a readable PEM file holding one certificate (a simulated platform's is DIR/root_ca.pem)")
		}
	}
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	out := inspectOutput{
		Subject:    cert.Subject.String(),
		PublicKey:  atls.KeyDescription(cert.PublicKey),
		SPKISHA256: hex.EncodeToString(h[:]),
		Formats:    []inspectFormat{},
	}
	for _, fd := range atls.Extract(cert) {
		out.Formats = append(out.Formats, inspectOne(ctx, fd, v))
	}
	ok := false
	if len(out.Formats) > 0 {
		first := out.Formats[0]
		out.Preferred, out.BindingHolds, out.Genuine = first.Format, first.BindingHolds, first.Genuine
		ok = first.BindingHolds && (v == nil || *first.Genuine)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fail(stderr, "ratls inspect", err, "standard output could not be written")
	}
	switch {
	case len(out.Formats) == 0:
		fmt.Fprintf(stderr, "enclavectl ratls inspect: %s carries no RA-TLS extension\n", pos[0])
		return 1
	case !ok:
		return 1
	}
	return 0
}

// inspectOne describes one RA-TLS extension, and verifies its quote when
// v is not nil.
func inspectOne(ctx context.Context, fd atls.Found, v *dcap.Verifier) inspectFormat {
	der, _ := asn1.Marshal(fd.OID)
	f := inspectFormat{Format: fd.Format.String(), OID: fd.OID.String(), OIDDER: hex.EncodeToString(der)}
	if fd.Format == atls.GramineLegacy {
		f.OIDEncoding = "clean"
		if fd.OID.Equal(atls.OIDGramineQuote) {
			f.OIDEncoding = "gramine"
		}
	}
	if fd.Err != nil {
		f.Error = fd.Err.Error()
		return f
	}
	f.QuoteSize = len(fd.Quote)
	f.ExpectedReportData = hex.EncodeToString(fd.ReportData[:])
	q, err := sgxquote.Parse(fd.Quote)
	if err != nil {
		f.Error = err.Error()
	} else {
		b := q.Body
		f.Identity = &quoteIdentity{
			MREnclave: b.MREnclave, MRSigner: b.MRSigner, ISVProdID: b.ISVProdID, ISVSVN: b.ISVSVN,
			Debug: b.Debug(), Attributes: hex.EncodeToString(b.Attributes[:]), ReportData: hex.EncodeToString(b.ReportData[:]),
		}
		f.BindingHolds = b.ReportData == fd.ReportData
	}
	if v == nil {
		return f
	}
	genuine := false
	f.Genuine = &genuine
	r, err := v.Verify(ctx, fd.Quote)
	if err != nil {
		f.VerifyError = err.Error()
		var de *dcap.Error
		if errors.As(err, &de) {
			f.FailedStep = string(de.Step)
		}
		return f
	}
	genuine, f.Report = true, r
	return f
}
