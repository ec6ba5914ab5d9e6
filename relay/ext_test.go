package relay

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/wire"
)

// hello negotiates the extension on c and returns what the relay granted.
func (c *rawConn) hello(features uint32) wire.HelloAckInfo {
	c.t.Helper()
	c.send(wire.Hello, wire.AppendHello(nil, wire.HelloInfo{Version: 1, Features: features}))
	h, err := wire.ParseHelloAck(c.expect(wire.HelloAck, ""))
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

func (c *rawConn) register(id string) {
	c.t.Helper()
	c.send(wire.RegisterClient, []byte(id))
	c.expect(wire.RegisterAck, "")
}

// extClient is an attested raw connection registered as id, with the
// whole extension negotiated.
func extClient(t *testing.T, addr, id string) *rawConn {
	c := dialRaw(t, addr)
	c.hello(wire.FeatureDelivery | wire.FeatureMsgID)
	c.register(id)
	return c
}

// delivery reads one DELIVER frame.
func (c *rawConn) delivery() wire.Delivery {
	c.t.Helper()
	d, err := wire.ParseDelivery(c.expect(wire.Deliver, ""))
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

func (c *rawConn) ack(ids ...uint64) (acked, notHeld uint32) {
	c.t.Helper()
	p, err := wire.AppendAck(nil, wire.AckReq{IDs: ids})
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(wire.Ack, p)
	a, n, err := wire.ParseAcked(c.expect(wire.Acked, ""))
	if err != nil {
		c.t.Fatal(err)
	}
	return a, n
}

func (c *rawConn) fetch(max uint16, wait time.Duration) (got []wire.Delivery, took time.Duration) {
	c.t.Helper()
	p, _ := wire.AppendFetch(nil, wire.FetchReq{Max: max, WaitMS: uint32(wait / time.Millisecond)})
	start := time.Now()
	c.send(wire.Fetch, p)
	for {
		c.SetReadDeadline(time.Now().Add(wait + 5*time.Second))
		f, err := c.r.ReadFrame()
		if err != nil {
			c.t.Fatal(err)
		}
		switch f.Type {
		case wire.Deliver:
			d, err := wire.ParseDelivery(f.Payload)
			if err != nil {
				c.t.Fatal(err)
			}
			d.From, d.Data, d.MsgID = bytes.Clone(d.From), bytes.Clone(d.Data), bytes.Clone(d.MsgID)
			got = append(got, d)
		case wire.FetchEnd:
			n, err := wire.ParseFetchEnd(f.Payload)
			if err != nil || int(n) != len(got) {
				c.t.Fatalf("FETCH_END %d after %d deliveries (%v)", n, len(got), err)
			}
			return got, time.Since(start)
		default:
			c.t.Fatalf("%s %q in answer to FETCH", f.Type, f.Payload)
		}
	}
}

// nothingFor checks that no frame arrives for d.
func (c *rawConn) nothingFor(d time.Duration) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if f, err := c.r.ReadFrame(); err == nil {
		c.t.Fatalf("unexpected %s %q", f.Type, f.Payload)
	}
	c.SetReadDeadline(time.Time{})
}

func sendID(msgID, to, data string) []byte {
	p, err := wire.AppendSendID(nil, []byte(msgID), to, []byte(data))
	if err != nil {
		panic(err)
	}
	return p
}

// TestHelloNegotiatesAndSeedAnswersStay: a HELLO without the extension's
// magic, and every extension type before a HELLO, get exactly the seed's
// answer to an unknown type, on a connection that stays usable; a HELLO
// gets HELLO_ACK with the relay's limits.
func TestHelloNegotiatesAndSeedAnswersStay(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxCredit = 77; c.AckWait = 3 * time.Second })
	c := dialRaw(t, s.addr)
	c.send(wire.Hello, []byte("hello"))
	c.expect(wire.Error, "unknown frame type 0x10")
	for _, ty := range []wire.Type{wire.Fetch, wire.Subscribe, wire.Credit, wire.Ack, wire.SendID, wire.Ping, wire.HelloAck, wire.Deliver} {
		c.send(ty, []byte{0, 0, 0, 1})
		c.expect(wire.Error, fmt.Sprintf("unknown frame type 0x%02X", uint8(ty)))
	}
	h := c.hello(wire.FeatureDelivery | wire.FeatureMsgID | 1<<7)
	if h.Version != 1 || h.Features != wire.FeatureDelivery|wire.FeatureMsgID || h.MaxCredit != 77 || h.AckWaitMS != 3000 || h.MaxBatch != 256 || h.IdleMS != 10000 || h.DedupS != 120 {
		t.Fatalf("HELLO_ACK %+v", h)
	}
	c.send(wire.Ping, nil)
	c.expect(wire.Pong, "")
	c.register("x")
	c.send(wire.SendData, addressed("x", []byte("seed send on an extension session")))
	c.expect(wire.SendAck, "")
	c.send(wire.PollData, nil)
	c.expect(wire.DataAvailable, "seed send")
}

// TestPushDelivery: a subscribed session receives DATA as it arrives,
// from a seed client's SEND and an extension client's SEND_ID, each with
// a delivery id it acknowledges; the seed client polls what the
// extension client sent it.
func TestPushDelivery(t *testing.T) {
	s := startServer(t, nil)
	seed := dialRaw(t, s.addr)
	seed.register("seed")
	b := extClient(t, s.addr, "ext")
	b.send(wire.Subscribe, wire.AppendU32(nil, 8))
	b.expect(wire.SubscribeAck, "")

	start := time.Now()
	seed.send(wire.SendData, addressed("ext", []byte("from seed")))
	seed.expect(wire.SendAck, "")
	d := b.delivery()
	if string(d.From) != "seed" || string(d.Data) != "from seed" || d.Flags != 0 || len(d.MsgID) != 0 {
		t.Fatalf("delivery %+v", d)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("push took %v", took)
	}
	if a, n := b.ack(d.ID); a != 1 || n != 0 {
		t.Fatalf("ACKED %d, %d not held", a, n)
	}

	b.send(wire.SendID, sendID("m-1", "seed", "from ext"))
	b.expect(wire.SendAck, "")
	seed.send(wire.PollData, nil)
	if got := seed.expect(wire.DataAvailable, ""); !bytes.Equal(got, addressed("ext", []byte("from ext"))) {
		t.Fatalf("seed client polled %q", got)
	}
	b.send(wire.SendID, sendID("m-2", "ext", "to self"))
	b.expect(wire.SendAck, "")
	if d := b.delivery(); string(d.MsgID) != "m-2" || string(d.Data) != "to self" {
		t.Fatalf("delivery %+v", d)
	}
}

// TestFetchLongPoll: FETCH returns at once when messages wait (up to its
// max), after its wait when none do, and as soon as one arrives during it.
func TestFetchLongPoll(t *testing.T) {
	s := startServer(t, nil)
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	for i := range 5 {
		a.send(wire.SendData, addressed("b", []byte(fmt.Sprint(i))))
		a.expect(wire.SendAck, "")
	}
	got, took := b.fetch(3, 10*time.Second)
	if len(got) != 3 || took > 2*time.Second {
		t.Fatalf("FETCH of 3 with 5 waiting: %d messages after %v", len(got), took)
	}
	for i, d := range got {
		if string(d.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, d.Data)
		}
	}
	got, _ = b.fetch(10, 10*time.Second)
	if len(got) != 2 {
		t.Fatalf("second FETCH: %d messages, want the 2 left", len(got))
	}
	got, took = b.fetch(10, 400*time.Millisecond)
	if len(got) != 0 || took < 400*time.Millisecond || took > 3*time.Second {
		t.Fatalf("FETCH on an empty mailbox: %d messages after %v, want 0 after 400ms", len(got), took)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		a.send(wire.SendData, addressed("b", []byte("late")))
	}()
	got, took = b.fetch(10, 10*time.Second)
	if len(got) != 1 || string(got[0].Data) != "late" || took > 3*time.Second {
		t.Fatalf("FETCH during which a message arrives: %d after %v", len(got), took)
	}
	a.expect(wire.SendAck, "")
}

// TestFlowControlHoldsMemory: a subscriber that never grants credit gets
// nothing, the relay's memory stays within the mailbox limit (senders get
// "mailbox full"), and each credit it grants releases exactly that many.
func TestFlowControlHoldsMemory(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits = Limits{MaxMessages: 50, MaxBytes: 1 << 20} })
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	b.send(wire.Subscribe, wire.AppendU32(nil, 0))
	b.expect(wire.SubscribeAck, "")
	data := bytes.Repeat([]byte("x"), 1000)
	full := 0
	for range 200 {
		a.send(wire.SendData, addressed("b", data))
		f, err := a.r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == wire.SendNack && string(f.Payload) == "mailbox full" {
			full++
		}
	}
	if full != 150 {
		t.Fatalf("%d of 200 sends refused, want 150 over the 50-message mailbox", full)
	}
	if n, by := s.Totals(); n != 50 || by != 50*1000 {
		t.Fatalf("relay holds %d messages, %d bytes", n, by)
	}
	b.nothingFor(300 * time.Millisecond)
	b.send(wire.Credit, wire.AppendU32(nil, 2))
	got := 0
	for got < 2 {
		f, err := b.r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case wire.Deliver:
			got++
		case wire.CreditAck:
		default:
			t.Fatalf("%s", f.Type)
		}
	}
	b.nothingFor(300 * time.Millisecond)
	if n, _ := s.Totals(); n != 50 {
		t.Fatalf("delivered but unacknowledged messages left the mailbox: %d", n)
	}
}

// TestRedelivery: a message delivered and not acknowledged comes back,
// flagged redelivered with the same delivery id, to the next session of
// the id after a disconnect, and to the same session after the ack-wait;
// an acknowledged one never does.
func TestRedelivery(t *testing.T) {
	s := startServer(t, func(c *Config) { c.AckWait = 400 * time.Millisecond })
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	for _, m := range []string{"one", "two"} {
		a.send(wire.SendID, sendID(m, "b", m))
		a.expect(wire.SendAck, "")
	}
	got, _ := b.fetch(2, time.Second)
	if len(got) != 2 {
		t.Fatalf("fetched %d", len(got))
	}
	b.Close()

	b2 := extClient(t, s.addr, "b")
	again, _ := b2.fetch(10, 2*time.Second)
	if len(again) != 2 {
		t.Fatalf("after a disconnect without ack: %d redelivered, want 2", len(again))
	}
	for i, d := range again {
		if d.ID != got[i].ID || d.Flags&wire.FlagRedelivered == 0 || string(d.MsgID) != string(got[i].MsgID) {
			t.Fatalf("redelivery %d: %+v, first delivery %+v", i, d, got[i])
		}
	}
	// Ack the first; the second's ack-wait expires and it comes back.
	if a, n := b2.ack(again[0].ID); a != 1 || n != 0 {
		t.Fatalf("ack: %d, %d", a, n)
	}
	start := time.Now()
	late, _ := b2.fetch(10, 3*time.Second)
	if len(late) != 1 || string(late[0].Data) != "two" || late[0].Flags&wire.FlagRedelivered == 0 {
		t.Fatalf("after the ack-wait: %+v", late)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("redelivered after %v, before the 400ms ack-wait", took)
	}
	if a, n := b2.ack(late[0].ID, 12345); a != 1 || n != 1 {
		t.Fatalf("ack of one held and one unknown id: ACKED %d, %d not held", a, n)
	}
	// Nothing comes back after the acks, however long the wait.
	if none, _ := b2.fetch(10, time.Second); len(none) != 0 {
		t.Fatalf("acknowledged messages redelivered: %+v", none)
	}
	if n, _ := s.Totals(); n != 0 {
		t.Fatalf("%d messages left after acks", n)
	}
}

// TestDuplicateSendsDeliveredOnce: SEND_ID with an id already seen from
// the same sender answers SEND_ACK and stores nothing; another sender's
// same id is its own message.
func TestDuplicateSendsDeliveredOnce(t *testing.T) {
	s := startServer(t, nil)
	a := extClient(t, s.addr, "a")
	c := extClient(t, s.addr, "c")
	b := extClient(t, s.addr, "b")
	for range 3 {
		a.send(wire.SendID, sendID("id-1", "b", "once"))
		a.expect(wire.SendAck, "")
	}
	c.send(wire.SendID, sendID("id-1", "b", "other sender"))
	c.expect(wire.SendAck, "")
	got, _ := b.fetch(10, 500*time.Millisecond)
	if len(got) != 2 || string(got[0].Data) != "once" || string(got[1].Data) != "other sender" {
		t.Fatalf("delivered %+v", got)
	}
}

// TestExtensionBadInput: every refusal of docs/PROTOCOL.md section 8, with
// its text, on a connection that stays open.
func TestExtensionBadInput(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxBatch = 10; c.MaxFetchWait = time.Second; c.MaxCredit = 100 })
	c := dialRaw(t, s.addr)
	c.hello(wire.FeatureDelivery | wire.FeatureMsgID)
	step := func(ty wire.Type, p []byte, ans wire.Type, text string) {
		t.Helper()
		c.send(ty, p)
		if got := c.expect(ans, ""); string(got) != text {
			t.Fatalf("%s % x: %s %q, want %q", ty, p, ans, got, text)
		}
	}
	fetch := func(max uint16, ms uint32) []byte {
		p, _ := wire.AppendFetch(nil, wire.FetchReq{Max: max, WaitMS: ms})
		return p
	}
	step(wire.Hello, wire.AppendHello(nil, wire.HelloInfo{Version: 1}), wire.ExtNack, "extensions already negotiated")
	step(wire.Fetch, fetch(1, 0), wire.ExtNack, "register before fetching")
	step(wire.Subscribe, wire.AppendU32(nil, 1), wire.ExtNack, "register before subscribing")
	step(wire.Credit, wire.AppendU32(nil, 1), wire.ExtNack, "subscribe before granting credit")
	step(wire.SendID, sendID("m", "x", ""), wire.SendNack, "register before sending")
	c.register("me")
	step(wire.Fetch, []byte{0, 1}, wire.ExtNack, "payload of 2 bytes, want 6")
	step(wire.Fetch, []byte{0, 0, 0, 0, 0, 1}, wire.ExtNack, "count of 0")
	step(wire.Fetch, fetch(11, 0), wire.ExtNack, "fetch of 11 messages, over the maximum 10")
	step(wire.Fetch, fetch(1, 1001), wire.ExtNack, "wait of 1001 ms, over the maximum 1000 ms")
	step(wire.Subscribe, wire.AppendU32(nil, 101), wire.ExtNack, "credit 101, over the maximum 100")
	step(wire.Subscribe, []byte{1}, wire.ExtNack, "payload of 1 bytes, want 4")
	step(wire.Subscribe, wire.AppendU32(nil, 0), wire.SubscribeAck, "")
	step(wire.Subscribe, wire.AppendU32(nil, 1), wire.ExtNack, "already subscribed")
	step(wire.Fetch, fetch(1, 0), wire.ExtNack, "fetch while subscribed: deliveries go to the subscription")
	step(wire.Credit, wire.AppendU32(nil, 0), wire.ExtNack, "count of 0")
	step(wire.Credit, wire.AppendU32(nil, 0xFFFFFFFF), wire.ExtNack, "credit would be 4294967295, over the maximum 100")
	step(wire.Credit, wire.AppendU32(nil, 100), wire.CreditAck, "\x00\x00\x00\x64")
	step(wire.Credit, wire.AppendU32(nil, 1), wire.ExtNack, "credit would be 101, over the maximum 100")
	step(wire.Ack, nil, wire.ExtNack, "payload of 0 bytes, want 9")
	step(wire.Ack, []byte{2, 0, 0, 0, 0, 0, 0, 0, 1}, wire.ExtNack, "ack kind 2, want 0 or 1")
	step(wire.Ack, []byte{0, 0, 0}, wire.ExtNack, "count of 0")
	step(wire.Ack, []byte{0, 4, 1}, wire.ExtNack, "1025 delivery ids, more than 1024")
	step(wire.Ack, []byte{0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1}, wire.ExtNack, "payload of 11 bytes, want 19")
	step(wire.Ack, must(wire.AppendAck(nil, wire.AckReq{IDs: []uint64{42}})), wire.Acked, string(wire.AppendAcked(nil, 0, 1)))
	step(wire.Ack, must(wire.AppendAck(nil, wire.AckReq{Cumulative: true, IDs: []uint64{42}})), wire.Acked, string(wire.AppendAcked(nil, 0, 0)))
	step(wire.SendID, []byte{0, 0, 1, 'x'}, wire.SendNack, "empty message id")
	step(wire.SendID, append([]byte{65}, make([]byte, 80)...), wire.SendNack, "message id of 65 bytes, longer than 64")
	step(wire.SendID, []byte{5, 'a'}, wire.SendNack, "id length 5, but 1 bytes follow")
	step(wire.SendID, []byte{1, 'a', 0, 0}, wire.SendNack, "empty client id")
	step(wire.SendID, sendID("m", "nobody", ""), wire.SendNack, "recipient not found")
	step(wire.HelloAck, nil, wire.Error, "frame type 0x90 (HELLO_ACK) is sent by the server, not the client")
	step(wire.Deliver, nil, wire.Error, "frame type 0x98 (DELIVER) is sent by the server, not the client")
	step(0x04, nil, wire.Error, "unknown frame type 0x04")
	c.send(wire.Ping, nil)
	c.expect(wire.Pong, "")

	// A relay that granted only message ids refuses delivery frames.
	d := dialRaw(t, s.addr)
	if h := d.hello(wire.FeatureMsgID); h.Features != wire.FeatureMsgID {
		t.Fatalf("granted %b", h.Features)
	}
	d.send(wire.Subscribe, wire.AppendU32(nil, 1))
	d.expect(wire.ExtNack, "extension not negotiated on this connection")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestDurableRedeliveryAndDedupAcrossRestart: with a sealed store, a
// delivered message stays on disk until acknowledged (a new relay on the
// same directory delivers it again), an acknowledged one is gone, and a
// message id is still known after the restart.
func TestDurableRedeliveryAndDedupAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	d, st := openDurable(t, dir, 1, nil)
	if err := d.Create("b"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2"} {
		if dup, err := d.PushOnce("b", Message{From: "a", Data: []byte(id), ID: []byte(id)}); dup || err != nil {
			t.Fatal(dup, err)
		}
	}
	if dup, err := d.PushOnce("b", Message{From: "a", Data: []byte("m1"), ID: []byte("m1")}); !dup || err != nil {
		t.Fatalf("duplicate: %v %v", dup, err)
	}
	d1, _, _ := d.Take("b")
	d2, _, _ := d.Take("b")
	if ok, err := d.Ack("b", d1.Seq); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	d, st = openDurable(t, dir, 1, nil)
	defer st.Close()
	got, ok, err := d.Take("b")
	if !ok || err != nil || got.Seq != d2.Seq || string(got.Data) != "m2" || string(got.ID) != "m2" {
		t.Fatalf("after restart: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := d.Take("b"); ok {
		t.Fatal("an acknowledged message came back after the restart")
	}
	for _, id := range []string{"m1", "m2"} {
		if dup, err := d.PushOnce("b", Message{From: "a", Data: []byte("again"), ID: []byte(id)}); !dup || err != nil {
			t.Fatalf("%s after restart: dup %v, %v", id, dup, err)
		}
	}
	if dup, err := d.PushOnce("b", Message{From: "a", Data: []byte("m3"), ID: []byte("m3")}); dup || err != nil {
		t.Fatal(dup, err)
	}
	if err := d.Release("b", got.Seq); err != nil {
		t.Fatal(err)
	}
	if m, ok, _ := d.Pop("b"); !ok || string(m.Data) != "m2" {
		t.Fatalf("POLL after release: %q", m.Data)
	}
}

// TestExtensionReasonsDistinctAndDocumented: each extension Reason has its
// own metric label, and docs/PROTOCOL.md gives its fixed text.
func TestExtensionReasonsDistinctAndDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	for _, r := range append(Reasons(), ExtensionReasons()...) {
		if labels[r.Label()] {
			t.Errorf("label %q used twice", r.Label())
		}
		labels[r.Label()] = true
	}
	for _, r := range ExtensionReasons() {
		if r == ReasonExtMalformed || r == ReasonOverLimit {
			continue // their texts say what exactly (tested in TestExtensionBadInput)
		}
		if !strings.Contains(string(doc), `"`+r.Text()+`"`) {
			t.Errorf("reason %q: docs/PROTOCOL.md does not give its text %q", r.Label(), r.Text())
		}
	}
}

// TestDedupTableFull: when the window holds MaxDedupIDs ids a new id is
// refused, never let through by forgetting an old one; a retry of a
// remembered id is still answered as a success.
func TestDedupTableFull(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits = Limits{MaxDedupIDs: 2} })
	a := extClient(t, s.addr, "a")
	for _, id := range []string{"1", "2"} {
		a.send(wire.SendID, sendID(id, "a", id))
		a.expect(wire.SendAck, "")
	}
	a.send(wire.SendID, sendID("3", "a", "3"))
	if got := a.expect(wire.SendNack, ""); string(got) != "de-duplication table full" {
		t.Fatalf("SEND_NACK %q", got)
	}
	a.send(wire.SendID, sendID("1", "a", "1"))
	a.expect(wire.SendAck, "")
	if n, _ := s.Totals(); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
}

// TestDurableDeliveryIDsNotReused: a mailbox emptied by acks, then
// reopened, numbers its next message after the last one, so an old
// delivery id never names a new message.
func TestDurableDeliveryIDsNotReused(t *testing.T) {
	dir := t.TempDir()
	d, st := openDurable(t, dir, 1, nil)
	d.Create("b")
	d.Push("b", Message{From: "a", Data: []byte("1")})
	first, _, _ := d.Take("b")
	d.Ack("b", first.Seq)
	d.Sync()
	st.Close()
	d, st = openDurable(t, dir, 1, nil)
	defer st.Close()
	d.Push("b", Message{From: "a", Data: []byte("2")})
	if ok, _ := d.Ack("b", first.Seq); ok {
		t.Fatal("an old delivery id acknowledged a new message")
	}
	second, _, _ := d.Take("b")
	if second.Seq <= first.Seq {
		t.Fatalf("delivery id %d reused after %d", second.Seq, first.Seq)
	}
}

// deliveryRecorder counts the DeliveryMetrics events.
type deliveryRecorder struct {
	noMetrics
	mu                                                                sync.Mutex
	subs, credit, pushed, redelivered, acked, expired, released, dups int
	paced, paceTimeouts                                               int
}

func (d *deliveryRecorder) Subscriptions(n int) { d.mu.Lock(); d.subs += n; d.mu.Unlock() }
func (d *deliveryRecorder) CreditGranted(n int) { d.mu.Lock(); d.credit += n; d.mu.Unlock() }
func (d *deliveryRecorder) Pushed(re bool) {
	d.mu.Lock()
	d.pushed++
	if re {
		d.redelivered++
	}
	d.mu.Unlock()
}
func (d *deliveryRecorder) Acked(n int)       { d.mu.Lock(); d.acked += n; d.mu.Unlock() }
func (d *deliveryRecorder) AckWaitExpired()   { d.mu.Lock(); d.expired++; d.mu.Unlock() }
func (d *deliveryRecorder) Released(n int)    { d.mu.Lock(); d.released += n; d.mu.Unlock() }
func (d *deliveryRecorder) DuplicateDropped() { d.mu.Lock(); d.dups++; d.mu.Unlock() }
func (d *deliveryRecorder) Paced(timedOut bool) {
	d.mu.Lock()
	if timedOut {
		d.paceTimeouts++
	} else {
		d.paced++
	}
	d.mu.Unlock()
}

// pacing returns the Paced counts: waits begun, waits run out.
func (d *deliveryRecorder) pacing() (int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.paced, d.paceTimeouts
}

// TestDeliveryMetrics: subscriptions, credit, pushes and redeliveries,
// acks, ack-wait expiries, releases at disconnect and duplicates dropped
// are each counted.
func TestDeliveryMetrics(t *testing.T) {
	rec := &deliveryRecorder{}
	s := startServer(t, func(c *Config) { c.Metrics = rec; c.AckWait = 300 * time.Millisecond })
	a := extClient(t, s.addr, "a")
	b := extClient(t, s.addr, "b")
	b.send(wire.Subscribe, wire.AppendU32(nil, 5))
	b.expect(wire.SubscribeAck, "")
	a.send(wire.SendID, sendID("x", "b", "1"))
	a.expect(wire.SendAck, "")
	a.send(wire.SendID, sendID("x", "b", "1"))
	a.expect(wire.SendAck, "")
	first := b.delivery()
	again := b.delivery() // after the ack-wait
	if again.ID != first.ID || again.Flags != wire.FlagRedelivered {
		t.Fatalf("redelivery %+v", again)
	}
	b.ack(again.ID)
	a.send(wire.SendData, addressed("b", []byte("2")))
	a.expect(wire.SendAck, "")
	b.delivery()
	b.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rec.mu.Lock()
		done := rec.released == 1
		rec.mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.subs != 0 || rec.credit != 5 || rec.pushed != 3 || rec.redelivered != 1 || rec.acked != 1 || rec.expired != 1 || rec.released != 1 || rec.dups != 1 {
		t.Fatalf("metrics: %d subscriptions, %d credit, %d pushed (%d redelivered), %d acked, %d ack-wait expiries, %d released, %d duplicates",
			rec.subs, rec.credit, rec.pushed, rec.redelivered, rec.acked, rec.expired, rec.released, rec.dups)
	}
}

// TestDedupWindowExpires: an id is forgotten after the window (a send
// with it is stored again), and the table's memory follows what it holds.
func TestDedupWindowExpires(t *testing.T) {
	mm := NewMemoryMailboxes(Limits{DedupWindow: 50 * time.Millisecond})
	mm.Create("b")
	for i := range 1000 {
		if dup, err := mm.PushOnce("b", Message{From: "a", ID: []byte(fmt.Sprint(i))}); dup || err != nil {
			t.Fatal(dup, err)
		}
	}
	if dup, _ := mm.PushOnce("b", Message{From: "a", ID: []byte("7")}); !dup {
		t.Fatal("an id inside the window was not recognised")
	}
	time.Sleep(80 * time.Millisecond)
	if dup, err := mm.PushOnce("b", Message{From: "a", ID: []byte("7")}); dup || err != nil {
		t.Fatalf("an id past the window: dup %v, %v", dup, err)
	}
	if len(mm.dedup.m) != 1 || len(mm.dedup.fifo)-mm.dedup.head != 1 {
		t.Fatalf("table holds %d ids, %d queued after the window passed", len(mm.dedup.m), len(mm.dedup.fifo)-mm.dedup.head)
	}
}
