package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/wire"
)

// sendTimed sends a SEND_DATA on c and returns how long its SEND_ACK took.
func sendTimed(c *rawConn, to, data string) time.Duration {
	c.t.Helper()
	start := time.Now()
	c.send(wire.SendData, addressed(to, []byte(data)))
	c.expect(wire.SendAck, "")
	return time.Since(start)
}

// TestPacing: after a SEND that leaves a subscribed recipient with
// PaceBacklog messages waiting untaken, the sender's session reads
// nothing more until the recipient's session has taken the backlog below
// half of it (or PaceWait has passed); sends to a recipient without a
// receiving session are never held; nothing is lost or reordered.
func TestPacing(t *testing.T) {
	const wait = 2 * time.Second
	rec := &deliveryRecorder{}
	s := startServer(t, func(c *Config) { c.Metrics = rec; c.PaceBacklog = 4; c.PaceWait = wait })
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	extClient(t, s.addr, "idle") // registered, not receiving
	b.send(wire.Subscribe, wire.AppendU32(nil, 1))
	b.expect(wire.SubscribeAck, "")

	// Idle mailboxes are not paced, however full.
	for i := range 10 {
		if d := sendTimed(a, "idle", fmt.Sprint(i)); d > wait/2 {
			t.Fatalf("send %d to an id that does not receive took %v", i, d)
		}
	}
	// 1 is delivered (credit 1) and held; 2 to 5 wait: 4 untaken after 5.
	sendTimed(a, "b", "1")
	if d := b.delivery(); string(d.Data) != "1" {
		t.Fatalf("first delivery %q", d.Data)
	}
	for i := 2; i <= 5; i++ {
		if d := sendTimed(a, "b", fmt.Sprint(i)); d > wait/2 {
			t.Fatalf("send %d took %v", i, d)
		}
	}
	if p, to := rec.pacing(); p != 1 || to != 0 {
		t.Fatalf("after the send that reached the backlog: paced %d, %d ran out; want 1, 0", p, to)
	}
	// 6 is read only when the wait after 5 has run out.
	if d := sendTimed(a, "b", "6"); d < wait*9/10 {
		t.Fatalf("send 6 after the backlog was reached answered after %v, before the %v pace wait", d, wait)
	}
	if p, to := rec.pacing(); p < 1 || to != 1 {
		t.Fatalf("after a wait that ran out: paced %d, %d ran out; want 1", p, to)
	}

	// The session waits again after 6 (5 untaken); 7 goes through as soon
	// as b has taken four, leaving 1 (under half the backlog).
	grant := make(chan time.Time, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		grant <- time.Now()
		b.send(wire.Credit, wire.AppendU32(nil, 4))
	}()
	start := time.Now()
	a.send(wire.SendData, addressed("b", []byte("7")))
	a.expect(wire.SendAck, "")
	acked := time.Now()
	if g := <-grant; acked.Before(g) {
		t.Fatalf("send 7 answered %v after it was sent, before the recipient took anything", acked.Sub(start))
	}
	if acked.Sub(start) >= wait*9/10 {
		t.Fatalf("send 7 waited %v: the recipient's take did not end the wait", acked.Sub(start))
	}
	if p, to := rec.pacing(); p != 2 || to != 1 {
		t.Fatalf("after a wait the recipient ended: paced %d, %d ran out; want 2, 1", p, to)
	}

	// Everything arrives, in order.
	var got []string
	for len(got) < 6 {
		f, err := b.r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case wire.Deliver:
			d, err := wire.ParseDelivery(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(d.Data))
			if len(got) == 4 {
				b.send(wire.Credit, wire.AppendU32(nil, 2))
			}
		case wire.CreditAck:
		default:
			t.Fatalf("%s %q", f.Type, f.Payload)
		}
	}
	if fmt.Sprint(got) != "[2 3 4 5 6 7]" {
		t.Fatalf("delivered %v", got)
	}
}

// TestPacingOff: with a negative PaceWait nothing is held.
func TestPacingOff(t *testing.T) {
	rec := &deliveryRecorder{}
	s := startServer(t, func(c *Config) { c.Metrics = rec; c.PaceBacklog = 1; c.PaceWait = -1 })
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	b.send(wire.Subscribe, wire.AppendU32(nil, 0))
	b.expect(wire.SubscribeAck, "")
	for i := range 20 {
		if d := sendTimed(a, "b", fmt.Sprint(i)); d > time.Second {
			t.Fatalf("send %d took %v with pacing off", i, d)
		}
	}
	if p, to := rec.pacing(); p != 0 || to != 0 {
		t.Fatalf("paced %d with pacing off", p+to)
	}
	if n := s.boxes.(Backlogger).Backlog("b"); n != 20 {
		t.Fatalf("backlog %d, want 20", n)
	}
}

// TestPacedSenderStopsWithTheRecipient: a sender waiting on a recipient
// whose session ends is let go at once (its messages then wait in the
// mailbox for the next session).
func TestPacedSenderStopsWithTheRecipient(t *testing.T) {
	s := startServer(t, func(c *Config) { c.PaceBacklog = 1; c.PaceWait = 30 * time.Second })
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	b.send(wire.Subscribe, wire.AppendU32(nil, 0))
	b.expect(wire.SubscribeAck, "")
	sendTimed(a, "b", "1") // backlog 1: the session waits before reading on
	go func() {
		time.Sleep(200 * time.Millisecond)
		b.Close()
	}()
	if d := sendTimed(a, "b", "2"); d > 10*time.Second {
		t.Fatalf("the paced send waited %v after its recipient left", d)
	}
}
