package client_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/relay/relaytest"
	"github.com/sharedenclave/sharedenclave/wire"
)

func dial(t *testing.T, dir, addr string) *client.Conn {
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPipelineAndPollMany(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	a, b := dial(t, dir, addr), dial(t, dir, addr)
	if err := a.Register("a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("b"); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := 0; i < 100; i++ {
		msgs = append(msgs, []byte(fmt.Sprint(i)))
	}
	if n, err := a.Pipeline("b", msgs); err != nil || n != 100 {
		t.Fatalf("pipeline: %d acked, %v", n, err)
	}
	got, err := b.PollMany(150)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("polled %d messages, want 100", len(got))
	}
	for i, m := range got {
		if m.From != "a" || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q from %q", i, m.Data, m.From)
		}
	}
	// A NACK inside a pipeline is reported, and later sends still answered.
	n, err := a.Pipeline("nobody", msgs[:3])
	if n != 0 {
		t.Errorf("%d sends to nobody acknowledged", n)
	}
	var ne *client.NackError
	if !errors.As(err, &ne) || ne.Type != wire.SendNack {
		t.Fatalf("pipeline to unknown recipient: %v", err)
	}
	if err := a.Send("b", []byte("after")); err != nil {
		t.Fatalf("connection unusable after a NACKed pipeline: %v", err)
	}
}

func TestDialNeedsPolicy(t *testing.T) {
	if _, err := client.Dial(context.Background(), "127.0.0.1:1", client.Config{}); err == nil {
		t.Fatal("Dial without attester, verifier and policy")
	}
}

// TestSendRefusesOverlongRecipient is issue 12 item 5: the recipient "bob"
// followed by 65,536 bytes used to go out with its length cast to u16, so
// the relay delivered it to "bob" with the rest of the id as data. Send
// must refuse it before anything is written, for every id the relay's
// decoder would refuse, and the connection stays usable.
func TestSendRefusesOverlongRecipient(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	c := dial(t, dir, addr)
	if err := c.Register("bob"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"bob" + strings.Repeat("x", 65536), strings.Repeat("b", 256), "", "bo\xffb"} {
		err := c.Send(bad, []byte("hi"))
		var ne *client.NackError
		if !errors.Is(err, wire.ErrMalformed) || errors.As(err, &ne) {
			t.Errorf("Send to a %d-byte recipient: %v, want an error wrapping wire.ErrMalformed before sending", len(bad), err)
		}
		if n, err := c.Pipeline(bad, [][]byte{[]byte("hi")}); n != 0 || !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("Pipeline to a %d-byte recipient: %d acked, %v", len(bad), n, err)
		}
	}
	if from, data, ok, err := c.Poll(); err != nil || ok {
		t.Fatalf("bob received %q from %q (%v): an invalid recipient was delivered", data[:min(len(data), 16)], from, err)
	}
	if err := c.Register(strings.Repeat("b", 256)); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("Register of a 256-byte id: %v", err)
	}
	if err := c.Send("bob", []byte("still usable")); err != nil {
		t.Fatal(err)
	}
}

// TestConnExtension: the delivery extension's requests on a Conn — HELLO,
// SEND_ID de-duplicated, FETCH (held until ACK, waiting in the relay),
// ACK — and the seed's answer before HELLO.
func TestConnExtension(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	tx, rx := dial(t, dir, addr), dial(t, dir, addr)
	var se *client.ServerError
	if _, err := rx.Fetch(1, 0); !errors.As(err, &se) {
		t.Fatalf("FETCH before HELLO: %v, want the seed's ERROR", err)
	}
	for _, c := range []*client.Conn{tx, rx} {
		info, err := c.Hello(wire.FeatureDelivery | wire.FeatureMsgID)
		if err != nil || info.Features != wire.FeatureDelivery|wire.FeatureMsgID || info.MaxWaitMS == 0 {
			t.Fatalf("HELLO: %+v %v", info, err)
		}
	}
	var ne *client.NackError
	if _, err := rx.Fetch(1, 0); !errors.As(err, &ne) || ne.Type != wire.ExtNack {
		t.Fatalf("FETCH before REGISTER: %v, want EXT_NACK", err)
	}
	if err := tx.Register("tx"); err != nil {
		t.Fatal(err)
	}
	if err := rx.Register("rx"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := tx.SendID([]byte("m1"), "rx", []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := rx.Fetch(10, 0)
	if err != nil || len(ds) != 1 || string(ds[0].MsgID) != "m1" || string(ds[0].From) != "tx" || string(ds[0].Data) != "hi" || ds[0].ID == 0 {
		t.Fatalf("FETCH: %+v %v (want one message: SEND_ID twice with one id)", ds, err)
	}
	if again, err := rx.Fetch(10, 0); err != nil || len(again) != 0 {
		t.Fatalf("a held message fetched again: %+v %v", again, err)
	}
	if a, n, err := rx.Ack(ds[0].ID); a != 1 || n != 0 || err != nil {
		t.Fatalf("ACK: %d acked, %d not held, %v", a, n, err)
	}
	if a, n, err := rx.Ack(ds[0].ID); a != 0 || n != 1 || err != nil {
		t.Fatalf("second ACK: %d acked, %d not held, %v", a, n, err)
	}
	// A FETCH that waits is answered when a message arrives.
	go func() {
		time.Sleep(100 * time.Millisecond)
		tx.SendID([]byte("m2"), "rx", []byte("later"))
	}()
	start := time.Now()
	ds, err = rx.Fetch(1, 10*time.Second)
	if err != nil || len(ds) != 1 || string(ds[0].Data) != "later" || time.Since(start) > 5*time.Second {
		t.Fatalf("waiting FETCH: %+v %v after %v", ds, err, time.Since(start))
	}
	if _, err := rx.Fetch(0, 0); err == nil {
		t.Error("FETCH of 0 messages accepted")
	}
}
