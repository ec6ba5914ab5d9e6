// Package relaytest starts relays for tests of the commands and packages
// that talk to one, the way net/http/httptest starts HTTP servers.
package relaytest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/relay"
)

// StartSim runs a relay on loopback whose attestation uses the simulated
// platform in dir (created if missing) and accepts that platform's
// enclaves. It returns the relay's address and stops it when the test ends.
func StartSim(t testing.TB, dir string) string {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(relay.Config{Certificate: cert, Peer: &atls.Peer{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}
