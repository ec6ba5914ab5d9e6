package relay

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/wire"
)

// TestReasonsDistinctAndDocumented: every Reason has its own metric label,
// and its NACK text is the one docs/PROTOCOL.md gives.
func TestReasonsDistinctAndDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]Reason{}
	for _, r := range Reasons() {
		l := r.Label()
		if l == "" || l == ReasonNone.Label() {
			t.Errorf("reason %d has no label", r)
		}
		if prev, dup := labels[l]; dup {
			t.Errorf("reasons %d and %d share the label %q", prev, r, l)
		}
		labels[l] = r
		if !strings.Contains(string(doc), `"`+r.Text()+`"`) {
			t.Errorf("reason %q: docs/PROTOCOL.md does not give its text %q", l, r.Text())
		}
	}
	if len(labels) != len(Reasons()) || len(Reasons()) != int(numReasons)-1 {
		t.Fatalf("%d labels for %d reasons", len(labels), len(Reasons()))
	}
}

// TestEveryPayloadProblemHasItsReason: each wire.Problem turns into its own
// Reason (not the catch-all), and the text sent fills in the lengths as
// the wire package words the same problem.
func TestEveryPayloadProblemHasItsReason(t *testing.T) {
	seen := map[Reason]bool{}
	for _, pe := range []*wire.PayloadError{
		{Problem: wire.EmptyID},
		{Problem: wire.IDTooLong, Len: 300},
		{Problem: wire.IDNotUTF8},
		{Problem: wire.ShortPayload, Len: 1},
		{Problem: wire.IDLengthMismatch, Len: 10, Follow: 2},
	} {
		r := payloadRefusal(pe)
		if r.reason == ReasonMalformed || seen[r.reason] {
			t.Errorf("problem %d: reason %q", pe.Problem, r.reason)
		}
		seen[r.reason] = true
		if want := strings.TrimPrefix(pe.Error(), wire.ErrMalformed.Error()+": "); r.text() != want {
			t.Errorf("problem %d: NACK text %q, the wire says %q", pe.Problem, r.text(), want)
		}
	}
	if r := payloadRefusal(errors.New("other")); r.reason != ReasonMalformed || r.text() != "malformed payload" {
		t.Errorf("an error that is not a *wire.PayloadError: %q %q", r.reason, r.text())
	}
}

// nackRecorder is a Metrics that keeps every NACK.
type nackRecorder struct {
	noMetrics
	mu    sync.Mutex
	nacks []recordedNack
}

type recordedNack struct {
	t wire.Type
	r Reason
}

func (m *nackRecorder) Nack(t wire.Type, r Reason) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nacks = append(m.nacks, recordedNack{t, r})
}

func (m *nackRecorder) last() (recordedNack, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.nacks) == 0 {
		return recordedNack{}, 0
	}
	return m.nacks[len(m.nacks)-1], len(m.nacks)
}

// scriptedBoxes are in-memory mailboxes that fail on chosen ids, so that
// every storage answer can be provoked.
type scriptedBoxes struct{ *MemoryMailboxes }

var errScripted = errors.New("scripted storage failure")

func (b scriptedBoxes) Create(id string) error {
	switch id {
	case "too-many":
		return ErrTooMany
	case "no-create":
		return errScripted
	}
	return b.MemoryMailboxes.Create(id)
}

func (b scriptedBoxes) Push(id string, m Message) error {
	switch id {
	case "full":
		return ErrMailboxFull
	case "relay-full":
		return ErrRelayFull
	case "no-store":
		return errScripted
	}
	return b.MemoryMailboxes.Push(id, m)
}

func (b scriptedBoxes) Pop(id string) (Message, bool, error) {
	if id == "unreadable" {
		return Message{}, false, errScripted
	}
	return b.MemoryMailboxes.Pop(id)
}

// TestNackAnswerAndMetricFromOneReason provokes every reason through a
// real session and checks that the client reads exactly the reason's text
// and the metric is told the same reason.
func TestNackAnswerAndMetricFromOneReason(t *testing.T) {
	rec := &nackRecorder{}
	other := clientID
	other.MREnclave[0] ^= 0xff
	s := startServer(t, func(c *Config) {
		c.Metrics = rec
		c.Mailboxes = scriptedBoxes{NewMemoryMailboxes(Limits{})}
		c.Bindings = map[string]*attest.Policy{"bound": simPolicy(other)}
	})
	holder := dialRaw(t, s.addr)
	holder.send(wire.RegisterClient, []byte("holder"))
	holder.expect(wire.RegisterAck, "")
	c := dialRaw(t, s.addr)
	covered := map[Reason]bool{}
	step := func(ty wire.Type, payload []byte, nack wire.Type, want Reason, text string) {
		t.Helper()
		c.send(ty, payload)
		c.SetReadDeadline(deadline())
		f, err := c.r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != nack || string(f.Payload) != text {
			t.Fatalf("%s: got %s %q, want %s %q", want.Label(), f.Type, f.Payload, nack, text)
		}
		got, _ := rec.last()
		if got != (recordedNack{nack, want}) {
			t.Fatalf("%s: metric told %s %q", want.Label(), got.t, got.r.Label())
		}
		covered[want] = true
	}
	step(wire.SendData, addressed("x", nil), wire.SendNack, ReasonRegisterBeforeSend, "register before sending")
	step(wire.PollData, nil, wire.PollNack, ReasonRegisterBeforePoll, "register before polling")
	step(wire.RegisterClient, nil, wire.RegisterNack, ReasonEmptyID, "empty client id")
	step(wire.RegisterClient, []byte(strings.Repeat("x", 300)), wire.RegisterNack, ReasonIDTooLong, "client id of 300 bytes, longer than 255")
	step(wire.RegisterClient, []byte{0xff}, wire.RegisterNack, ReasonIDNotUTF8, "client id is not valid UTF-8")
	step(wire.RegisterClient, []byte("bound"), wire.RegisterNack, ReasonIDBound, "attested identity may not register this id")
	step(wire.RegisterClient, []byte("too-many"), wire.RegisterNack, ReasonTooManyIDs, "too many client ids")
	step(wire.RegisterClient, []byte("no-create"), wire.RegisterNack, ReasonMailboxNotCreated, "could not create mailbox")
	step(wire.RegisterClient, []byte("holder"), wire.RegisterNack, ReasonIDInUse, "id is in use by another session")
	c.send(wire.RegisterClient, []byte("unreadable"))
	c.expect(wire.RegisterAck, "")
	step(wire.RegisterClient, []byte("another"), wire.RegisterNack, ReasonOtherIDOnSession, "this session is already registered as another id")
	step(wire.SendData, []byte{0}, wire.SendNack, ReasonShortPayload, "1 bytes, too short for the u16 id length")
	step(wire.SendData, []byte{0, 10, 'a', 'b'}, wire.SendNack, ReasonIDLengthMismatch, "id length 10, but 2 bytes follow")
	step(wire.SendData, []byte{0, 0, 'd'}, wire.SendNack, ReasonEmptyID, "empty client id")
	step(wire.SendData, addressed("nobody", nil), wire.SendNack, ReasonRecipientNotFound, "recipient not found")
	step(wire.SendData, addressed("full", nil), wire.SendNack, ReasonMailboxFull, "mailbox full")
	step(wire.SendData, addressed("relay-full", nil), wire.SendNack, ReasonRelayFull, "relay full")
	step(wire.SendData, addressed("no-store", nil), wire.SendNack, ReasonNotStored, "message could not be stored")
	step(wire.PollData, nil, wire.PollNack, ReasonMailboxUnreadable, "mailbox could not be read")
	for _, r := range Reasons() {
		if !covered[r] && r != ReasonMalformed { // no wire decoder returns anything else
			t.Errorf("reason %q was not provoked", r.Label())
		}
	}
}

func deadline() time.Time { return time.Now().Add(5 * time.Second) }
