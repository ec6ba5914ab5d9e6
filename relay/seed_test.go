package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/wire"
)

// The seed specification's four test cases, over real TCP + TLS on
// loopback with simulated attestation.

// Seed case 1: A sends to B, and B polls it.
func TestSeedSendAndPoll(t *testing.T) {
	s := startServer(t, nil)
	a, b := dial(t, s.addr), dial(t, s.addr)
	if err := a.Register("A"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("B"); err != nil {
		t.Fatal(err)
	}
	if err := a.Send("B", []byte("hello from A")); err != nil {
		t.Fatal(err)
	}
	from, data, ok, err := b.Poll()
	if err != nil || !ok || from != "A" || string(data) != "hello from A" {
		t.Fatalf("B polled %q %q %v %v", from, data, ok, err)
	}
	if _, _, ok, err := b.Poll(); ok || err != nil {
		t.Fatalf("message delivered twice: %v %v", ok, err)
	}
}

// Seed case 2: a client sending an invalid quote is rejected and
// disconnected.
func TestSeedInvalidQuoteRejected(t *testing.T) {
	s := startServer(t, nil)
	for name, att := range map[string]attest.Attester{
		"garbage":               garbageAttester{},
		"wrong enclave":         platform.Attester(sim.Identity{MREnclave: attest.Hash32{0xba, 0xd}}),
		"debug enclave":         platform.Attester(sim.Identity{MREnclave: clientID.MREnclave, Debug: true}),
		"other platform":        otherPlatformAttester(t),
		"quote for another TLS": &fixedRD{inner: platform.Attester(clientID)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := client.Dial(context.Background(), s.addr, client.Config{Attester: att, Verifier: verifier, Policy: simPolicy(relayID), Timeout: 5 * time.Second})
			if !errors.Is(err, atls.ErrRefused) {
				t.Fatalf("dial with %s quote: %v, want refused", name, err)
			}
		})
	}
}

type garbageAttester struct{}

func (garbageAttester) Quote(context.Context, [64]byte) ([]byte, error) {
	return []byte("this is not a quote"), nil
}

// fixedRD quotes over report data of its own choosing: a genuine quote not
// bound to this session.
type fixedRD struct{ inner attest.Attester }

func (f *fixedRD) Quote(ctx context.Context, _ [64]byte) ([]byte, error) {
	return f.inner.Quote(ctx, [64]byte{1, 2, 3})
}

func otherPlatformAttester(t *testing.T) attest.Attester {
	p, err := sim.Init(t.TempDir()+"/other", sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Attester(clientID)
}

// Seed case 3: the client verifies the server's quote, really: a server
// with the wrong measurement, or whose quote binds another certificate, is
// refused.
func TestSeedClientVerifiesServer(t *testing.T) {
	wrong := startServer(t, func(c *Config) {
		c.Peer.Attester = platform.Attester(sim.Identity{MREnclave: attest.Hash32{0xee}})
	})
	_, err := client.Dial(context.Background(), wrong.addr, client.Config{Attester: platform.Attester(clientID), Verifier: verifier, Policy: simPolicy(relayID)})
	var pe *attest.PolicyError
	if !errors.As(err, &pe) || pe.Rule != "mrenclave" {
		t.Fatalf("server with the wrong MRENCLAVE: %v", err)
	}

	other, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unbound := startServer(t, func(c *Config) {
		c.Peer.Attester = &otherCert{inner: platform.Attester(relayID), der: other.Certificate[0]}
	})
	_, err = client.Dial(context.Background(), unbound.addr, client.Config{Attester: platform.Attester(clientID), Verifier: verifier, Policy: simPolicy(relayID)})
	if !errors.As(err, &pe) || pe.Rule != "report-data" {
		t.Fatalf("server quote binding another certificate: %v", err)
	}

	// And a server whose platform the client does not trust at all.
	foreign := startServer(t, func(c *Config) { c.Peer.Attester = otherPlatformAttester(t) })
	_, err = client.Dial(context.Background(), foreign.addr, client.Config{Attester: platform.Attester(clientID), Verifier: verifier, Policy: simPolicy(relayID)})
	if !errors.Is(err, attest.ErrNotGenuine) {
		t.Fatalf("server on an untrusted platform: %v", err)
	}
}

type otherCert struct {
	inner attest.Attester
	der   []byte
}

func (o *otherCert) Quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	var digest [32]byte
	copy(digest[:], rd[32:])
	return o.inner.Quote(ctx, atls.ServerReportData(o.der, digest))
}

// Seed case 4: sending to an unknown recipient gets SEND_NACK.
func TestSeedUnknownRecipient(t *testing.T) {
	s := startServer(t, nil)
	a := dial(t, s.addr)
	if err := a.Register("A"); err != nil {
		t.Fatal(err)
	}
	err := a.Send("nobody", []byte("x"))
	var ne *client.NackError
	if !errors.As(err, &ne) || ne.Type != wire.SendNack || ne.Reason != "recipient not found" {
		t.Fatalf("send to unknown: %v", err)
	}
}

// Seed case 5: polling an empty mailbox gets NO_DATA_AVAILABLE.
func TestSeedPollEmpty(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("lonely"))
	c.expect(wire.RegisterAck, "")
	c.send(wire.PollData, nil)
	c.expect(wire.NoDataAvailable, "")
}
