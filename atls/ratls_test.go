package atls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"

	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
)

func TestRATLSFormatsRoundTrip(t *testing.T) {
	for _, f := range []Format{GramineStandard, GramineLegacy, EGo} {
		cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{}, f)
		if err != nil {
			t.Fatal(err)
		}
		r, got, err := VerifyCertificate(context.Background(), cert.Leaf, verifier, policyFor(serverID))
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		if got != f || r.MREnclave != serverID.MREnclave {
			t.Errorf("%v: verified as %v, MRENCLAVE %s", f, got, r.MREnclave)
		}
		// A policy that wants another enclave refuses it.
		if _, _, err := VerifyCertificate(context.Background(), cert.Leaf, verifier, policyFor(clientID)); !errors.Is(err, attest.ErrPolicy) {
			t.Errorf("%v: policy mismatch accepted: %v", f, err)
		}
	}
}

func TestRATLSDefaultCarriesBothGramineFormats(t *testing.T) {
	cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var std, legacy bool
	for _, e := range cert.Leaf.Extensions {
		std = std || e.Id.Equal(OIDTaggedEvidence)
		legacy = legacy || e.Id.Equal(OIDGramineQuote)
	}
	if !std || !legacy {
		t.Fatalf("standard %v legacy %v", std, legacy)
	}
}

// transplant copies the RA-TLS extensions of one certificate into a
// certificate for another key, as an attacker holding a genuine
// certificate but not its key would.
func transplant(t *testing.T, from *x509.Certificate) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var exts []pkix.Extension
	for _, e := range from.Extensions {
		if e.Id.Equal(OIDTaggedEvidence) || e.Id.Equal(OIDGramineQuote) || e.Id.Equal(OIDEGoReport) {
			exts = append(exts, e)
		}
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestRATLSQuoteBindingAnotherKeyRefused(t *testing.T) {
	for _, f := range []Format{GramineStandard, GramineLegacy, EGo} {
		cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{}, f)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = VerifyCertificate(context.Background(), transplant(t, cert.Leaf), verifier, policyFor(serverID))
		if err == nil {
			t.Fatalf("%v: quote for another key accepted", f)
		}
	}
	// A certificate with no evidence at all.
	plain := newCert(t)
	if _, _, err := VerifyCertificate(context.Background(), plain.Leaf, verifier, policyFor(serverID)); !errors.Is(err, ErrNoEvidence) {
		t.Fatalf("plain certificate: %v", err)
	}
}

func TestRATLSOverTLSWithResumption(t *testing.T) {
	cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "hello")
			}()
		}
	}()
	var checks atomic.Int32
	policy := policyFor(serverID)
	cfg := RATLSClientConfig(verifier, policy)
	inner := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		checks.Add(1)
		return inner(cs)
	}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	resumed := false
	for i := 0; i < 3; i++ {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		b, _ := io.ReadAll(c)
		resumed = resumed || c.ConnectionState().DidResume
		c.Close()
		if string(b) != "hello" {
			t.Fatalf("read %q", b)
		}
	}
	if !resumed {
		t.Fatal("no session was resumed; the test proves nothing")
	}
	if checks.Load() != 3 {
		t.Fatalf("VerifyConnection ran %d times for 3 handshakes (resumed ones must be checked too)", checks.Load())
	}
	// A resumed session is refused once the policy no longer accepts the server.
	*policy = *policyFor(clientID)
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("resumed session accepted under a policy that refuses the server")
	}
}

// A stock crypto/tls client with no knowledge of attestation completes the
// TLS handshake with the server configuration (attestation comes on top).
func TestStockTLSClientHandshake(t *testing.T) {
	cert := newCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("stock client: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", v)
	}
	c.Close()
	// TLS 1.1 and below are refused.
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

func TestOpenSSLHandshake(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	cert := newCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); time.Sleep(200 * time.Millisecond); c.Close() }()
		}
	}()
	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		cmd := exec.Command("openssl", "s_client", "-connect", ln.Addr().String(), v, "-brief")
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		want := map[string]string{"-tls1_3": "TLSv1.3", "-tls1_2": "TLSv1.2"}[v]
		if !strings.Contains(string(out), "Protocol version: "+want) {
			t.Errorf("openssl s_client %s: %s", v, out)
		}
	}
	cmd := exec.Command("openssl", "s_client", "-connect", ln.Addr().String(), "-tls1_1", "-brief")
	cmd.Stdin = strings.NewReader("")
	if out, _ := cmd.CombinedOutput(); strings.Contains(string(out), "Protocol version") {
		t.Errorf("openssl s_client -tls1_1 negotiated: %s", out)
	}
}
