package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/wire"
)

// Config configures a relay connection.
type Config struct {
	// Attester quotes this enclave; Verifier and Policy decide which relay
	// is acceptable. All three are required.
	Attester attest.Attester
	Verifier attest.Verifier
	Policy   *attest.Policy
	// Timeout bounds the dial and attestation, and each request; default
	// 15 s.
	Timeout time.Duration
	// MaxPayload caps frames read from the server; default
	// wire.DefaultMaxPayload.
	MaxPayload int
	// TLS, when set, is used instead of atls.ClientConfig().
	TLS *tls.Config
}

// Errors.
var (
	// ErrNack wraps every NACK: the server understood and said no.
	ErrNack = errors.New("client: request refused")
)

// NackError is a REGISTER_NACK, SEND_NACK or POLL_NACK with its reason.
type NackError struct {
	Type   wire.Type
	Reason string
}

func (e *NackError) Error() string { return fmt.Sprintf("client: %s: %s", e.Type, e.Reason) }

// Unwrap returns ErrNack.
func (e *NackError) Unwrap() error { return ErrNack }

// ServerError is an ERROR frame from the server.
type ServerError struct{ Reason string }

func (e *ServerError) Error() string { return "client: server error: " + e.Reason }

// Conn is an attested connection to a relay, one request at a time: its
// methods are safe for concurrent use, and they take turns. Register, Send
// and Poll are the seed protocol; Hello, Fetch, Ack and SendID are the
// request/answer part of the delivery extension (docs/PROTOCOL.md section
// 8), for a caller that wants to drive it itself (libsharedenclave does).
// For push delivery and reconnection use Client.
type Conn struct {
	mu      sync.Mutex // one request (or pipeline) at a time
	conn    *tls.Conn
	r       *wire.Reader
	w       *bufio.Writer
	timeout time.Duration
	server  *attest.Report
	buf     []byte
	reads   int
}

// Dial connects to a relay at addr, runs the TLS handshake and the mutual
// attestation, and returns the connection once the relay's quote has been
// verified against cfg.Policy and bound to this TLS session.
func Dial(ctx context.Context, addr string, cfg Config) (*Conn, error) {
	if cfg.Attester == nil || cfg.Verifier == nil || cfg.Policy == nil {
		return nil, errors.New("client: Config needs an Attester, a Verifier and a Policy")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	tcfg := cfg.TLS
	if tcfg == nil {
		tcfg = atls.ClientConfig()
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	tc := tls.Client(raw, tcfg)
	peer := &atls.Peer{Attester: cfg.Attester, Verifier: cfg.Verifier, Policy: cfg.Policy, Timeout: cfg.Timeout}
	report, err := peer.Client(ctx, tc)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return &Conn{
		conn: tc, r: wire.NewReader(tc, cfg.MaxPayload), w: bufio.NewWriterSize(tc, 16<<10),
		timeout: cfg.Timeout, server: report,
	}, nil
}

// ServerReport is the relay's verified attestation report.
func (c *Conn) ServerReport() *attest.Report { return c.server }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

func (c *Conn) write(t wire.Type, payload []byte) error {
	if err := wire.CheckFrameLen(len(payload)); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.buf = wire.AppendFrame(c.buf[:0], t, payload)
	_, err := c.w.Write(c.buf)
	return err
}

func (c *Conn) flush() error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.w.Flush()
}

func (c *Conn) read() (wire.Frame, error) {
	// Renew the deadline when the read may block, and every 128 frames
	// in any case, so that a long buffered run never leaves a stale one.
	if c.reads++; c.r.Buffered() == 0 || c.reads%128 == 0 {
		c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	f, err := c.r.ReadFrame()
	if err != nil {
		return f, fmt.Errorf("client: %w", err)
	}
	if f.Type == wire.Error {
		return f, &ServerError{Reason: string(f.Payload)}
	}
	return f, nil
}

func (c *Conn) roundTrip(t wire.Type, payload []byte) (wire.Frame, error) {
	if err := c.write(t, payload); err != nil {
		return wire.Frame{}, err
	}
	if err := c.flush(); err != nil {
		return wire.Frame{}, fmt.Errorf("client: %w", err)
	}
	return c.read()
}

func expect(f wire.Frame, ack, nack wire.Type) error {
	switch f.Type {
	case ack:
		return nil
	case nack:
		return &NackError{Type: nack, Reason: string(f.Payload)}
	}
	return fmt.Errorf("client: unexpected %s in answer", f.Type)
}

// Register claims a client id for this connection.
func (c *Conn) Register(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := wire.AppendRegister(nil, id)
	if err != nil {
		return fmt.Errorf("client: register: %w", err)
	}
	f, err := c.roundTrip(wire.RegisterClient, p)
	if err != nil {
		return err
	}
	return expect(f, wire.RegisterAck, wire.RegisterNack)
}

// Send delivers data to recipient's mailbox. It returns after the relay
// acknowledged (SEND_ACK) or refused (*NackError) it. A recipient the
// relay would refuse (empty, over 255 bytes, not UTF-8) returns an error
// wrapping wire.ErrMalformed and nothing is sent.
func (c *Conn) Send(recipient string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := wire.AppendAddressed(nil, recipient, data)
	if err != nil {
		return fmt.Errorf("client: send: recipient: %w", err)
	}
	f, err := c.roundTrip(wire.SendData, p)
	if err != nil {
		return err
	}
	return expect(f, wire.SendAck, wire.SendNack)
}

// Poll fetches the oldest message waiting for this client. ok is false
// when the mailbox is empty.
func (c *Conn) Poll() (from string, data []byte, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.roundTrip(wire.PollData, nil)
	if err != nil {
		return "", nil, false, err
	}
	switch f.Type {
	case wire.NoDataAvailable:
		return "", nil, false, nil
	case wire.PollNack:
		return "", nil, false, &NackError{Type: wire.PollNack, Reason: string(f.Payload)}
	case wire.DataAvailable:
		id, d, err := wire.ParseAddressed(f.Payload)
		if err != nil {
			return "", nil, false, fmt.Errorf("client: DATA_AVAILABLE: %w", err)
		}
		return string(id), append([]byte(nil), d...), true, nil
	}
	return "", nil, false, fmt.Errorf("client: unexpected %s in answer to POLL", f.Type)
}

// Pipeline sends many SEND_DATA frames before reading their answers, as
// a bulk sender would: it writes all of msgs, then reads len(msgs)
// answers. It returns how many were acknowledged and the first NACK or
// error. Order is kept; a NACKed message is not retried.
func (c *Conn) Pipeline(recipient string, msgs [][]byte) (acked int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var payload []byte
	for _, m := range msgs {
		payload, err = wire.AppendAddressed(payload[:0], recipient, m)
		if err != nil {
			return 0, fmt.Errorf("client: send: recipient: %w", err)
		}
		if err := c.write(wire.SendData, payload); err != nil {
			return 0, err
		}
	}
	if err := c.flush(); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	var first error
	for range msgs {
		f, err := c.read()
		if err != nil {
			return acked, err
		}
		if err := expect(f, wire.SendAck, wire.SendNack); err != nil {
			if first == nil {
				first = err
			}
		} else {
			acked++
		}
	}
	return acked, first
}

// PollMany sends n POLL_DATA frames at once and reads their answers,
// returning the messages that came back (oldest first). It is Poll for a
// receiver that expects many messages.
func (c *Conn) PollMany(n int) ([]Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		if err := c.write(wire.PollData, nil); err != nil {
			return nil, err
		}
	}
	if err := c.flush(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var out []Message
	var first error
	for i := 0; i < n; i++ {
		f, err := c.read()
		if err != nil {
			return out, err
		}
		switch f.Type {
		case wire.NoDataAvailable:
		case wire.DataAvailable:
			id, d, err := wire.ParseAddressed(f.Payload)
			if err != nil {
				return out, fmt.Errorf("client: DATA_AVAILABLE: %w", err)
			}
			out = append(out, Message{From: string(id), Data: append([]byte(nil), d...)})
		case wire.PollNack:
			if first == nil {
				first = &NackError{Type: wire.PollNack, Reason: string(f.Payload)}
			}
		default:
			return out, fmt.Errorf("client: unexpected %s in answer to POLL", f.Type)
		}
	}
	return out, first
}

// Message is a message received from the relay.
type Message struct {
	From string
	Data []byte
}

// Hello asks for the extension features (wire.FeatureDelivery,
// wire.FeatureMsgID) on this connection and returns what the relay
// granted. A relay of the seed protocol answers HELLO with an ERROR frame
// and the connection stays open: Hello then returns a zero HelloAckInfo
// (no features) and a nil error.
func (c *Conn) Hello(features uint32) (wire.HelloAckInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.roundTrip(wire.Hello, wire.AppendHello(nil, wire.HelloInfo{Version: wire.ExtVersion, Features: features}))
	var se *ServerError
	switch {
	case errors.As(err, &se):
		return wire.HelloAckInfo{}, nil // the seed protocol: "unknown frame type 0x10"
	case err != nil:
		return wire.HelloAckInfo{}, err
	case f.Type == wire.ExtNack:
		return wire.HelloAckInfo{}, &NackError{Type: wire.ExtNack, Reason: string(f.Payload)}
	case f.Type != wire.HelloAck:
		return wire.HelloAckInfo{}, fmt.Errorf("client: unexpected %s in answer to HELLO", f.Type)
	}
	info, err := wire.ParseHelloAck(f.Payload)
	if err != nil {
		return wire.HelloAckInfo{}, fmt.Errorf("client: HELLO_ACK: %w", err)
	}
	return info, nil
}

// Fetch (FETCH, after a Hello that granted wire.FeatureDelivery) returns
// up to max messages for this connection's id, oldest first, waiting up to
// wait (whole milliseconds, at most the relay's HelloAckInfo.MaxWaitMS) for
// the first one; none after the wait is not an error. The relay holds each
// message returned until Ack, and delivers it again (flagged redelivered)
// after its ack-wait or when this connection ends. A refusal is a
// *NackError of type wire.ExtNack.
func (c *Conn) Fetch(max int, wait time.Duration) ([]wire.Delivery, error) {
	if max < 1 || max > 0xFFFF || wait < 0 || wait > 0xFFFFFFFF*time.Millisecond {
		return nil, fmt.Errorf("client: fetch: max %d (want 1..65535) or wait %v out of range", max, wait)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := wire.AppendFetch(nil, wire.FetchReq{Max: uint16(max), WaitMS: uint32(wait / time.Millisecond)})
	if err != nil {
		return nil, fmt.Errorf("client: fetch: %w", err)
	}
	if err := c.write(wire.Fetch, p); err != nil {
		return nil, err
	}
	if err := c.flush(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var out []wire.Delivery
	for {
		// The first answer may take the whole wait.
		c.conn.SetReadDeadline(time.Now().Add(wait + c.timeout))
		f, err := c.r.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		switch f.Type {
		case wire.Deliver:
			d, err := wire.ParseDelivery(f.Payload)
			if err != nil {
				return nil, fmt.Errorf("client: DELIVER: %w", err)
			}
			d.MsgID = append([]byte(nil), d.MsgID...)
			d.From = append([]byte(nil), d.From...)
			d.Data = append([]byte(nil), d.Data...)
			out = append(out, d)
		case wire.FetchEnd:
			n, err := wire.ParseFetchEnd(f.Payload)
			if err != nil || int(n) != len(out) {
				return nil, fmt.Errorf("client: FETCH_END %d after %d DELIVERs (%v)", n, len(out), err)
			}
			return out, nil
		case wire.ExtNack:
			return nil, &NackError{Type: wire.ExtNack, Reason: string(f.Payload)}
		case wire.Error:
			return nil, &ServerError{Reason: string(f.Payload)}
		default:
			return nil, fmt.Errorf("client: unexpected %s in answer to FETCH", f.Type)
		}
	}
}

// Ack (ACK, individual) acknowledges deliveries this connection holds (at
// most wire.MaxAckIDs): the relay removes them. notHeld counts the ids it
// did not hold (already acknowledged, released when a connection ended,
// never delivered): not an error.
func (c *Conn) Ack(ids ...uint64) (acked, notHeld int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := wire.AppendAck(nil, wire.AckReq{IDs: ids})
	if err != nil {
		return 0, 0, fmt.Errorf("client: ack: %w", err)
	}
	f, err := c.roundTrip(wire.Ack, p)
	if err != nil {
		return 0, 0, err
	}
	switch f.Type {
	case wire.Acked:
		a, n, err := wire.ParseAcked(f.Payload)
		if err != nil {
			return 0, 0, fmt.Errorf("client: ACKED: %w", err)
		}
		return int(a), int(n), nil
	case wire.ExtNack:
		return 0, 0, &NackError{Type: wire.ExtNack, Reason: string(f.Payload)}
	}
	return 0, 0, fmt.Errorf("client: unexpected %s in answer to ACK", f.Type)
}

// SendID (SEND_ID, after a Hello that granted wire.FeatureMsgID) is Send
// with a message id (1..64 bytes): the relay stores a message once per
// sender and id within its de-duplication window, so a send whose outcome
// is unknown (a timeout, a lost connection) may be repeated with the same
// id, on this connection or a new one registered with the same client id.
func (c *Conn) SendID(msgID []byte, recipient string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := wire.AppendSendID(nil, msgID, recipient, data)
	if err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	f, err := c.roundTrip(wire.SendID, p)
	if err != nil {
		return err
	}
	if f.Type == wire.ExtNack {
		return &NackError{Type: wire.ExtNack, Reason: string(f.Payload)}
	}
	return expect(f, wire.SendAck, wire.SendNack)
}
