package atls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"time"
)

// ServerConfig returns the TLS configuration the servers use: the one
// certificate given, TLS 1.3 preferred and 1.2 the minimum (with
// extended master secret, which Go always negotiates, so the exporter
// works), AEAD suites only.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12Suites,
	}
}

// ClientConfig returns a client TLS configuration for the post-handshake
// attestation: the server's certificate is not checked against a CA,
// because the server's quote binds it (Peer.Client checks that binding).
// Use it only with Peer.Client, or with a VerifyConnection of your own.
func ClientConfig() *tls.Config {
	return &tls.Config{
		// The server is authenticated by its quote, which binds the
		// certificate of this very handshake; there is no CA to check.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       tls12Suites,
	}
}

// TLS 1.2 suites: ECDHE with AEAD only. (TLS 1.3 suites are not
// configurable and are all AEAD.)
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CertOptions configure generated certificates.
type CertOptions struct {
	Rand       io.Reader     // nil: crypto/rand
	Now        time.Time     // zero: time.Now()
	Validity   time.Duration // zero: 30 days
	CommonName string        // zero: "Shared Enclave"
	// Hosts are the DNS names and IP addresses the certificate names,
	// besides localhost, 127.0.0.1 and ::1 (always named).
	Hosts []string
	// CA, when set, issues the certificate (it is otherwise self-signed):
	// its key signs it and its certificate follows in the chain, so that
	// a client can pin the CA while the certificate and its evidence are
	// new. It must be a CA certificate ([NewCACertificate]).
	CA *tls.Certificate
}

func (o *CertOptions) defaults() {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Validity == 0 {
		o.Validity = 30 * 24 * time.Hour
	}
	if o.CommonName == "" {
		o.CommonName = "Shared Enclave"
	}
}

// selfSigned makes a certificate for a key generated inside the enclave,
// with extra extensions: self-signed, or issued by opts.CA.
func selfSigned(opts CertOptions, key crypto.Signer, exts []pkix.Extension) (tls.Certificate, error) {
	serial := make([]byte, 16)
	if _, err := io.ReadFull(opts.Rand, serial); err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             opts.Now.Add(-time.Hour),
		NotAfter:              opts.Now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       exts,
	}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, opts.Hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	parent, signer, chain := tmpl, key, [][]byte(nil)
	if opts.CA != nil {
		ca, err := caOf(opts.CA)
		if err != nil {
			return tls.Certificate{}, err
		}
		parent, signer, chain = ca, opts.CA.PrivateKey.(crypto.Signer), opts.CA.Certificate[:1]
		if tmpl.NotAfter.After(ca.NotAfter) {
			tmpl.NotAfter = ca.NotAfter
		}
	}
	der, err := x509.CreateCertificate(opts.Rand, tmpl, parent, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("atls: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: append([][]byte{der}, chain...), PrivateKey: key, Leaf: leaf}, nil
}

// caOf checks that c is a CA certificate with a signing key, and returns
// its certificate.
func caOf(c *tls.Certificate) (*x509.Certificate, error) {
	if len(c.Certificate) == 0 {
		return nil, fmt.Errorf("atls: CA has no certificate")
	}
	ca := c.Leaf
	if ca == nil {
		var err error
		if ca, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("atls: CA certificate: %w", err)
		}
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("atls: the CA's certificate is not a CA certificate")
	}
	if _, ok := c.PrivateKey.(crypto.Signer); !ok {
		return nil, fmt.Errorf("atls: the CA has no signing key")
	}
	return ca, nil
}

// NewCACertificate makes a self-signed CA certificate for key, which may
// issue end-entity certificates only (path length 0), valid from
// opts.Now for opts.Validity, named opts.CommonName. A server keeps key
// (sealed) and issues itself a new certificate at every start
// (CertOptions.CA), so that clients pin one CA across restarts.
func NewCACertificate(key crypto.Signer, opts CertOptions) (tls.Certificate, error) {
	opts.defaults()
	serial := make([]byte, 16)
	if _, err := io.ReadFull(opts.Rand, serial); err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             opts.Now.Add(-time.Hour),
		NotAfter:              opts.Now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(opts.Rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("atls: creating CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: ca}, nil
}

// NewKeyCertificate generates a fresh P-256 key inside the enclave and a
// self-signed certificate for it, with no attestation extension: the
// relay's TLS identity, which its post-handshake quote binds.
func NewKeyCertificate(opts CertOptions) (tls.Certificate, error) {
	opts.defaults()
	key, err := ecdsa.GenerateKey(elliptic.P256(), opts.Rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	return selfSigned(opts, key, nil)
}
