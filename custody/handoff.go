package custody

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// The hand-off gives a service's data key to another enclave — a
// successor build, or a cluster peer — over attested TLS, and to no one
// else. It runs on a TLS connection after atls's mutual attestation (the
// successor is the TLS client, the predecessor the server), so both
// quotes are bound to this TLS session and the key travels only inside
// it. Two frames follow, each a fixed magic and a type:
//
//	predecessor → successor   "SEHO" 01 ‖ u8 len ‖ purpose ‖ 32-byte data key
//	successor → predecessor   "SEHO" 02 ‖ u8 status (00: stored under my seal key)
//
// The predecessor reports success only when the successor says it has
// stored the key; the successor answers 00 only after its custody file is
// durably replaced. A refusal (quote outside the policy, another purpose)
// closes the connection without the key ever being sent.

const (
	handoffMagic  = "SEHO"
	handoffKey    = 0x01
	handoffStored = 0x02
	maxPurpose    = 64
	// DefaultHandoffTimeout bounds a whole hand-off, handshake included.
	DefaultHandoffTimeout = 30 * time.Second
)

// ErrHandoff is the sentinel of every hand-off failure callers branch on.
var ErrHandoff = errors.New("custody: hand-off failed")

// HandoffConfig is one side's view of a hand-off.
type HandoffConfig struct {
	// Purpose names whose data key this is ("relay", "kms"); both sides
	// must agree, so a relay key is never taken for a KMS key.
	Purpose string
	// Attester quotes this side; Verifier checks the other.
	Attester attest.Attester
	Verifier attest.Verifier
	// Policy decides which enclave may be on the other side: for the
	// predecessor the successor policy (SuccessorPolicy), for the
	// successor the predecessors it accepts a key from (PredecessorPolicy).
	Policy *attest.Policy
	// Timeout bounds the hand-off; zero means DefaultHandoffTimeout.
	Timeout time.Duration
}

func (c *HandoffConfig) check() error {
	if c.Purpose == "" || len(c.Purpose) > maxPurpose {
		return fmt.Errorf("%w: purpose must be 1..%d bytes", ErrHandoff, maxPurpose)
	}
	if c.Policy == nil {
		return fmt.Errorf("%w: no policy (a hand-off without one would give the key to anyone)", ErrHandoff)
	}
	return nil
}

func (c *HandoffConfig) peer() *atls.Peer {
	t := c.Timeout
	if t <= 0 {
		t = DefaultHandoffTimeout
	}
	return &atls.Peer{Attester: c.Attester, Verifier: c.Verifier, Policy: c.Policy, Timeout: t}
}

// ServeHandoff runs the predecessor's side on conn, a TLS server
// connection whose certificate leaf is leafDER: mutual attestation with
// the successor's quote checked against c.Policy, then the key, then the
// successor's confirmation. It returns the successor's verified report,
// or an error wrapping ErrHandoff (and, for a refused quote, atls's
// error). The caller closes conn.
func ServeHandoff(ctx context.Context, conn *tls.Conn, leafDER []byte, dk *DataKey, c HandoffConfig) (*attest.Report, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	p := c.peer()
	r, err := p.Server(ctx, conn, leafDER)
	if err != nil {
		return nil, fmt.Errorf("%w: successor not accepted: %w", ErrHandoff, err)
	}
	conn.SetDeadline(time.Now().Add(p.Timeout))
	msg := make([]byte, 0, 4+1+1+len(c.Purpose)+DataKeySize)
	msg = append(msg, handoffMagic...)
	msg = append(msg, handoffKey, byte(len(c.Purpose)))
	msg = append(msg, c.Purpose...)
	msg = append(msg, dk.b[:]...)
	_, err = conn.Write(msg)
	clear(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: sending the key: %w", ErrHandoff, err)
	}
	var ack [6]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return nil, fmt.Errorf("%w: the successor did not confirm it stored the key: %w", ErrHandoff, err)
	}
	if string(ack[:4]) != handoffMagic || ack[4] != handoffStored {
		return nil, fmt.Errorf("%w: malformed confirmation from the successor", ErrHandoff)
	}
	if ack[5] != 0 {
		return nil, fmt.Errorf("%w: the successor could not store the key (status %d)", ErrHandoff, ack[5])
	}
	return r, nil
}

// ReceiveHandoff runs the successor's side on conn, a TLS client
// connection to the predecessor: mutual attestation with the
// predecessor's quote checked against c.Policy, then the key, which it
// passes to store. store must open the service's data with the key and
// durably re-wrap it under this enclave's seal key; only if it returns
// nil does the predecessor hear "stored". The caller closes conn.
func ReceiveHandoff(ctx context.Context, conn *tls.Conn, c HandoffConfig, store func(*DataKey) error) (*attest.Report, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	p := c.peer()
	r, err := p.Client(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandoff, err)
	}
	conn.SetDeadline(time.Now().Add(p.Timeout))
	dk, err := readKeyFrame(conn, c.Purpose)
	if err != nil {
		return nil, err
	}
	status := byte(0)
	serr := store(dk)
	if serr != nil {
		status = 1
	}
	ack := append([]byte(handoffMagic), handoffStored, status)
	if _, err := conn.Write(ack); err != nil && serr == nil {
		// The key is stored; the predecessor will only not know it.
		return r, nil
	}
	if serr != nil {
		return nil, fmt.Errorf("%w: storing the received key: %w", ErrHandoff, serr)
	}
	return r, nil
}

// readKeyFrame reads the predecessor's key frame: fixed header first,
// the purpose bounded before it is read.
func readKeyFrame(r io.Reader, purpose string) (*DataKey, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading the key frame: %w", ErrHandoff, err)
	}
	n := int(hdr[5])
	rest := make([]byte, n+DataKeySize)
	if _, err := io.ReadFull(r, rest); err != nil {
		return nil, fmt.Errorf("%w: reading the key frame: %w", ErrHandoff, err)
	}
	defer clear(rest)
	return parseKeyFrame(append(hdr[:], rest...), purpose)
}

// parseKeyFrame decodes a whole key frame; every other length, magic,
// type or purpose is refused.
func parseKeyFrame(b []byte, purpose string) (*DataKey, error) {
	if len(b) < 6 || string(b[:4]) != handoffMagic || b[4] != handoffKey {
		return nil, fmt.Errorf("%w: malformed key frame", ErrHandoff)
	}
	n := int(b[5])
	if n == 0 || n > maxPurpose || len(b) != 6+n+DataKeySize {
		return nil, fmt.Errorf("%w: malformed key frame", ErrHandoff)
	}
	if !bytes.Equal(b[6:6+n], []byte(purpose)) {
		return nil, fmt.Errorf("%w: the predecessor offers the data key of %q, not of %q", ErrHandoff, b[6:6+n], purpose)
	}
	dk := &DataKey{}
	copy(dk.b[:], b[6+n:])
	return dk, nil
}

// SelfIdentity returns this enclave's own MRENCLAVE, MRSIGNER, ISVPRODID
// and ISVSVN, read from a quote it makes of itself (not verified: an
// enclave does not need to convince itself).
func SelfIdentity(ctx context.Context, a attest.Attester) (*attest.Report, error) {
	q, err := a.Quote(ctx, [64]byte{})
	if err != nil {
		return nil, err
	}
	p, err := sgxquote.Parse(q)
	if err != nil {
		return nil, err
	}
	return &attest.Report{
		MREnclave: p.Body.MREnclave, MRSigner: p.Body.MRSigner,
		ISVProdID: p.Body.ISVProdID, ISVSVN: p.Body.ISVSVN, Debug: p.Body.Debug(),
	}, nil
}

// SuccessorPolicy is the default policy of the enclaves a running one
// hands its data key to: the same signer and product, an ISVSVN at least
// its own (a downgrade is refused), DEBUG only if it is itself a debug
// enclave, simulation only if it is itself simulated. It is what SGX's
// MRSIGNER sealing allows, and nothing more.
func SuccessorPolicy(self *attest.Report, simulated bool) *attest.Policy {
	prod := self.ISVProdID
	return &attest.Policy{
		MRSigner: []attest.Hash32{self.MRSigner}, ProductID: &prod, MinISVSVN: self.ISVSVN,
		AllowDebug: self.Debug, AllowSimulated: simulated,
	}
}

// PredecessorPolicy is the default policy of the enclaves a successor
// accepts a data key from: the same signer and product, any ISVSVN (the
// predecessor is usually older).
func PredecessorPolicy(self *attest.Report, simulated bool) *attest.Policy {
	prod := self.ISVProdID
	return &attest.Policy{
		MRSigner: []attest.Hash32{self.MRSigner}, ProductID: &prod,
		AllowDebug: self.Debug, AllowSimulated: simulated,
	}
}
