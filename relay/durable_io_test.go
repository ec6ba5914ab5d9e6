package relay

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/sharedenclave/sharedenclave/store"
	"github.com/sharedenclave/sharedenclave/wire"
)

// failingReads is a filesystem whose table-file reads fail while on.
type failingReads struct {
	on    atomic.Bool
	fails atomic.Int64
}

var errInjected = errors.New("injected read error")

func (f *failingReads) MaybeError(op errorfs.Op) error {
	if f.on.Load() && (op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt) && strings.HasSuffix(op.Path, ".sst") {
		f.fails.Add(1)
		return errInjected
	}
	return nil
}

func (f *failingReads) String() string { return "failingReads" }

// TestReadErrorKeepsTheMessage is issue 12 item 3: store.Get wrapped every
// Pebble error as ErrCorrupt and Pop deleted on ErrCorrupt, so one failed
// read removed an acknowledged message. Now a POLL that meets a read error
// is answered POLL_NACK and the message stays; once the storage reads
// again, the next POLL delivers it.
func TestReadErrorKeepsTheMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	inj := &failingReads{}
	fs := errorfs.Wrap(vfs.Default, inj)
	open := func() (*store.Store, *DurableMailboxes) {
		// A tiny block cache, so that every read reaches the files.
		st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t, 3), Purpose: "relay", FS: fs, CacheSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		d, err := OpenDurableMailboxes(st, Limits{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, d
	}
	st, d := open()
	if err := d.Create("bob"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"first", "second"} {
		if err := d.Push("bob", Message{From: "alice", Data: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Reopened, the messages are read from table files, not memory.
	st, d = open()
	defer st.Close()

	s := startServer(t, func(c *Config) { c.Mailboxes = d })
	c := dialRaw(t, s.addr)
	c.send(wire.RegisterClient, []byte("bob"))
	c.expect(wire.RegisterAck, "")

	inj.on.Store(true)
	for range 3 {
		c.send(wire.PollData, nil)
		if p := c.expect(wire.PollNack, ""); string(p) != "mailbox could not be read" {
			t.Fatalf("POLL during a read error: POLL_NACK %q", p)
		}
	}
	if inj.fails.Load() == 0 {
		t.Fatal("no read reached the failing filesystem: the test does not test anything")
	}
	inj.on.Store(false)
	for _, want := range []string{"first", "second"} {
		c.send(wire.PollData, nil)
		if p := c.expect(wire.DataAvailable, ""); string(p) != string(addressed("alice", []byte(want))) {
			t.Fatalf("after the read error: DATA_AVAILABLE %q, want %q from alice", p, want)
		}
	}
	c.send(wire.PollData, nil)
	c.expect(wire.NoDataAvailable, "")
}

// TestReadErrorAtStartRefusesToStart: mailboxes that cannot be read at
// start stop relayd with an error that wraps store.ErrIO (nothing is
// refused or changed), rather than start without them.
func TestReadErrorAtStartRefusesToStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	inj := &failingReads{}
	fs := errorfs.Wrap(vfs.Default, inj)
	st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t, 3), Purpose: "relay", FS: fs, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDurableMailboxes(st, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Create("bob")
	d.Push("bob", Message{From: "alice", Data: []byte("kept")})
	d.Sync()
	st.Close()
	st, err = store.Open(store.Options{Dir: dir, Root: testRoot(t, 3), Purpose: "relay", FS: fs, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inj.on.Store(true)
	if _, err := OpenDurableMailboxes(st, Limits{}, nil); !errors.Is(err, store.ErrIO) {
		t.Fatalf("OpenDurableMailboxes during read errors: %v, want an error wrapping store.ErrIO", err)
	}
	inj.on.Store(false)
	d, err = OpenDurableMailboxes(st, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok, err := d.Pop("bob"); err != nil || !ok || string(m.Data) != "kept" {
		t.Fatalf("after the read errors: %q %v %v", m.Data, ok, err)
	}
}
