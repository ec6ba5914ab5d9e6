package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// The certificate names the addresses clients use, so that a client that
// pins it as its CA (VAULT_CACERT) accepts it at 127.0.0.1 and at the
// names given with --tls-san.
func TestTLSSAN(t *testing.T) {
	tmp := t.TempDir()
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", filepath.Join(tmp, "sim"), "--listen", "127.0.0.1:0",
		"--root-token-file", filepath.Join(tmp, "tok"), "--tls-san", "kms.example.internal, 10.1.2.3")
	defer stop()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, name := range []string{"127.0.0.1", "localhost", "::1", "kms.example.internal", "10.1.2.3"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("certificate pinned as CA does not verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example"}); err == nil {
		t.Error("certificate verifies for a name it was not given")
	}
	for _, bad := range []string{"not a name", "a..b", "-x.example", "x_y.example"} {
		if _, err := parseFlags([]string{"--tls-san", bad}, noEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--tls-san") {
			t.Errorf("--tls-san %q: %v", bad, err)
		}
	}
}
