package kms

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"sort"
)

// Policy paths of the seed endpoints: a token needs "read" on them.
const (
	SeedAESPath = "seed/generate-aes-key"
	SeedRSAPath = "seed/generate-rsa-key-pair"
)

// seedRoute authorizes a seed endpoint. By default it needs a token whose
// policy grants read on its policy path (SeedAESPath, SeedRSAPath). With
// Config.SeedOpen, callers without such a token are served too, and their
// RSA key pairs (about a third of a CPU-second each) are rate-limited.
func (s *Service) seedRoute(req *request, urlPath string) (func() (response, error), error) {
	if req.method != "GET" {
		return nil, &Error{Status: http.StatusMethodNotAllowed, Msg: "method not allowed: use GET"}
	}
	policyPath := "seed" + urlPath
	perform := func() (response, error) { return s.seed(urlPath) }
	if h, tok, raw := s.authenticate(req.r); tok != nil && s.allowed(tok.Policies, policyPath, capRead) {
		req.tok, req.tokHash, req.tokRaw = tok, h, raw
		return perform, nil
	}
	if !s.cfg.SeedOpen {
		return nil, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("permission denied: %s needs a token whose policy grants read on %q", urlPath, policyPath)}
	}
	if policyPath == SeedRSAPath && !s.seedRSA.AllowN(s.cfg.Now(), 1) {
		return nil, &Error{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf("too many requests: RSA key pairs for callers without a token are limited to %g per second; retry later, or use a token whose policy grants read on %q", float64(s.seedRSA.Limit()), SeedRSAPath)}
	}
	return perform, nil
}

// seed serves the endpoints of the original tutorial, fixed: fresh random
// keys that the server does not keep, over attested TLS, as valid JSON.
func (s *Service) seed(path string) (response, error) {
	if path == "/generate-aes-key" {
		k, err := randomBytes(s.cfg.Rand, 32)
		if err != nil {
			return response{}, err
		}
		return response{raw: map[string]string{"aes_key": base64.StdEncoding.EncodeToString(k), "encoding": "base64"}}, nil
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return response{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return response{}, err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return response{}, err
	}
	return response{raw: map[string]string{
		"public_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv})),
		"encoding":    "plaintext",
	}}, nil
}

// policyAPI serves sys/policies/acl/:name and, legacy, sys/policy/:name
// (whose body field may be "rules" and whose answer has "rules").
func (s *Service) policyAPI(req *request, name string, legacy bool) (response, error) {
	field := "policy"
	switch req.method {
	case "GET":
		s.mu.RLock()
		p := s.policyLocked(name)
		s.mu.RUnlock()
		rules := ""
		switch {
		case name == "root":
		case p == nil:
			return response{}, notFound("")
		default:
			rules = p.Rules
		}
		if legacy {
			return response{data: map[string]any{"name": name, "rules": rules}}, nil
		}
		return response{data: map[string]any{"name": name, "policy": rules}}, nil
	case "POST", "PUT":
		known := []string{"policy"}
		if legacy {
			known = append(known, "rules")
		}
		if err := checkFields(req.body, known, nil, ""); err != nil {
			return response{}, err
		}
		if name == "root" {
			return response{}, badRequest("cannot update the root policy")
		}
		if legacy {
			if _, ok := req.body["rules"]; ok {
				field = "rules"
			}
		}
		rules, err := req.str(field)
		if err != nil {
			return response{}, err
		}
		if rules == "" {
			return response{}, badRequest(fmt.Sprintf("field %q: the rules are empty", field))
		}
		if err := validName(name); err != nil {
			return response{}, err
		}
		p := &aclPolicy{Name: name, Rules: rules}
		if err := p.compile(); err != nil {
			return response{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.persist(kindPolicy, s.blind(name), name, p); err != nil {
			return response{}, err
		}
		s.policies[name] = p
		return response{status: http.StatusNoContent}, nil
	case "DELETE":
		if name == "root" || name == "default" {
			return response{}, badRequest(fmt.Sprintf("cannot delete the %s policy", name))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.removeRec(kindPolicy, s.blind(name)); err != nil {
			return response{}, err
		}
		delete(s.policies, name)
		return response{status: http.StatusNoContent}, nil
	}
	return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported method"}
}

// policyNames lists the policies, "default" and "root" included.
func (s *Service) policyNames() []string {
	s.mu.RLock()
	names := []string{"root"}
	for n := range s.policies {
		names = append(names, n)
	}
	s.mu.RUnlock()
	if !slices.Contains(names, "default") {
		names = append(names, "default")
	}
	sort.Strings(names)
	return names
}

// policyList is LIST sys/policies/acl and the legacy GET sys/policy.
func (s *Service) policyList(req *request) (response, error) {
	switch {
	case req.method == "LIST" && req.path != "sys/policy":
		return response{data: map[string]any{"keys": s.policyNames()}}, nil
	case req.method == "GET" && req.path == "sys/policy":
		names := s.policyNames()
		return response{data: map[string]any{"keys": names, "policies": names}}, nil
	}
	return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported method"}
}

func (s *Service) attestation() (response, error) {
	a := s.cfg.Attestation
	if a == nil {
		return response{}, notFound("attestation is not configured")
	}
	var ca any
	if a.CA != nil {
		ca = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.CA}))
	}
	return response{data: map[string]any{
		"ca_certificate": ca,
		"certificate":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate})),
		"quote":          base64.StdEncoding.EncodeToString(a.Quote),
		"simulated":      a.Simulated,
		"binding":        "quote report data = SHA-256(SubjectPublicKeyInfo of the certificate) ‖ 32 zero bytes",
		"how_to_verify": "Verify the quote (enclavectl quote verify), check MRENCLAVE/MRSIGNER against your policy, " +
			"check that report data [0:32] is SHA-256 of the certificate's SubjectPublicKeyInfo, and that this certificate is the one " +
			"your TLS connection presented. The certificate also carries the quote (RA-TLS), so atls.RATLSClientConfig does all of this in the handshake.",
	}}, nil
}
