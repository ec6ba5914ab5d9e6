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
	return Start(t, dir, "127.0.0.1:0", nil).Addr
}

// Relay is a relay started by Start.
type Relay struct {
	Addr   string
	Server *relay.Server
}

// Stop shuts the relay down (as SIGTERM does relayd) and waits for it.
func (r *Relay) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Server.Shutdown(ctx)
}

// Start is StartSim with more say: the relay listens on addr
// ("127.0.0.1:0" for any port; an address a stopped relay used, to
// restart it there), and tweak, if not nil, adjusts its Config (to give
// it durable Mailboxes, say). The relay is stopped when the test ends if
// Stop was not called before.
func Start(t testing.TB, dir, addr string, tweak func(*relay.Config)) *Relay {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.Config{Certificate: cert, Peer: &atls.Peer{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy}}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // a port just released may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	r := &Relay{Addr: ln.Addr().String(), Server: srv}
	t.Cleanup(r.Stop)
	return r
}
