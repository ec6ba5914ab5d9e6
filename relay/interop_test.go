package relay

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/wire"
)

// A stock crypto/tls client, knowing nothing of attestation, completes
// the TLS handshake with the relay; the relay then waits for its quote.
func TestStockTLSClientHandshakesWithRelay(t *testing.T) {
	s := startServer(t, nil)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		c, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: v})
		if err != nil {
			t.Fatalf("TLS %x: %v", v, err)
		}
		if got := c.ConnectionState().Version; got != v {
			t.Errorf("negotiated %x, want %x", got, v)
		}
		c.Close()
	}
}

// openssl s_client completes the handshake with relayd's TLS layer (1.3
// and 1.2), and a TLS 1.2 session without extended master secret — which
// has no safe exporter to bind quotes to — gets an ERROR frame saying so.
func TestOpenSSLAgainstRelay(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	s := startServer(t, func(c *Config) { c.Peer.Timeout = 2 * time.Second })
	sClient := func(env []string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", s.addr, "-ign_eof"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		out := sClient(nil, v)
		want := map[string]string{"-tls1_3": "TLSv1.3", "-tls1_2": "TLSv1.2"}[v]
		if !strings.Contains(out, "Protocol  : "+want) || strings.Contains(out, "Cipher is (NONE)") {
			t.Errorf("openssl s_client %s: no %s handshake:\n%s", v, want, out)
		}
	}
	// Refused by the relay ("Cipher is (NONE)", a protocol version alert) or
	// by this openssl's own policy ("no protocols available"): either way
	// no TLS 1.1 session.
	if out := sClient(nil, "-tls1_1"); !strings.Contains(out, "Cipher is (NONE)") && !strings.Contains(out, "no protocols available") && !strings.Contains(out, "protocol version") {
		t.Errorf("openssl completed a TLS 1.1 handshake:\n%s", out)
	}
	cnf := filepath.Join(t.TempDir(), "noems.cnf")
	os.WriteFile(cnf, []byte(`openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Options = -ExtendedMasterSecret
`), 0o644)
	out := sClient([]string{"OPENSSL_CONF=" + cnf}, "-tls1_2")
	if !strings.Contains(out, "Extended master secret: no") {
		t.Skipf("could not turn off extended master secret in this openssl:\n%s", out)
	}
	if !strings.Contains(out, string([]byte{byte(wire.Error)})) || !strings.Contains(out, "no exporter") {
		t.Errorf("TLS 1.2 without EMS was not refused with an ERROR frame:\n%s", out)
	}
}

// Shutdown stops accepting, wakes sessions waiting for their next frame,
// answers what they already sent, and returns without waiting for the
// idle timeout.
func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, func(c *Config) { c.IdleTimeout = time.Hour })
	idle := dialRaw(t, s.addr)
	idle.send(wire.RegisterClient, []byte("idle"))
	idle.expect(wire.RegisterAck, "")
	busy := dialRaw(t, s.addr)
	var b []byte
	b = wire.AppendFrame(b, wire.RegisterClient, []byte("busy"))
	for i := 0; i < 200; i++ {
		b = wire.AppendFrame(b, wire.PollData, nil)
	}
	busy.Write(b)
	busy.expect(wire.RegisterAck, "") // the server is handling the batch
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	idle.expectClosed()
	// Every answer the busy client got is a whole frame; then EOF.
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := busy.r.ReadFrame()
		if err != nil {
			if strings.Contains(err.Error(), "unexpected EOF") {
				t.Fatalf("answer cut mid-frame: %v", err)
			}
			break
		}
		if f.Type != wire.NoDataAvailable {
			t.Fatalf("unexpected %s", f.Type)
		}
	}
	// New connections are refused.
	if c, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Fatal("connection accepted after Shutdown")
	}
}
