// Package kmstest starts KMS servers for tests of the commands and
// packages that talk to one, the way net/http/httptest starts HTTP servers.
package kmstest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/kms"
)

// StartSim runs a memory-only KMS on loopback with an RA-TLS certificate
// from the simulated platform in dir (created if missing). It returns the
// address and the root token, and stops the server when the test ends.
func StartSim(t testing.TB, dir string) (addr, rootToken string) {
	t.Helper()
	return StartSimConfig(t, dir, kms.Config{})
}

// StartSimConfig is StartSim with cfg (its Audit and Verifier are set
// here).
func StartSimConfig(t testing.TB, dir string, cfg kms.Config) (addr, rootToken string) {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := atls.NewCertificate(context.Background(), be.Attester, atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Audit, cfg.Verifier = io.Discard, be.Verifier
	svc, err := kms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = svc.Bootstrap(func(tok, _ string) error { rootToken = tok; return nil }); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", atls.ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: svc.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).String(), rootToken
}
