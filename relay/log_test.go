package relay

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/store"
	"github.com/sharedenclave/sharedenclave/wire"
)

// TestLogNeverNamesAClient is issue 12 item 8: the relay's log is the
// host's, so it must not hold a client id — in any line, at any level,
// with durable mailboxes (whose store logs too) — nor a payload. Lines
// about one client carry the same id_tag, so they can be correlated.
func TestLogNeverNamesAClient(t *testing.T) {
	var logs lockedBuf
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "data"), Root: testRoot(t, 7), Purpose: "relay", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	boxes, err := OpenDurableMailboxes(st, Limits{}, log)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *Config) { c.Logger = log; c.Mailboxes = boxes })

	const alice, bob = "alice-7c1d0e", "bob-5f9a2b"
	const secret = "payload-e0b4c9"
	a, b := dialRaw(t, s.addr), dialRaw(t, s.addr)
	a.send(wire.RegisterClient, []byte(alice))
	a.expect(wire.RegisterAck, "")
	b.send(wire.RegisterClient, []byte(bob))
	b.expect(wire.RegisterAck, "")
	a.send(wire.SendData, addressed(bob, []byte(secret)))
	a.expect(wire.SendAck, "")
	b.send(wire.PollData, nil)
	b.expect(wire.DataAvailable, secret)
	// Refusals that concern ids: in use, unknown recipient.
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte(alice))
	c.expect(wire.RegisterNack, "in use")
	a.send(wire.SendData, addressed(bob+"-unknown", []byte(secret)))
	a.expect(wire.SendNack, "recipient not found")
	a.Close()
	b.Close()
	c.Close()
	// Wait for both "session closed" lines.
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), `"session closed"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions not closed; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	out := logs.String()
	for _, never := range []string{alice, bob, "alice", "bob", secret} {
		if strings.Contains(out, never) {
			t.Errorf("the log contains %q:\n%s", never, out)
		}
	}
	// Every line about alice carries the same tag; bob's differs.
	tags := map[string][]string{} // msg → id_tags
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(out)), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if tag, ok := rec["id_tag"].(string); ok {
			tags[rec["msg"].(string)] = append(tags[rec["msg"].(string)], tag)
		}
	}
	reg, closed := tags["registered"], tags["session closed"]
	if len(reg) != 2 || len(closed) != 2 || reg[0] == reg[1] || len(reg[0]) != 16 {
		t.Fatalf("registered %v, closed %v: want two distinct 16-hex-digit tags", reg, closed)
	}
	if !(closed[0] == reg[0] && closed[1] == reg[1]) && !(closed[0] == reg[1] && closed[1] == reg[0]) {
		t.Errorf("session closed tags %v do not match registered tags %v", closed, reg)
	}
	if first, again := s.idTag(alice), s.idTag(alice); first != again || first == startServer(t, nil).idTag(alice) {
		t.Error("id tags must be stable within a run and differ between runs (a random key per server)")
	}
}
