package atls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/wire"
)

var (
	platform *sim.Platform
	verifier *dcap.Verifier
	serverID = sim.Identity{MREnclave: attest.Hash32{0x5e}, ISVProdID: 1, ISVSVN: 1}
	clientID = sim.Identity{MREnclave: attest.Hash32{0xc1}, ISVProdID: 2, ISVSVN: 1}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atls-sim-")
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

func policyFor(ids ...sim.Identity) *attest.Policy {
	p := &attest.Policy{MRSigner: []attest.Hash32{platform.MRSigner()}, AllowSimulated: true}
	for _, id := range ids {
		p.MREnclave = append(p.MREnclave, id.MREnclave)
	}
	return p
}

// recorder remembers the quotes an attester made, or replays one.
type recorder struct {
	mu     sync.Mutex
	inner  attest.Attester
	quotes [][]byte
	replay []byte
	// rd, when set, replaces the report data asked for.
	rd *[64]byte
}

func (r *recorder) Quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.replay != nil {
		return r.replay, nil
	}
	if r.rd != nil {
		rd = *r.rd
	}
	q, err := r.inner.Quote(ctx, rd)
	r.quotes = append(r.quotes, q)
	return q, err
}

type result struct {
	report *attest.Report
	err    error
}

// serve accepts one connection and runs the server side on it.
func serve(t *testing.T, ln net.Listener, peer *Peer, cert tls.Certificate) <-chan result {
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, ServerConfig(cert))
		r, err := peer.Server(context.Background(), tc, cert.Certificate[0])
		if err == nil {
			// Keep the connection open until the client has read our quote.
			tc.Read(make([]byte, 1))
		}
		ch <- result{r, err}
	}()
	return ch
}

func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func newCert(t *testing.T) tls.Certificate {
	c, err := NewKeyCertificate(CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dialClient(t *testing.T, addr string, peer *Peer, cfg *tls.Config) (*attest.Report, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cfg == nil {
		cfg = ClientConfig()
	}
	return peer.Client(context.Background(), tls.Client(c, cfg))
}

func serverPeer(att attest.Attester) *Peer {
	return &Peer{Attester: att, Verifier: verifier, Policy: policyFor(clientID), Timeout: 5 * time.Second}
}

func clientPeer(att attest.Attester) *Peer {
	return &Peer{Attester: att, Verifier: verifier, Policy: policyFor(serverID), Timeout: 5 * time.Second}
}

func TestMutualAttestation(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		ln := listen(t)
		cert := newCert(t)
		done := serve(t, ln, serverPeer(platform.Attester(serverID)), cert)
		cfg := ClientConfig()
		cfg.MaxVersion = version
		sr, err := dialClient(t, ln.Addr().String(), clientPeer(platform.Attester(clientID)), cfg)
		if err != nil {
			t.Fatalf("TLS %x: client: %v", version, err)
		}
		res := <-done
		if res.err != nil {
			t.Fatalf("TLS %x: server: %v", version, res.err)
		}
		if sr.MREnclave != serverID.MREnclave || res.report.MREnclave != clientID.MREnclave {
			t.Errorf("TLS %x: each side saw the wrong enclave", version)
		}
		if !sr.Simulated || !res.report.Simulated {
			t.Error("simulated quotes not marked simulated")
		}
	}
}

func TestClientQuoteReplayedInAnotherSession(t *testing.T) {
	ln := listen(t)
	cert := newCert(t)
	rec := &recorder{inner: platform.Attester(clientID)}
	done := serve(t, ln, serverPeer(platform.Attester(serverID)), cert)
	if _, err := dialClient(t, ln.Addr().String(), clientPeer(rec), nil); err != nil {
		t.Fatal(err)
	}
	<-done
	// The same genuine quote, replayed into a new TLS session.
	done = serve(t, ln, serverPeer(platform.Attester(serverID)), cert)
	_, err := dialClient(t, ln.Addr().String(), clientPeer(&recorder{replay: rec.quotes[0]}), nil)
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("client with a replayed quote: %v, want a refusal", err)
	}
	res := <-done
	if !errors.Is(res.err, attest.ErrPolicy) {
		t.Fatalf("server accepted a replayed quote: %v", res.err)
	}
	t.Logf("server said: %s", re.Reason)
}

func TestServerQuoteReplayedInAnotherSession(t *testing.T) {
	ln := listen(t)
	cert := newCert(t)
	rec := &recorder{inner: platform.Attester(serverID)}
	done := serve(t, ln, serverPeer(rec), cert)
	if _, err := dialClient(t, ln.Addr().String(), clientPeer(platform.Attester(clientID)), nil); err != nil {
		t.Fatal(err)
	}
	<-done
	done = serve(t, ln, serverPeer(&recorder{replay: rec.quotes[0]}), cert)
	_, err := dialClient(t, ln.Addr().String(), clientPeer(platform.Attester(clientID)), nil)
	if !errors.Is(err, ErrPeer) || !errors.Is(err, attest.ErrPolicy) {
		t.Fatalf("client accepted a replayed server quote: %v", err)
	}
	<-done
}

func TestServerQuoteBindsAnotherCertificate(t *testing.T) {
	ln := listen(t)
	cert, other := newCert(t), newCert(t)
	// A server that quotes over another certificate's hash: what a host
	// that swapped in its own TLS key would produce.
	att := &bindOther{inner: platform.Attester(serverID), otherDER: other.Certificate[0]}
	done := serve(t, ln, serverPeer(att), cert)
	_, err := dialClient(t, ln.Addr().String(), clientPeer(platform.Attester(clientID)), nil)
	var pe *attest.PolicyError
	if !errors.As(err, &pe) || pe.Rule != "report-data" {
		t.Fatalf("server quote binding another certificate: %v", err)
	}
	<-done
}

type bindOther struct {
	inner    attest.Attester
	otherDER []byte
}

func (b *bindOther) Quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	var digest [32]byte
	copy(digest[:], rd[32:])
	return b.inner.Quote(ctx, ServerReportData(b.otherDER, digest))
}

func TestWrongMeasurementRefused(t *testing.T) {
	ln := listen(t)
	cert := newCert(t)
	imposter := sim.Identity{MREnclave: attest.Hash32{0xee}}
	done := serve(t, ln, serverPeer(platform.Attester(imposter)), cert)
	_, err := dialClient(t, ln.Addr().String(), clientPeer(platform.Attester(clientID)), nil)
	var pe *attest.PolicyError
	if !errors.As(err, &pe) || pe.Rule != "mrenclave" {
		t.Fatalf("server with the wrong MRENCLAVE: %v", err)
	}
	<-done
	// And the other way round.
	done = serve(t, ln, serverPeer(platform.Attester(serverID)), cert)
	_, err = dialClient(t, ln.Addr().String(), clientPeer(platform.Attester(imposter)), nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("client with the wrong MRENCLAVE: %v", err)
	}
	if res := <-done; !errors.Is(res.err, attest.ErrPolicy) {
		t.Fatalf("server: %v", res.err)
	}
}

// TestManInTheMiddle puts a proxy between client and server that
// terminates TLS on both sides (with its own certificate) and forwards
// every byte of the attestation exchange. Both sessions differ, so both
// quotes bind the wrong session: the server refuses the client.
func TestManInTheMiddle(t *testing.T) {
	ln := listen(t)
	cert := newCert(t)
	done := serve(t, ln, serverPeer(platform.Attester(serverID)), cert)

	mitm := listen(t)
	go func() {
		c, err := mitm.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		front := tls.Server(c, ServerConfig(newCert(t)))
		b, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer b.Close()
		back := tls.Client(b, ClientConfig())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); copyAll(back, front) }()
		go func() { defer wg.Done(); copyAll(front, back) }()
		wg.Wait()
	}()
	_, err := dialClient(t, mitm.Addr().String(), clientPeer(platform.Attester(clientID)), nil)
	if err == nil {
		t.Fatal("client completed attestation through a man in the middle")
	}
	res := <-done
	if res.err == nil {
		t.Fatal("server accepted a client through a man in the middle")
	}
	var pe *attest.PolicyError
	if !errors.As(res.err, &pe) || pe.Rule != "report-data" {
		t.Fatalf("server: %v, want a report-data refusal", res.err)
	}
}

func copyAll(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func TestBadAttestationMessages(t *testing.T) {
	for name, msg := range map[string][]byte{
		"length 0":          {0, 0, 0, 0},
		"length over cap":   {0, 1, 0, 1},
		"garbage quote":     append([]byte{0, 0, 0, 4}, "junk"...),
		"frame, not quote":  wire.AppendFrame(nil, wire.RegisterClient, []byte("alice")),
		"truncated message": {0, 0, 16, 0, 1, 2, 3},
	} {
		t.Run(name, func(t *testing.T) {
			ln := listen(t)
			cert := newCert(t)
			done := serve(t, ln, serverPeer(platform.Attester(serverID)), cert)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc := tls.Client(c, ClientConfig())
			tc.Write(msg)
			if name == "truncated message" {
				tc.CloseWrite()
			}
			_, err = readServerAnswer(tc)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("answer %v, want an ERROR frame", err)
			}
			if res := <-done; !errors.Is(res.err, ErrPeer) {
				t.Fatalf("server: %v", res.err)
			}
			// Then the server closes.
			tc.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := tc.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Fatalf("connection still open after refusal: %d %v", n, err)
			}
		})
	}
}

func TestSilentClientTimesOut(t *testing.T) {
	ln := listen(t)
	cert := newCert(t)
	p := serverPeer(platform.Attester(serverID))
	p.Timeout = 300 * time.Millisecond
	done := serve(t, ln, p, cert)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err == nil {
			t.Fatal("silent client accepted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server still waiting for a silent client after its deadline")
	}
}

func TestPeerNeedsEverything(t *testing.T) {
	if _, err := (&Peer{}).Client(context.Background(), nil); err == nil {
		t.Fatal("empty Peer accepted")
	}
}
