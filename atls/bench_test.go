package atls

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
)

// BenchmarkAttestedHandshake is one full connection: TCP connect, TLS 1.3
// handshake, client quote, server verification, server quote, client
// verification (simulated attester, collateral cached).
func BenchmarkAttestedHandshake(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cert, err := NewKeyCertificate(CertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sp := serverPeer(platform.Attester(serverID))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, ServerConfig(cert))
				if _, err := sp.Server(context.Background(), tc, cert.Certificate[0]); err == nil {
					tc.Read(make([]byte, 1))
				}
			}()
		}
	}()
	cp := clientPeer(platform.Attester(clientID))
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cp.Client(context.Background(), tls.Client(c, ClientConfig())); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkTLSHandshakeOnly is the same connection without attestation,
// to split the cost.
func BenchmarkTLSHandshakeOnly(b *testing.B) {
	cert, err := NewKeyCertificate(CertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Read(make([]byte, 1)); c.Close() }()
		}
	}()
	for b.Loop() {
		c, err := tls.Dial("tcp", ln.Addr().String(), ClientConfig())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkQuoteSimulated is the cost of producing one simulated quote.
func BenchmarkQuoteSimulated(b *testing.B) {
	att := platform.Attester(clientID)
	for b.Loop() {
		if _, err := att.Quote(context.Background(), [64]byte{1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyQuote is the cost of verifying one quote with policy
// (collateral cached).
func BenchmarkVerifyQuote(b *testing.B) {
	q, err := platform.Attester(clientID).Quote(context.Background(), [64]byte{1})
	if err != nil {
		b.Fatal(err)
	}
	p := policyFor(clientID)
	for b.Loop() {
		r, err := verifier.Verify(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Check(r); err != nil {
			b.Fatal(err)
		}
	}
}
