package jetstream

import (
	"bytes"
	"testing"

	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/seal"
)

func testSealer(t testing.TB) *seal.Sealer {
	root, err := seal.NewRoot(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := seal.NewSealer(root, sealPurpose, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecordRoundTripAndBinding(t *testing.T) {
	s := testSealer(t)
	box := s.Blind("relay/mailbox", []byte("bob"))
	other := s.Blind("relay/mailbox", []byte("eve"))
	epoch := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	m := relay.Message{From: "alice", Data: []byte("hello"), ID: []byte("id-1")}
	rec, err := sealRecord(s, box, epoch, 42, m)
	if err != nil {
		t.Fatal(err)
	}
	key, got, err := openRecord(s, box, rec)
	if err != nil || got.From != "alice" || string(got.Data) != "hello" || string(got.ID) != "id-1" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if !bytes.Equal(key[:8], epoch[:]) {
		t.Fatal("sequence key does not carry the epoch")
	}
	// Moved to another mailbox: does not open.
	if _, _, err := openRecord(s, other, rec); err == nil {
		t.Fatal("a record moved to another mailbox opened")
	}
	// Re-labelled with another sequence: does not open.
	bad := bytes.Clone(rec)
	bad[16] ^= 1
	if _, _, err := openRecord(s, box, bad); err == nil {
		t.Fatal("a record with a changed sequence opened")
	}
	// Every strict prefix fails.
	for i := range rec {
		if _, _, err := openRecord(s, box, rec[:i]); err == nil {
			t.Fatalf("prefix of %d bytes opened", i)
		}
	}
}

func TestParsePlainPrefixes(t *testing.T) {
	pt := []byte{5, 'a', 'l', 'i', 'c', 'e', 2, 'i', 'd'}
	if _, err := parsePlain(pt); err != nil {
		t.Fatal(err)
	}
	for i := range pt {
		if _, err := parsePlain(pt[:i]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", i)
		}
	}
}

func FuzzParsePlain(f *testing.F) {
	f.Add([]byte{5, 'a', 'l', 'i', 'c', 'e', 0, 'x'})
	f.Add([]byte{1, 'a', 64})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parsePlain(b)
		if err != nil {
			return
		}
		if len(m.From) == 0 || len(m.ID) > 64 || 2+len(m.From)+len(m.ID)+len(m.Data) != len(b) {
			t.Fatalf("accepted %x as %+v", b, m)
		}
	})
}

func FuzzOpenRecord(f *testing.F) {
	s := testSealer(f)
	box := s.Blind("relay/mailbox", []byte("bob"))
	rec, err := sealRecord(s, box, [8]byte{9}, 1, relay.Message{From: "a", Data: []byte("d")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		openRecord(s, box, b) // must not panic
	})
}
