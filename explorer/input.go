package explorer

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// Evidence is what the user gave, decoded: a quote, and when it came from
// an RA-TLS certificate, the certificate.
type Evidence struct {
	// Encoding says how the input was read: "binary", "hex", "base64",
	// "PEM certificate", "DER certificate", with " (EGo header)" when
	// EGo's 16-byte report header was removed.
	Encoding string
	Quote    []byte
	// Cert is the RA-TLS certificate the quote came from, or nil.
	Cert *x509.Certificate
}

// ErrInput is wrapped by every error decodeInput returns.
var ErrInput = errors.New("explorer: input")

// decodeInput reads a quote given as binary, hex or base64, or an RA-TLS
// certificate (PEM or DER, raw or base64/hex-encoded). It does not parse
// the quote: that is the verifier's first step, so that garbage fails
// there, with the same message as `enclavectl quote verify`.
func decodeInput(in []byte) (*Evidence, error) {
	if len(bytes.TrimSpace(in)) == 0 {
		return nil, fmt.Errorf("%w: empty: paste a quote (hex or base64), upload a quote or certificate file, or give a server address", ErrInput)
	}
	t := bytes.TrimSpace(in)
	if bytes.HasPrefix(t, []byte("-----BEGIN")) {
		return decodePEM(t)
	}
	enc, b := "binary", in
	if isHex(t) && len(t)%2 == 0 {
		enc = "hex"
		b, _ = hex.DecodeString(string(t))
	} else if d, ok := decodeBase64(t); ok {
		enc, b = "base64", d
	}
	if c, err := x509.ParseCertificate(b); err == nil {
		name := "DER certificate"
		if enc != "binary" {
			name += " (" + enc + ")"
		}
		return &Evidence{Encoding: name, Cert: c}, nil
	}
	if q, err := sgxquote.StripEGoHeader(b); err == nil {
		return &Evidence{Encoding: enc + " (EGo header)", Quote: q}, nil
	}
	return &Evidence{Encoding: enc, Quote: b}, nil
}

func decodePEM(t []byte) (*Evidence, error) {
	blk, _ := pem.Decode(t)
	if blk == nil {
		return nil, fmt.Errorf("%w: starts like PEM but is not a PEM block", ErrInput)
	}
	if blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: PEM block %q, want CERTIFICATE (an RA-TLS certificate)", ErrInput, blk.Type)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: PEM certificate: %v", ErrInput, err)
	}
	return &Evidence{Encoding: "PEM certificate", Cert: c}, nil
}

func isHex(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// decodeBase64 accepts standard or URL base64, padded or not, with line
// breaks; only text made of base64 characters is tried.
func decodeBase64(t []byte) ([]byte, bool) {
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, string(t))
	for _, r := range s {
		if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune("+/=-_", r)) {
			return nil, false
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}
