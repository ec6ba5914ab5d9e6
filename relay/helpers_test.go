package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/wire"
)

var (
	platform *sim.Platform
	verifier *dcap.Verifier
	relayID  = sim.Identity{MREnclave: attest.Hash32{0x8e, 0x1a}, ISVProdID: 1, ISVSVN: 1}
	clientID = sim.Identity{MREnclave: attest.Hash32{0xc1}, ISVProdID: 2, ISVSVN: 1}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-sim-")
	if err != nil {
		panic(err)
	}
	platform, err = sim.Init(filepath.Join(dir, "sim"), sim.InitOptions{})
	if err != nil {
		panic(err)
	}
	verifier, err = dcap.New(dcap.Options{Roots: platform.Roots(), Collateral: &pcs.Cache{Getter: platform.Collateral()}, RequireCRLs: true})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func simPolicy(ids ...sim.Identity) *attest.Policy {
	p := &attest.Policy{MRSigner: []attest.Hash32{platform.MRSigner()}, AllowSimulated: true}
	for _, id := range ids {
		p.MREnclave = append(p.MREnclave, id.MREnclave)
	}
	return p
}

type testServer struct {
	*Server
	addr string
	cert tls.Certificate
}

// startServer runs a relay on loopback; tweak adjusts its Config.
func startServer(t testing.TB, tweak func(*Config)) *testServer {
	t.Helper()
	cert, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Certificate: cert,
		Peer:        &atls.Peer{Attester: platform.Attester(relayID), Verifier: verifier, Policy: simPolicy(clientID), Timeout: 3 * time.Second},
		IdleTimeout: 10 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &testServer{Server: s, addr: ln.Addr().String(), cert: cert}
}

func dial(t testing.TB, addr string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, client.Config{
		Attester: platform.Attester(clientID), Verifier: verifier, Policy: simPolicy(relayID), Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is an attested connection on which the test writes bytes and
// reads frames itself.
type rawConn struct {
	t *testing.T
	*tls.Conn
	r *wire.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, atls.ClientConfig())
	peer := &atls.Peer{Attester: platform.Attester(clientID), Verifier: verifier, Policy: simPolicy(relayID), Timeout: 5 * time.Second}
	if _, err := peer.Client(context.Background(), tc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &rawConn{t: t, Conn: tc, r: wire.NewReader(tc, 0)}
}

func (c *rawConn) send(t wire.Type, payload []byte) {
	c.t.Helper()
	if err := wire.WriteFrame(c, t, payload); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads one frame and checks its type and, if reason is not "",
// that its payload contains reason.
func (c *rawConn) expect(t wire.Type, reason string) []byte {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("want %s, got error %v", t, err)
	}
	if f.Type != t || (reason != "" && !bytes.Contains(f.Payload, []byte(reason))) {
		c.t.Fatalf("want %s %q, got %s %q", t, reason, f.Type, f.Payload)
	}
	return append([]byte(nil), f.Payload...)
}

// expectClosed checks that the server closed the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err != nil && !isClosedErr(err) {
		c.t.Fatalf("want the server to close, got %v after %d bytes", err, n)
	}
	if n != 0 {
		c.t.Fatalf("want the server to close, got %d more bytes", n)
	}
}

func isClosedErr(err error) bool {
	var ne net.Error
	if e, ok := err.(net.Error); ok {
		ne = e
	}
	return ne == nil || !ne.Timeout()
}

// addressed is wire.AppendAddressed for ids a test knows are valid.
func addressed(id string, data []byte) []byte {
	p, err := wire.AppendAddressed(nil, id, data)
	if err != nil {
		panic(err)
	}
	return p
}
