package kms

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
)

// oidExtensionRequest is PKCS #9's extensionRequest attribute, the one
// attribute a CSR template may carry (its extensions are kept).
var oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}

// keyCSR is POST transit/keys/:name/csr: a certificate signing request
// for the public key of a version of a signing key (ecdsa-*, rsa-*,
// ed25519), signed by it inside the enclave, so that a CA can certify a
// key that never leaves it. {version (default latest), csr: a PEM CSR
// whose subject and extensions are used (its own key and signature are
// not)} → {name, type, csr (PEM)}.
func (s *Service) keyCSR(req *request, name string) (response, error) {
	if err := fieldsCSR.check(req.body); err != nil {
		return response{}, err
	}
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	if !k.Type.signing() {
		return response{}, badRequest(fmt.Sprintf("key type %s does not support signing, so it cannot sign a CSR", k.Type))
	}
	if k.Derived {
		return response{}, badRequest("a derived key has no single public key to put in a CSR (operation not supported on keys with derivation enabled)")
	}
	ver, _, err := req.integer("version")
	if err != nil {
		return response{}, err
	}
	if ver < 0 {
		return response{}, badRequest(`field "version" must be a key version, or 0 for the latest`)
	}
	n, v, err := k.versionFor(ver)
	if err != nil {
		return response{}, err
	}
	template := &x509.CertificateRequest{}
	if text, err := req.str("csr"); err != nil {
		return response{}, err
	} else if text != "" {
		block, rest := pem.Decode([]byte(text))
		if block == nil || block.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) > 0 {
			return response{}, badRequest(`field "csr" must be one PEM block of type CERTIFICATE REQUEST`)
		}
		parsed, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return response{}, badRequest(fmt.Sprintf(`field "csr": %v`, err))
		}
		// Attributes is deprecated for reading extensions (Extensions
		// has them); it is the only place a template's other
		// attributes show, which are refused rather than dropped.
		//lint:ignore SA1019 see above
		for _, a := range parsed.Attributes {
			if !a.Type.Equal(oidExtensionRequest) {
				return response{}, badRequest(fmt.Sprintf(`field "csr": attribute %v is not supported (only the subject and requested extensions are used)`, a.Type))
			}
		}
		template = &x509.CertificateRequest{RawSubject: parsed.RawSubject, ExtraExtensions: parsed.Extensions}
	}
	signer, err := v.signer()
	if err != nil {
		return response{}, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, template, signer)
	if err != nil {
		return response{}, badRequest(fmt.Sprintf("could not create the CSR: %v", err))
	}
	s.log.Info("CSR signed", "name", k.Name, "version", n)
	return response{data: map[string]any{"name": k.Name, "type": string(k.Type),
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}}, nil
}
