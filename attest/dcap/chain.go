package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Certificate chains are where a loose verifier is most easily fooled:
// Go's chain builder, given a pool of intermediates, ignores certificates
// it does not need, and never looks at the bytes of a root the quote
// carries. The verifier therefore fixes the shape of every chain before
// anything is built:
//
//   - the text is canonical PEM: each block exactly as encoding/pem writes
//     it (BEGIN line, base64 in lines of 64, END line, each ending in "\n"),
//     one after the other with nothing between them; the quote's chain may
//     end in NUL bytes (Intel's quoting enclave writes one);
//   - the number of certificates is exactly the number of roles
//     (PCK leaf, PCK CA, root; or signer, root);
//   - certificate i is signed by certificate i+1, and every certificate is
//     valid at the verification time;
//   - the last certificate is byte for byte a trusted root (and, for the
//     collateral chains, the same root as the quote's PCK chain).
//
// Then Go's own x509 verification runs on exactly that chain, for what it
// adds (critical extensions, basic constraints, key usage, name chaining).

// Chain roles, in the order a chain lists them.
var (
	pckRoles    = []string{"PCK leaf", "PCK CA", "root"}
	signerRoles = []string{"signing certificate", "root"}
	crlRoles    = []string{"PCK CA", "root"}
)

// Sentinels wrapped by a *ChainError, for callers that branch on the kind
// of failure (and for the differential test, which names the classes of
// input this verifier refuses and @phala/dcap-qvl accepts).
var (
	// ErrUntrustedRoot: the chain does not end in one of Options.Roots,
	// byte for byte, or ends in another trusted root than the quote's.
	ErrUntrustedRoot = errors.New("dcap: chain does not end in a trusted root")
	// ErrChainShape: the chain has another number of certificates than its
	// roles, a CA where a signer belongs (or the reverse), or is not the
	// chain x509 builds from the same certificates.
	ErrChainShape = errors.New("dcap: certificate chain has the wrong shape")
	// ErrPEMFraming: the PEM text is not canonical, or has bytes between
	// or after its blocks.
	ErrPEMFraming = errors.New("dcap: certificate chain is not canonical PEM")
)

// ChainError says which certificate of which chain is wrong, and how.
// Index is 1-based (0: the chain as a whole).
type ChainError struct {
	Chain string // "PCK chain", "TCB info issuer chain", …
	Index int
	Role  string
	Err   error
}

func (e *ChainError) Error() string {
	if e.Index == 0 {
		return fmt.Sprintf("%s: %v", e.Chain, e.Err)
	}
	return fmt.Sprintf("%s: certificate %d (%s): %v", e.Chain, e.Index, e.Role, e.Err)
}

func (e *ChainError) Unwrap() error { return e.Err }

// RootSubject returns, for an ErrUntrustedRoot, the subject the offending
// root claims; "" otherwise. Tools use it to tell a simulated quote
// checked against Intel's root apart from a forgery.
func (e *ChainError) RootSubject() string {
	var u *untrustedRoot
	if errors.As(e.Err, &u) {
		return u.subject
	}
	return ""
}

type untrustedRoot struct {
	subject string
	why     string
}

func (u *untrustedRoot) Error() string { return u.why }
func (u *untrustedRoot) Unwrap() error { return ErrUntrustedRoot }

// splitCanonicalPEM returns the DER of each certificate in data, which
// must be canonical PEM as described above. trailingNULs allows NUL bytes
// after the last block.
func splitCanonicalPEM(data []byte, trailingNULs bool) ([][]byte, error) {
	const begin = "-----BEGIN CERTIFICATE-----\n"
	var ders [][]byte
	rest := data
	for len(rest) > 0 && rest[0] != 0 {
		if !bytes.HasPrefix(rest, []byte(begin)) {
			return nil, fmt.Errorf("byte %d: want %q, the start of a PEM certificate", len(data)-len(rest), strings.TrimSpace(begin))
		}
		block, after := pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("byte %d: malformed PEM block", len(data)-len(rest))
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			return nil, fmt.Errorf("byte %d: PEM block is not a plain CERTIFICATE", len(data)-len(rest))
		}
		// Canonical: the block's text is exactly what encoding/pem writes.
		text := rest[:len(rest)-len(after)]
		if !bytes.Equal(text, pem.EncodeToMemory(block)) {
			return nil, fmt.Errorf("byte %d: PEM certificate %d is not in canonical form (64-character base64 lines, \\n line ends, nothing between blocks)", len(data)-len(rest), len(ders)+1)
		}
		ders = append(ders, block.Bytes)
		rest = after
	}
	for i, b := range rest {
		if b != 0 || !trailingNULs {
			return nil, fmt.Errorf("byte %d: %d bytes after the last certificate", len(data)-len(rest)+i, len(rest))
		}
	}
	if len(ders) == 0 {
		return nil, errors.New("no certificate")
	}
	return ders, nil
}

// exactChain is the result of verifying a chain of fixed shape.
type exactChain struct {
	certs []*x509.Certificate
}

// verifyExactChain checks that data holds exactly one certificate per
// role, each signed by the next and valid at now, ending in a trusted
// root. It remembers successes by the bytes of data.
func (v *Verifier) verifyExactChain(name string, data []byte, roles []string, trailingNULs bool, now time.Time) ([]*x509.Certificate, error) {
	key := memoKey("exact-chain", []byte(name), data)
	if c, ok := v.memo.get(key, now); ok {
		return c.(exactChain).certs, nil
	}
	certs, err := v.buildExactChain(name, data, roles, trailingNULs, now)
	if err != nil {
		return nil, err
	}
	nb, na := chainWindow(certs)
	v.memo.put(key, exactChain{certs}, nb, na)
	return certs, nil
}

func (v *Verifier) buildExactChain(name string, data []byte, roles []string, trailingNULs bool, now time.Time) ([]*x509.Certificate, error) {
	fail := func(i int, format string, args ...any) error {
		e := &ChainError{Chain: name, Index: i, Err: fmt.Errorf(format, args...)}
		if i > 0 {
			e.Role = roles[i-1]
		}
		return e
	}
	ders, err := splitCanonicalPEM(data, trailingNULs)
	if err != nil {
		return nil, fail(0, "%w: %v", ErrPEMFraming, err)
	}
	if len(ders) != len(roles) {
		return nil, fail(0, "%w: %d certificates, want exactly %d (%s)", ErrChainShape, len(ders), len(roles), strings.Join(roles, ", "))
	}
	certs := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(i+1, "%v", err)
		}
		certs[i] = c
	}

	// The root: byte for byte one of the trusted roots.
	last := len(certs) - 1
	root := certs[last]
	trusted := false
	for _, r := range v.opts.Roots {
		if bytes.Equal(r.Raw, root.Raw) {
			trusted = true
			break
		}
	}
	if !trusted {
		why := fmt.Sprintf("%q is not a trusted root", root.Subject.String())
		for _, r := range v.opts.Roots {
			if bytes.Equal(r.RawSubject, root.RawSubject) {
				why = fmt.Sprintf("has the subject of the trusted root %q but not its bytes", r.Subject.CommonName)
				break
			}
		}
		e := &ChainError{Chain: name, Index: last + 1, Role: roles[last], Err: &untrustedRoot{subject: root.Subject.String(), why: why}}
		return nil, e
	}

	// Each certificate signed by the next, each valid now; every
	// certificate but the first is a CA, and the first is not (except in
	// the PCK CRL issuer chain, which starts with the PCK CA).
	for i, c := range certs {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, &ChainError{Chain: name, Index: i + 1, Role: roles[i], Err: fmt.Errorf("%w: %q is valid from %s to %s, not at %s",
				ErrExpired, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
		}
		firstIsCA := roles[0] == crlRoles[0]
		if i == 0 && c.IsCA && !firstIsCA {
			return nil, fail(1, "%w: %q is a CA certificate, not a %s", ErrChainShape, c.Subject.CommonName, roles[0])
		}
		if (i > 0 || firstIsCA) && (!c.BasicConstraintsValid || !c.IsCA) {
			return nil, fail(i+1, "%w: %q is not a CA certificate", ErrChainShape, c.Subject.CommonName)
		}
		if i < last {
			if err := c.CheckSignatureFrom(certs[i+1]); err != nil {
				return nil, fail(i+1, "not signed by certificate %d (%s): %v", i+2, roles[i+1], err)
			}
		}
	}

	// Go's verification of exactly this chain, for what it adds.
	pool := x509.NewCertPool()
	pool.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range certs[1:last] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fail(0, "%v", err)
	}
	for _, ch := range chains {
		if sameChain(ch, certs) {
			return certs, nil
		}
	}
	return nil, fail(0, "%w: x509 builds a different chain than the one given", ErrChainShape)
}

func sameChain(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}
