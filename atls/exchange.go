package atls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/wire"
)

// ExporterLabel is the TLS exporter label (RFC 5705, RFC 8446 §7.5) from
// which both sides derive the session digest their quotes bind.
const ExporterLabel = "EXPERIMENTAL-shared-enclave-attest"

// DefaultTimeout bounds the whole attestation exchange, handshake included.
const DefaultTimeout = 15 * time.Second

// maxReason caps the reason of an ERROR frame a client will read.
const maxReason = 4096

// Errors callers branch on.
var (
	// ErrNoExporter: the TLS session offers no keying-material exporter
	// (TLS 1.2 without extended master secret), so nothing can bind a
	// quote to it.
	ErrNoExporter = errors.New("atls: TLS session has no exporter (TLS 1.2 without extended master secret?)")
	// ErrRefused: the peer refused our attestation and said why.
	ErrRefused = errors.New("atls: peer refused our attestation")
	// ErrPeer: the peer's evidence did not pass verification or policy.
	ErrPeer = errors.New("atls: peer attestation failed")
)

// RefusedError carries the reason the server sent in its ERROR frame.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "atls: server refused our attestation: " + e.Reason }

// Unwrap returns ErrRefused.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// PeerError wraps why the peer's evidence was not accepted.
type PeerError struct{ Err error }

func (e *PeerError) Error() string { return "atls: peer attestation failed: " + e.Err.Error() }

// Unwrap returns ErrPeer and the cause (attest.ErrNotGenuine,
// attest.ErrPolicy, a wire error…).
func (e *PeerError) Unwrap() []error { return []error{ErrPeer, e.Err} }

// SessionDigest is SHA-256 of 32 bytes exported from the TLS session under
// ExporterLabel: a value unique to this session that both ends compute and
// no one else can.
func SessionDigest(cs *tls.ConnectionState) ([32]byte, error) {
	if !cs.HandshakeComplete {
		return [32]byte{}, errors.New("atls: TLS handshake not complete")
	}
	if cs.Version < tls.VersionTLS12 {
		return [32]byte{}, fmt.Errorf("atls: TLS version %#x is below 1.2", cs.Version)
	}
	ekm, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: %v", ErrNoExporter, err)
	}
	return sha256.Sum256(ekm), nil
}

// ClientReportData is the client's report data: digest ‖ 32 zeros.
func ClientReportData(digest [32]byte) [64]byte {
	var rd [64]byte
	copy(rd[:32], digest[:])
	return rd
}

// ServerReportData is the server's report data:
// SHA-256(leaf certificate DER) ‖ digest.
func ServerReportData(leafDER []byte, digest [32]byte) [64]byte {
	var rd [64]byte
	h := sha256.Sum256(leafDER)
	copy(rd[:32], h[:])
	copy(rd[32:], digest[:])
	return rd
}

// Peer is one side of the post-handshake mutual attestation.
type Peer struct {
	// Attester quotes this side's report data.
	Attester attest.Attester
	// Verifier checks the other side's quote; Policy decides whether it is
	// acceptable. The binding to this TLS session is added to Policy.
	Verifier attest.Verifier
	Policy   *attest.Policy
	// Timeout bounds the exchange (handshake included); zero means
	// DefaultTimeout.
	Timeout time.Duration
}

func (p *Peer) deadline(ctx context.Context) time.Time {
	t := p.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	d := time.Now().Add(t)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// begin is what both sides do first: check the Peer, set the exchange's
// deadline, complete the TLS handshake and derive the session digest.
func (p *Peer) begin(ctx context.Context, conn *tls.Conn) (tls.ConnectionState, [32]byte, error) {
	if p.Attester == nil || p.Verifier == nil || p.Policy == nil {
		return tls.ConnectionState{}, [32]byte{}, errors.New("atls: Peer needs an Attester, a Verifier and a Policy")
	}
	conn.SetDeadline(p.deadline(ctx))
	if err := conn.HandshakeContext(ctx); err != nil {
		return tls.ConnectionState{}, [32]byte{}, fmt.Errorf("atls: TLS handshake: %w", err)
	}
	cs := conn.ConnectionState()
	digest, err := SessionDigest(&cs)
	return cs, digest, err
}

// Client runs the client side over conn, a TLS client connection, after
// (or including) its handshake:
//
//  1. send u32 length ‖ quote over ClientReportData(SessionDigest);
//  2. read the server's answer: an ERROR frame (→ *RefusedError) or
//     u32 length ‖ quote;
//  3. verify that quote, apply Policy, and require its report data to be
//     ServerReportData(the leaf certificate of this handshake, the digest).
//
// It returns the server's verified report. On error the caller must close
// conn. Deadlines set on conn are cleared on success.
func (p *Peer) Client(ctx context.Context, conn *tls.Conn) (*attest.Report, error) {
	cs, digest, err := p.begin(ctx, conn)
	if err != nil {
		return nil, err
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("atls: server sent no certificate")
	}
	quote, err := p.Attester.Quote(ctx, ClientReportData(digest))
	if err != nil {
		return nil, fmt.Errorf("atls: quoting: %w", err)
	}
	if err := wire.WriteQuote(conn, quote); err != nil {
		return nil, fmt.Errorf("atls: sending quote: %w", err)
	}
	serverQuote, err := readServerAnswer(conn)
	if err != nil {
		return nil, err
	}
	want := ServerReportData(cs.PeerCertificates[0].Raw, digest)
	r, err := attest.VerifyAndCheck(ctx, p.Verifier, p.Policy.WithReportData(want[:]), serverQuote)
	if err != nil {
		return nil, &PeerError{err}
	}
	conn.SetDeadline(time.Time{})
	return r, nil
}

// readServerAnswer reads either the server's quote message or its ERROR
// frame. The two cannot be confused: an ERROR frame starts with 0xFF, and
// a quote length starting with 0xFF would be far over wire.MaxQuote.
func readServerAnswer(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("atls: reading server quote: %w", err)
	}
	if wire.Type(hdr[0]) == wire.Error {
		var last [1]byte
		if _, err := io.ReadFull(r, last[:]); err != nil {
			return nil, &RefusedError{Reason: "(truncated ERROR frame)"}
		}
		n := binary.BigEndian.Uint32(append(hdr[1:4:4], last[0]))
		reason := make([]byte, min(n, maxReason))
		k, _ := io.ReadFull(r, reason)
		reason = reason[:k]
		if !utf8.Valid(reason) {
			reason = []byte("(reason is not UTF-8)")
		}
		return nil, &RefusedError{Reason: string(reason)}
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > wire.MaxQuote {
		return nil, &PeerError{&wire.SizeError{What: "server quote", Len: uint64(n), Limit: wire.MaxQuote}}
	}
	q := make([]byte, n)
	if _, err := io.ReadFull(r, q); err != nil {
		return nil, &PeerError{fmt.Errorf("reading server quote: %w", err)}
	}
	return q, nil
}

// Server runs the server side over conn, a TLS server connection whose
// certificate leaf is leafDER:
//
//  1. complete the handshake and read u32 length ‖ client quote;
//  2. verify it, apply Policy, and require report data
//     ClientReportData(SessionDigest) — on any failure send one ERROR
//     frame with the reason and return the error;
//  3. send u32 length ‖ quote over ServerReportData(leafDER, digest).
//
// It returns the client's verified report. On error the caller must close
// conn. Deadlines set on conn are cleared on success.
func (p *Peer) Server(ctx context.Context, conn *tls.Conn, leafDER []byte) (*attest.Report, error) {
	_, digest, err := p.begin(ctx, conn)
	if err != nil {
		if errors.Is(err, ErrNoExporter) {
			refuse(conn, "TLS session has no exporter: use TLS 1.3, or TLS 1.2 with extended master secret")
		}
		return nil, err
	}
	quote, err := wire.ReadQuote(conn)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			refuse(conn, "attestation timed out")
		} else {
			refuse(conn, "bad attestation message: "+err.Error())
		}
		return nil, &PeerError{err}
	}
	want := ClientReportData(digest)
	r, err := attest.VerifyAndCheck(ctx, p.Verifier, p.Policy.WithReportData(want[:]), quote)
	if err != nil {
		refuse(conn, "attestation refused: "+err.Error())
		return nil, &PeerError{err}
	}
	own, err := p.Attester.Quote(ctx, ServerReportData(leafDER, digest))
	if err != nil {
		refuse(conn, "server could not produce its quote")
		return nil, fmt.Errorf("atls: quoting: %w", err)
	}
	if err := wire.WriteQuote(conn, own); err != nil {
		return nil, fmt.Errorf("atls: sending quote: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return r, nil
}

// refuse sends one ERROR frame, bounded by a short write deadline.
func refuse(conn net.Conn, reason string) {
	conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	wire.WriteFrame(conn, wire.Error, []byte(reason))
}
