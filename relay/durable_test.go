package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
)

func testRoot(t testing.TB, b byte) *seal.Root {
	r, err := seal.NewRoot(bytes.Repeat([]byte{b}, 16))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openDurable(t testing.TB, dir string, key byte, logs *lockedBuf) (*DurableMailboxes, *store.Store) {
	t.Helper()
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t, key), Purpose: "relay", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDurableMailboxes(st, Limits{MaxMessages: 100}, log)
	if err != nil {
		t.Fatal(err)
	}
	return d, st
}

func TestDurableMailboxesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	d, st := openDurable(t, dir, 1, nil)
	d.Create("bob")
	for i := 0; i < 5; i++ {
		if err := d.Push("bob", Message{From: "alice", Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if m, ok, err := d.Pop("bob"); err != nil || !ok || string(m.Data) != "0" {
		t.Fatalf("pop: %v %v %v", m, ok, err)
	}
	st.Close()

	d, st = openDurable(t, dir, 1, nil)
	defer st.Close()
	if err := d.Push("nobody", Message{From: "x"}); err != ErrNoMailbox {
		t.Fatalf("push to unknown after restart: %v", err)
	}
	for i := 1; i < 5; i++ {
		m, ok, err := d.Pop("bob")
		if err != nil || !ok || m.From != "alice" || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("after restart, pop %d: %+v %v %v", i, m, ok, err)
		}
	}
	if _, ok, _ := d.Pop("bob"); ok {
		t.Fatal("a popped message came back after restart")
	}
	// New messages continue after the old ones.
	d.Push("bob", Message{From: "carol", Data: []byte("new")})
	if m, _, _ := d.Pop("bob"); string(m.Data) != "new" {
		t.Fatalf("%+v", m)
	}
}

func TestDurableMailboxLimits(t *testing.T) {
	d, st := openDurable(t, t.TempDir(), 1, nil)
	defer st.Close()
	d.Create("m")
	for i := 0; i < 100; i++ {
		if err := d.Push("m", Message{From: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Push("m", Message{From: "a"}); err != ErrMailboxFull {
		t.Fatalf("101st message: %v", err)
	}
}

// editValues rewrites stored values with the store closed, as the host can.
func editValues(t *testing.T, dir string, edit func(keys [][]byte, vals [][]byte) map[int][]byte) {
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte(kindMessage + "\x00"), UpperBound: []byte(kindMessage + "\x01")})
	var keys, vals [][]byte
	for it.First(); it.Valid(); it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
		vals = append(vals, bytes.Clone(it.Value()))
	}
	it.Close()
	for i, v := range edit(keys, vals) {
		db.Set(keys[i], v, pebble.Sync)
	}
}

func TestDurableTamperedRecordsRefused(t *testing.T) {
	dir := t.TempDir()
	d, st := openDurable(t, dir, 1, nil)
	d.Create("bob")
	for i := 0; i < 6; i++ {
		d.Push("bob", Message{From: "alice", Data: []byte(fmt.Sprint("message ", i))})
	}
	st.Close()
	editValues(t, dir, func(keys, vals [][]byte) map[int][]byte {
		flipped := bytes.Clone(vals[1])
		flipped[len(flipped)/2] ^= 1
		// 1: a flipped byte; 3 and 4: swapped with each other.
		return map[int][]byte{1: flipped, 3: vals[4], 4: vals[3]}
	})
	logs := &lockedBuf{}
	d, st = openDurable(t, dir, 1, logs)
	defer st.Close()
	var got []string
	for {
		m, ok, err := d.Pop("bob")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, string(m.Data))
	}
	if strings.Join(got, ",") != "message 0,message 2,message 5" {
		t.Fatalf("delivered %q; want only the untouched records", got)
	}
	if !strings.Contains(logs.String(), "refusing") {
		t.Errorf("refusals not reported:\n%s", logs.String())
	}
}

func TestDurableOtherEnclaveReadsNothing(t *testing.T) {
	dir := t.TempDir()
	d, st := openDurable(t, dir, 1, nil)
	d.Create("bob")
	d.Push("bob", Message{From: "alice", Data: []byte("secret")})
	d.Sync()
	st.Close()
	// Another enclave identity cannot open the store at all, so it can
	// neither serve bob's messages nor write beside them.
	if st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t, 2), Purpose: "relay"}); !errors.Is(err, store.ErrSealedElsewhere) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("another enclave opened the store: %v", err)
	}
	d, st = openDurable(t, dir, 1, nil)
	defer st.Close()
	if m, ok, err := d.Pop("bob"); !ok || err != nil || string(m.Data) != "secret" {
		t.Fatalf("the owner lost bob's message: %q %v %v", m.Data, ok, err)
	}
}

// TestDataDirHoldsNoPlaintext runs a relay with durable mailboxes, sends
// recognisable messages between recognisable ids over the wire, and scans
// every file under the data dir for those bytes.
func TestDataDirHoldsNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t, 7), Purpose: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDurableMailboxes(st, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *Config) { c.Mailboxes = d })
	const id, payload = "receiver-ID-5b1f", "MESSAGE-BYTES-91c3e"
	r := dial(t, s.addr)
	if err := r.Register(id); err != nil {
		t.Fatal(err)
	}
	snd := dial(t, s.addr)
	if err := snd.Register("sender-ID-2c7d"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := snd.Send(id, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	if _, data, ok, err := r.Poll(); err != nil || !ok || string(data) != payload {
		t.Fatalf("poll: %v %v", ok, err)
	}
	s.Shutdown(t.Context())
	st.Close()
	for _, needle := range []string{payload, id, "sender-ID-2c7d"} {
		filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("%s contains %q in the clear", p, needle)
			}
			return nil
		})
	}
}

// TestDurableBacklog: the backlog pacing reads counts stored messages
// that are not held: never taken, or released for redelivery.
func TestDurableBacklog(t *testing.T) {
	d, _ := openDurable(t, t.TempDir(), 1, nil)
	if err := d.Create("b"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := d.Push("b", Message{From: "a", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Backlog("b"); n != 3 {
		t.Fatalf("backlog %d after 3 pushes", n)
	}
	first, ok, err := d.Take("b")
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	second, _, _ := d.Take("b")
	if n := d.Backlog("b"); n != 1 {
		t.Fatalf("backlog %d with 2 of 3 held", n)
	}
	if err := d.Release("b", first.Seq); err != nil {
		t.Fatal(err)
	}
	if n := d.Backlog("b"); n != 2 {
		t.Fatalf("backlog %d after a release", n)
	}
	if ok, err := d.Ack("b", second.Seq); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if n := d.Backlog("b"); n != 2 {
		t.Fatalf("backlog %d after acknowledging a held one", n)
	}
	if n := d.Backlog("nobody"); n != 0 {
		t.Fatalf("backlog %d of an unknown id", n)
	}
}
