package relay

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/wire"
)

// gatedBoxes are memory mailboxes whose Sync waits for the test: nothing
// a Sync covers may reach the client before it returns.
type gatedBoxes struct {
	*MemoryMailboxes
	gate chan error
}

func (g gatedBoxes) Sync() error { return <-g.gate }

// TestAnswersWaitForTheirSync: with durable mailboxes (a Syncer), no
// answer that promises durability leaves before the Sync behind it —
// also when a large POLL answer does not fit in the session's output
// buffer and would otherwise push out the buffered SEND_ACKs before
// the Sync (a SEND_ACK for a message a crash could still lose), and the
// POLL's own answer before its removal is on disk. A failed Sync closes
// the connection without those answers.
func TestAnswersWaitForTheirSync(t *testing.T) {
	for _, failing := range []bool{false, true} {
		gate := make(chan error)
		s := startServer(t, func(c *Config) { c.Mailboxes = gatedBoxes{NewMemoryMailboxes(Limits{}), gate} })
		bob := dialRaw(t, s.addr)
		bob.send(wire.RegisterClient, []byte("bob"))
		bob.expect(wire.RegisterAck, "")
		alice := dialRaw(t, s.addr)
		alice.send(wire.RegisterClient, []byte("alice"))
		alice.expect(wire.RegisterAck, "")
		big := bytes.Repeat([]byte("m"), 40<<10)
		alice.send(wire.SendData, addressed("bob", big))
		gate <- nil
		alice.expect(wire.SendAck, "")

		// In one write: SENDs to alice (SEND_ACKs buffered, awaiting a
		// Sync), then a POLL whose answer is larger than the buffer.
		var batch []byte
		for range 8 {
			batch = wire.AppendFrame(batch, wire.SendData, addressed("alice", []byte("small")))
		}
		batch = wire.AppendFrame(batch, wire.PollData, nil)
		if _, err := bob.Write(batch); err != nil {
			t.Fatal(err)
		}
		bob.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var one [1]byte
		if n, err := bob.Read(one[:]); n != 0 || err == nil {
			t.Fatalf("failing=%v: %d bytes of answers reached the client before the Sync returned (%v)", failing, n, err)
		}
		if failing {
			gate <- errors.New("disk on fire")
			bob.expectClosed()
			continue
		}
		gate <- nil
		for range 8 {
			bob.expect(wire.SendAck, "")
		}
		if p := bob.expect(wire.DataAvailable, ""); !bytes.HasSuffix(p, big) {
			t.Fatalf("POLL answer of %d bytes", len(p))
		}
	}
}
