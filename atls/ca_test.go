package atls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"
)

// A certificate issued by a CA (CertOptions.CA) carries fresh evidence
// for its own key, verifies under the CA as root for the names it has, and
// comes with the CA in its chain; two certificates issued at two starts
// differ but verify under the same pinned CA.
func TestIssuedByCA(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ca, err := NewCACertificate(caKey, CertOptions{CommonName: "test CA", Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	var seen [][]byte
	for range 2 {
		cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{CA: &ca, Hosts: []string{"kms.example"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cert.Certificate) != 2 || string(cert.Certificate[1]) != string(ca.Certificate[0]) {
			t.Fatalf("chain has %d certificates, want the leaf then the CA", len(cert.Certificate))
		}
		for _, name := range []string{"kms.example", "127.0.0.1", "localhost"} {
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if cert.Leaf.NotAfter.After(ca.Leaf.NotAfter) {
			t.Error("the certificate outlives its CA")
		}
		if _, _, err := VerifyCertificate(context.Background(), cert.Leaf, verifier, policyFor(serverID)); err != nil {
			t.Errorf("the issued certificate's evidence: %v", err)
		}
		seen = append(seen, cert.Certificate[0])
	}
	if string(seen[0]) == string(seen[1]) {
		t.Error("two starts gave the same certificate")
	}
	// A certificate that is not a CA cannot issue.
	leaf, err := NewKeyCertificate(CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeyCertificate(CertOptions{CA: &leaf}); err == nil {
		t.Error("a non-CA certificate issued a certificate")
	}
}
