package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/wire"
)

func TestFrameOneByteAtATime(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	for _, b := range wire.AppendFrame(nil, wire.RegisterClient, []byte("slow")) {
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	c.expect(wire.RegisterAck, "")
}

func TestSeveralFramesInOneWrite(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	var b []byte
	b = wire.AppendFrame(b, wire.RegisterClient, []byte("me"))
	b = wire.AppendFrame(b, wire.SendData, addressed("me", []byte("one")))
	b = wire.AppendFrame(b, wire.SendData, addressed("me", []byte("two")))
	b = wire.AppendFrame(b, wire.PollData, nil)
	b = wire.AppendFrame(b, wire.PollData, nil)
	b = wire.AppendFrame(b, wire.PollData, nil)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.expect(wire.RegisterAck, "")
	c.expect(wire.SendAck, "")
	c.expect(wire.SendAck, "")
	if p := c.expect(wire.DataAvailable, ""); !bytes.Equal(p, addressed("me", []byte("one"))) {
		t.Fatalf("first poll %q", p)
	}
	if p := c.expect(wire.DataAvailable, ""); !bytes.Equal(p, addressed("me", []byte("two"))) {
		t.Fatalf("second poll %q", p)
	}
	c.expect(wire.NoDataAvailable, "")
}

func TestZeroLengthPayloads(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, nil)
	c.expect(wire.RegisterNack, "empty client id")
	c.send(wire.SendData, nil)
	c.expect(wire.SendNack, "too short")
	c.send(wire.PollData, nil)
	c.expect(wire.PollNack, "register")
	// A SEND with an empty data part is a valid empty message.
	c.send(wire.RegisterClient, []byte("z"))
	c.expect(wire.RegisterAck, "")
	c.send(wire.SendData, addressed("z", nil))
	c.expect(wire.SendAck, "")
	c.send(wire.PollData, nil)
	if p := c.expect(wire.DataAvailable, ""); !bytes.Equal(p, []byte{0, 1, 'z'}) {
		t.Fatalf("empty message polled as %x", p)
	}
}

func TestMaximumPayload(t *testing.T) {
	const max = 4096
	s := startServer(t, func(c *Config) { c.MaxPayload = max })
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("big"))
	c.expect(wire.RegisterAck, "")
	// Exactly the maximum is accepted.
	exact := addressed("big", make([]byte, max-2-3))
	c.send(wire.SendData, exact)
	c.expect(wire.SendAck, "")
	// One byte more is refused with ERROR, then the connection is closed.
	c.send(wire.SendData, append(exact, 0))
	c.expect(wire.Error, "over the 4096-byte limit")
	c.expectClosed()
}

func TestHugeLengthRefusedWithoutAllocating(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	// Only the header: the server must answer without waiting for 4 GiB.
	c.Write([]byte{byte(wire.SendData), 0xFF, 0xFF, 0xFF, 0xFF})
	c.expect(wire.Error, "4294967295 bytes")
	c.expectClosed()
}

func TestConnectionCutMidFrame(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("cut"))
	c.expect(wire.RegisterAck, "")
	frame := wire.AppendFrame(nil, wire.SendData, addressed("cut", []byte("never finished")))
	c.Write(frame[:7])
	c.Close()
	// The id is freed once the server notices, and others are served.
	other := dial(t, s.addr)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := other.Register("cut")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("id of a cut connection never freed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, ok, _ := other.Poll(); ok {
		t.Fatal("half a frame was delivered")
	}
}

func TestUnknownAndServerTypes(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(0x00, nil)
	c.expect(wire.Error, "unknown frame type 0x00")
	c.send(0x04, []byte("x"))
	c.expect(wire.Error, "unknown frame type 0x04")
	c.send(wire.RegisterAck, nil)
	c.expect(wire.Error, "0x81")
	c.send(wire.Error, []byte("hi"))
	c.expect(wire.Error, "0xFF")
	// The connection stays usable.
	c.send(wire.RegisterClient, []byte("still-here"))
	c.expect(wire.RegisterAck, "")
}

func TestRegisterMalformed(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, nil)
	c.expect(wire.RegisterNack, "empty")
	c.send(wire.RegisterClient, []byte{0xff, 0xfe})
	c.expect(wire.RegisterNack, "UTF-8")
	c.send(wire.RegisterClient, []byte(strings.Repeat("x", 256)))
	c.expect(wire.RegisterNack, "longer than 255")
	c.send(wire.RegisterClient, []byte(strings.Repeat("x", 255)))
	c.expect(wire.RegisterAck, "")
}

func TestSendMalformed(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("s"))
	c.expect(wire.RegisterAck, "")
	c.send(wire.SendData, []byte{0, 10, 'a', 'b'})
	c.expect(wire.SendNack, "id length 10")
	c.send(wire.SendData, []byte{0, 0, 'd', 'a', 't', 'a'})
	c.expect(wire.SendNack, "empty client id")
	c.send(wire.SendData, []byte{0})
	c.expect(wire.SendNack, "too short")
}

func TestSendBeforeRegister(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(wire.SendData, addressed("x", []byte("y")))
	c.expect(wire.SendNack, "register")
	c.send(wire.PollData, nil)
	c.expect(wire.PollNack, "register")
}

func TestRegistrationRules(t *testing.T) {
	s := startServer(t, nil)
	a, b := dialRaw(t, s.addr), dialRaw(t, s.addr)
	a.send(wire.RegisterClient, []byte("alice"))
	a.expect(wire.RegisterAck, "")
	a.send(wire.RegisterClient, []byte("alice")) // same id, same session
	a.expect(wire.RegisterAck, "")
	a.send(wire.RegisterClient, []byte("alice2")) // a second id
	a.expect(wire.RegisterNack, "another id")
	b.send(wire.RegisterClient, []byte("alice")) // held by a live session
	b.expect(wire.RegisterNack, "in use")
	// Messages sent to alice wait in her mailbox across her reconnect.
	b.send(wire.RegisterClient, []byte("bob"))
	b.expect(wire.RegisterAck, "")
	b.send(wire.SendData, addressed("alice", []byte("while you were out")))
	b.expect(wire.SendAck, "")
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	c := dialRaw(t, s.addr)
	for {
		c.send(wire.RegisterClient, []byte("alice"))
		f := c.expect2()
		if f == wire.RegisterAck {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("id never freed after disconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.send(wire.PollData, nil)
	if p := c.expect(wire.DataAvailable, ""); !bytes.Equal(p, addressed("bob", []byte("while you were out"))) {
		t.Fatalf("polled %q", p)
	}
}

// expect2 reads one frame and returns its type.
func (c *rawConn) expect2() wire.Type {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatal(err)
	}
	return f.Type
}

func TestMailboxFull(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits = Limits{MaxMessages: 2, MaxBytes: 100} })
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("m"))
	c.expect(wire.RegisterAck, "")
	for i := 0; i < 2; i++ {
		c.send(wire.SendData, addressed("m", []byte("x")))
		c.expect(wire.SendAck, "")
	}
	c.send(wire.SendData, addressed("m", []byte("x")))
	c.expect(wire.SendNack, "mailbox full")
	c.send(wire.PollData, nil)
	c.expect(wire.DataAvailable, "")
	c.send(wire.SendData, addressed("m", make([]byte, 101)))
	c.expect(wire.SendNack, "mailbox full")
}

// rawTLS does the TLS handshake but no attestation.
func rawTLS(t *testing.T, addr string) *tls.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, atls.ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}

func TestFrameWithoutAttestationRefused(t *testing.T) {
	s := startServer(t, nil)
	tc := rawTLS(t, s.addr)
	// A REGISTER frame read as a quote: 01 00 00 00 = a 16 MiB quote.
	wire.WriteFrame(tc, wire.RegisterClient, []byte("sneaky"))
	rc := &rawConn{t: t, Conn: tc, r: wire.NewReader(tc, 0)}
	rc.expect(wire.Error, "quote")
	rc.expectClosed()
}

func TestBadQuoteMessages(t *testing.T) {
	s := startServer(t, nil)
	for name, msg := range map[string][]byte{
		"length 0":        {0, 0, 0, 0},
		"over the cap":    {0, 1, 0, 1},
		"truncated quote": {0, 0, 16, 0, 'x'},
	} {
		t.Run(name, func(t *testing.T) {
			tc := rawTLS(t, s.addr)
			tc.Write(msg)
			if name == "truncated quote" {
				tc.CloseWrite()
			}
			rc := &rawConn{t: t, Conn: tc, r: wire.NewReader(tc, 0)}
			rc.expect(wire.Error, "")
			rc.expectClosed()
		})
	}
}

func TestQuoteReplayedFromAnotherSession(t *testing.T) {
	s := startServer(t, nil)
	rec := &recordingAttester{inner: platform.Attester(clientID)}
	peer := &atls.Peer{Attester: rec, Verifier: verifier, Policy: simPolicy(relayID)}
	c1, _ := net.Dial("tcp", s.addr)
	defer c1.Close()
	if _, err := peer.Client(context.Background(), tls.Client(c1, atls.ClientConfig())); err != nil {
		t.Fatal(err)
	}
	tc := rawTLS(t, s.addr)
	wire.WriteQuote(tc, rec.last)
	rc := &rawConn{t: t, Conn: tc, r: wire.NewReader(tc, 0)}
	rc.expect(wire.Error, "report-data")
	rc.expectClosed()
}

type recordingAttester struct {
	inner interface {
		Quote(context.Context, [64]byte) ([]byte, error)
	}
	last []byte
}

func (r *recordingAttester) Quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	q, err := r.inner.Quote(ctx, rd)
	r.last = q
	return q, err
}

func TestPlaintextAndOldTLSRefused(t *testing.T) {
	s := startServer(t, nil)
	// Plaintext: a frame straight onto TCP.
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(wire.AppendFrame(nil, wire.RegisterClient, []byte("plain")))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if n > 0 && buf[0] != 0x15 { // a TLS alert record is fine, a frame is not
		t.Fatalf("plaintext client got %x", buf[:n])
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		raw, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg := atls.ClientConfig()
		cfg.MinVersion, cfg.MaxVersion = v, v
		cfg.CipherSuites = nil
		tc := tls.Client(raw, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Errorf("TLS version %x accepted", v)
		}
		raw.Close()
	}
}

func TestStalledHandshakeBlocksNoOne(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Peer.Timeout = 3 * time.Second })
	// Ten connections that never say anything, and one that sends half a
	// ClientHello.
	for i := 0; i < 10; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	half, _ := net.Dial("tcp", s.addr)
	defer half.Close()
	half.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01})
	// A real client is served while the stalled ones are still waiting:
	// when it is done, the half-open connection has not been dropped yet.
	a := dial(t, s.addr)
	if err := a.Register("prompt"); err != nil {
		t.Fatal(err)
	}
	half.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := half.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("the stalled connection was dropped before a real client was served (%v): the real client waited behind it", err)
	}
	// And the stalled ones are dropped after the attestation deadline.
	half.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	var err error
	for err == nil {
		_, err = half.Read(buf)
	}
	if isTimeout(err) {
		t.Fatal("a stalled handshake was never dropped")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestIdleSessionClosed(t *testing.T) {
	s := startServer(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("idle"))
	c.expect(wire.RegisterAck, "")
	c.expectClosed()
}

func TestBindings(t *testing.T) {
	other := clientID
	other.MREnclave[0] ^= 0xff
	s := startServer(t, func(c *Config) {
		c.Peer.Policy = simPolicy(clientID, other)
		c.Bindings = map[string]*attest.Policy{"payroll": simPolicy(other)}
	})
	c := dialRaw(t, s.addr) // attests as clientID
	c.send(wire.RegisterClient, []byte("payroll"))
	c.expect(wire.RegisterNack, "may not register")
	c.send(wire.RegisterClient, []byte("anything-else"))
	c.expect(wire.RegisterAck, "")
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
}

func TestRelayFull(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits = Limits{MaxBytes: 1 << 20, MaxTotalBytes: 100} })
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("a"))
	c.expect(wire.RegisterAck, "")
	c.send(wire.SendData, addressed("a", make([]byte, 60)))
	c.expect(wire.SendAck, "")
	c.send(wire.SendData, addressed("a", make([]byte, 60)))
	c.expect(wire.SendNack, "relay full")
	c.send(wire.PollData, nil)
	c.expect(wire.DataAvailable, "")
	c.send(wire.SendData, addressed("a", make([]byte, 60)))
	c.expect(wire.SendAck, "") // polled bytes are given back
}
