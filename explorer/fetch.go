package explorer

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// Server kinds a live fetch may name.
const (
	KindKMS   = "kmsd"
	KindRelay = "relayd"
)

// Live describes the server a quote was fetched from.
type Live struct {
	Address    string `json:"address"`
	Kind       string `json:"kind"`
	TLSVersion string `json:"tls_version"`
	// Binding: the quote binds this TLS connection — kmsd: the
	// certificate's key, whose possession the handshake proved; relayd:
	// the certificate and this session's exporter digest.
	Binding     bool   `json:"binding"`
	BindingNote string `json:"binding_note"`
}

// ExplorerMREnclave is the measurement the explorer claims when it
// attests to a relayd as a simulated client: SHA-256 of
// "shared-enclave explorer". Only a simulated platform can quote for it.
var ExplorerMREnclave = attest.Hash32(sha256.Sum256([]byte("shared-enclave explorer")))

// fetch connects to a running kmsd or relayd at addr and returns the
// quote it presents. Nothing is sent to it but a TLS handshake (kmsd) or,
// for relayd, the simulated client quote the protocol requires first.
func (s *Server) fetch(ctx context.Context, kind, addr string, req *Request) (*Evidence, *Live, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, &RequestError{"address", fmt.Sprintf("%q is not HOST:PORT", addr)}
	}
	if kind == KindRelay && req.Source != SourceSim {
		return nil, nil, &RequestError{"address", "relayd sends its quote only to a client that attests first, and the explorer runs outside any enclave: " +
			"it can attest only as an enclave of a simulated platform. Choose the simulated platform as the collateral source " +
			"(for a real relayd, run example-client inside an enclave, or read its quote from its logs)"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	d := net.Dialer{Timeout: s.cfg.FetchTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, &RequestError{"address", fmt.Sprintf("cannot reach %s: %v", addr, err)}
	}
	defer raw.Close()
	deadline, _ := ctx.Deadline()
	raw.SetDeadline(deadline)
	// The server's certificate is self-signed (RA-TLS): what is checked is
	// the quote, against the collateral and root the user chose, and its
	// binding to this connection — not a CA signature.
	cfg := atls.ClientConfig()
	cfg.InsecureSkipVerify = true
	conn := tls.Client(raw, cfg)
	live := &Live{Address: addr, Kind: kind}
	if kind == KindKMS {
		if err := conn.HandshakeContext(ctx); err != nil {
			return nil, nil, &RequestError{"address", fmt.Sprintf("TLS handshake with %s: %v", addr, err)}
		}
		cs := conn.ConnectionState()
		live.TLSVersion = tls.VersionName(cs.Version)
		if len(cs.PeerCertificates) == 0 {
			return nil, nil, &RequestError{"address", addr + " sent no certificate"}
		}
		leaf := cs.PeerCertificates[0]
		live.BindingNote = "report data = SHA-256 of the certificate's public key (per its RA-TLS format); the handshake proved the server holds that key"
		return &Evidence{Encoding: "RA-TLS certificate presented by kmsd", Cert: leaf}, live, nil
	}
	if kind != KindRelay {
		return nil, nil, &RequestError{"kind", fmt.Sprintf("unknown server kind %q: want kmsd or relayd", kind)}
	}
	p, err := sim.Load(req.Location)
	if err != nil {
		return nil, nil, &RequestError{"collateral", fmt.Sprintf("cannot load the simulated platform to attest to relayd: %v", err)}
	}
	cp := &capture{}
	peer := &atls.Peer{Attester: p.Attester(sim.Identity{MREnclave: ExplorerMREnclave}), Verifier: cp, Policy: &attest.Policy{}, Timeout: s.cfg.FetchTimeout}
	_, err = peer.Client(ctx, conn)
	if cp.quote == nil {
		var re *atls.RefusedError
		if errors.As(err, &re) {
			return nil, nil, &RequestError{"address", fmt.Sprintf("relayd at %s refused the explorer's simulated client quote: %s", addr, re.Reason)}
		}
		return nil, nil, &RequestError{"address", fmt.Sprintf("attestation exchange with %s: %v", addr, err)}
	}
	cs := conn.ConnectionState()
	live.TLSVersion = tls.VersionName(cs.Version)
	digest, err := atls.SessionDigest(&cs)
	if err != nil {
		return nil, nil, &RequestError{"address", err.Error()}
	}
	want := atls.ServerReportData(cs.PeerCertificates[0].Raw, digest)
	if q, err := sgxquote.Parse(cp.quote); err == nil {
		live.Binding = q.Body.ReportData == want
	}
	live.BindingNote = "report data = SHA-256(the server's certificate) ‖ SHA-256(this session's TLS exporter)"
	return &Evidence{Encoding: "quote sent by relayd in the attestation exchange", Quote: cp.quote}, live, nil
}

var errCaptured = errors.New("explorer: quote captured for the explorer's own verification")

// capture is the Verifier the explorer gives atls.Peer: it keeps the
// server's quote and stops the exchange; the explorer verifies the quote
// itself, step by step, with the collateral the user chose.
type capture struct{ quote []byte }

func (c *capture) Verify(_ context.Context, quote []byte) (*attest.Report, error) {
	c.quote = append([]byte(nil), quote...)
	return nil, errCaptured
}
