package client_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

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
