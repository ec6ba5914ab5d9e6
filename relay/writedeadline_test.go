package relay

import (
	"bytes"
	"testing"
	"time"
)

// TestLargeAnswerAfterIdle: a POLL that comes after the session has been
// idle longer than the write timeout, answered with a message larger than
// the session's output buffer, is delivered. Before the fix the buffer
// wrote the message straight to the connection under the deadline left
// from the last flush, long past: the write failed, the session closed,
// and the message — already taken from its mailbox — was lost.
func TestLargeAnswerAfterIdle(t *testing.T) {
	s := startServer(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	bob := dial(t, s.addr)
	if err := bob.Register("bob"); err != nil {
		t.Fatal(err)
	}
	alice := dial(t, s.addr)
	if err := alice.Register("alice"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	if err := alice.Send("bob", big); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // bob's last flush was his REGISTER_ACK
	from, data, ok, err := bob.Poll()
	if err != nil || !ok {
		t.Fatalf("POLL after an idle spell: %v (message: %v)", err, ok)
	}
	if from != "alice" || !bytes.Equal(data, big) {
		t.Fatalf("got %d bytes from %q", len(data), from)
	}
}
