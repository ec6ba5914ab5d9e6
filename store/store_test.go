package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/sharedenclave/sharedenclave/seal"
)

func root(t testing.TB, b byte) *seal.Root {
	r, err := seal.NewRoot(bytes.Repeat([]byte{b}, 16))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func open(t testing.TB, dir string, b byte) *Store {
	s, err := Open(Options{Dir: dir, Root: root(t, b), Purpose: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const marker = "PLAINTEXT-MARKER-7d1e"

func TestPutGetScanReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1)
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Put("msg", []byte(k), []byte(marker+k), Sync); err != nil {
			t.Fatal(err)
		}
	}
	s.Put("other", []byte("a"), []byte("x"), Sync)
	if err := s.Delete("msg", []byte("b"), Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir, 1)
	defer s.Close()
	v, err := s.Get("msg", []byte("a"))
	if err != nil || string(v) != marker+"a" {
		t.Fatalf("get after reopen: %q %v", v, err)
	}
	if _, err := s.Get("msg", []byte("b")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	var keys []string
	s.Scan("msg", nil, func(k, v []byte, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, string(k))
		return nil
	})
	if len(keys) != 2 || keys[0] != "a" || keys[1] != "c" {
		t.Fatalf("scan %v", keys)
	}
}

// rawSet writes bytes under a store key, bypassing sealing, as the host
// could.
func rawSet(t *testing.T, s *Store, kind string, key, value []byte) {
	if err := s.db.Set(dbKey(kind, key), value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, s *Store, kind string, key []byte) []byte {
	v, c, err := s.db.Get(dbKey(kind, key))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return bytes.Clone(v)
}

func TestTamperingRefused(t *testing.T) {
	s := open(t, t.TempDir(), 1)
	defer s.Close()
	s.Put("msg", []byte("a"), []byte("value a"), Sync)
	s.Put("msg", []byte("b"), []byte("value b"), Sync)
	s.Put("key", []byte("a"), []byte("key a"), Sync)
	a, b := rawGet(t, s, "msg", []byte("a")), rawGet(t, s, "msg", []byte("b"))

	// A flipped byte.
	for _, i := range []int{0, 3, 10, len(a) - 1} {
		bad := bytes.Clone(a)
		bad[i] ^= 0x80
		rawSet(t, s, "msg", []byte("a"), bad)
		if _, err := s.Get("msg", []byte("a")); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flipped byte %d: %v", i, err)
		}
	}
	// Two records swapped.
	rawSet(t, s, "msg", []byte("a"), b)
	rawSet(t, s, "msg", []byte("b"), a)
	if _, err := s.Get("msg", []byte("a")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("swapped record: %v", err)
	}
	// A record copied under another kind.
	rawSet(t, s, "key", []byte("a"), a)
	if _, err := s.Get("key", []byte("a")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("record moved to another kind: %v", err)
	}
	// Scan reports refused records and never hands their bytes out.
	n := 0
	s.Scan("msg", nil, func(k, v []byte, err error) error {
		if err == nil || v != nil {
			t.Errorf("scan served a tampered record %q", k)
		}
		n++
		return nil
	})
	if n != 2 {
		t.Errorf("scan saw %d records", n)
	}
}

// TestOtherEnclaveCannotRead is issue 12 item 2: a store sealed by another
// enclave identity (a rebuild under the mrenclave policy) used to open,
// then refuse its records one by one and take new ones. Open now refuses
// it as a whole, says which seal policy would open it, and writes nothing.
func TestOtherEnclaveCannotRead(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1)
	s.Put("msg", []byte("a"), []byte("secret"), Sync)
	s.Close()

	_, err := Open(Options{Dir: dir, Root: root(t, 2), Purpose: "test",
		Alternates: []Alternate{{"--seal-policy other", root(t, 3)}, {"--seal-policy mrsigner", root(t, 1)}}})
	var se *SealedElsewhereError
	if !errors.As(err, &se) || !errors.Is(err, ErrSealedElsewhere) || se.OpensWith != "--seal-policy mrsigner" {
		t.Fatalf("Open with another root: %v, want a *SealedElsewhereError naming --seal-policy mrsigner", err)
	}
	if msg := err.Error(); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "sealed by another enclave identity") || !strings.HasSuffix(msg, "it opens with --seal-policy mrsigner") {
		t.Errorf("error is not one line with its hint: %q", msg)
	}
	_, err = Open(Options{Dir: dir, Root: root(t, 2), Purpose: "test", Alternates: []Alternate{{"--seal-policy mrsigner", root(t, 3)}}})
	if !errors.As(err, &se) || se.OpensWith != "" || !strings.Contains(err.Error(), "run the build that sealed it") {
		t.Fatalf("Open with no root that opens it: %v, want the recovery hint", err)
	}
	// Nothing was written: the owner still reads exactly its record.
	s = open(t, dir, 1)
	defer s.Close()
	if v, err := s.Get("msg", []byte("a")); err != nil || string(v) != "secret" {
		t.Fatalf("the owner reads %q %v", v, err)
	}
	n := 0
	s.Scan("msg", nil, func(_, _ []byte, _ error) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d records after the refused opens, want 1", n)
	}
}

// TestSealCheckOfOlderStores: a store made before the seal check record
// existed is recognised by its records, and gets the record; one of
// another identity is refused; an empty one is taken.
func TestSealCheckOfOlderStores(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1)
	s.Put("msg", []byte("a"), []byte("v"), Sync)
	// As an older version left it: no check record.
	if err := s.db.Delete(metaCheck, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Options{Dir: dir, Root: root(t, 2), Purpose: "test"}); !errors.Is(err, ErrSealedElsewhere) {
		t.Fatalf("an older store of another identity: %v", err)
	}
	s = open(t, dir, 1)
	if _, closer, err := s.db.Get(metaCheck); err != nil {
		t.Fatalf("the check record was not written for an older store of ours: %v", err)
	} else {
		closer.Close()
	}
	s.Close()
	// An empty store gets the check record too, so it is ours from then on.
	empty := t.TempDir()
	s = open(t, empty, 1)
	s.Close()
	s = open(t, empty, 1) // reopening an empty store of ours
	s.Close()
	if _, err := Open(Options{Dir: empty, Root: root(t, 2), Purpose: "test"}); !errors.Is(err, ErrSealedElsewhere) {
		t.Fatalf("an empty store of another identity: %v", err)
	}
}

// TestNoPlaintextOnDisk writes recognisable values, closes the store, and
// searches every file under the directory for them.
func TestNoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1)
	for i := 0; i < 500; i++ {
		s.Put("msg", []byte{byte(i >> 8), byte(i)}, []byte(marker), NoSync)
	}
	s.Put("msg", []byte("last"), []byte(marker), Sync)
	s.Close()
	if n := scanFiles(t, dir, []byte(marker)); n != 0 {
		t.Fatalf("%d files contain the plaintext", n)
	}
	// The check can fail: Pebble written without sealing shows the marker.
	plain := filepath.Join(t.TempDir(), "plain")
	db, err := pebble.Open(plain, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Set([]byte("k"), []byte(marker), pebble.Sync)
	db.Close()
	if scanFiles(t, plain, []byte(marker)) == 0 {
		t.Fatal("the scan cannot find plaintext even in an unsealed store")
	}
}

func scanFiles(t *testing.T, dir string, needle []byte) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, needle) {
			t.Logf("%s contains it", p)
			n++
		}
		return nil
	})
	return n
}

func TestOpenNeedsSealer(t *testing.T) {
	if _, err := Open(Options{Dir: t.TempDir(), Purpose: "x"}); err == nil {
		t.Fatal("store opened without a seal root")
	}
}

// TestFlippedFileBytes flips a byte of a sealed value inside the store's
// files (the WAL, or an sstable after a flush), reopens, and requires the
// record to be refused or missing — never served altered.
func TestFlippedFileBytes(t *testing.T) {
	for _, flush := range []bool{false, true} {
		dir := t.TempDir()
		s := open(t, dir, 1)
		s.Put("msg", []byte("k"), []byte("the original value"), Sync)
		sealed := rawGet(t, s, "msg", []byte("k"))
		if flush {
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		flipped := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			if i := bytes.Index(b, sealed); i >= 0 {
				b[i+len(sealed)/2] ^= 0x01
				os.WriteFile(p, b, 0o644)
				flipped++
			}
			return nil
		})
		if flipped == 0 {
			t.Fatalf("flush=%v: sealed value not found in any file", flush)
		}
		s2, err := Open(Options{Dir: dir, Root: root(t, 1), Purpose: "test"})
		if err != nil {
			continue // Pebble refused the corrupted store outright: refused.
		}
		v, err := s2.Get("msg", []byte("k"))
		if err == nil {
			t.Errorf("flush=%v: a flipped record was served as %q", flush, v)
		}
		s2.Close()
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1)
	for i := 0; i < 100; i++ {
		s.Put("msg", []byte{byte(i)}, []byte{byte(i), 1, 2, 3}, NoSync)
	}
	s.Put("key", []byte("k"), []byte("key material"), Sync)
	before := rawGet(t, s, "key", []byte("k"))
	n, err := s.Rotate()
	if err != nil || n != 101 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	after := rawGet(t, s, "key", []byte("k"))
	if bytes.Equal(before, after) || s.Sealer().Generation() != 2 {
		t.Fatal("record not re-sealed")
	}
	if n, _ := s.Rotate(); n != 101 {
		t.Fatalf("second rotation re-sealed %d", n)
	}
	s.Close()
	s = open(t, dir, 1)
	defer s.Close()
	if s.Sealer().Generation() != 3 {
		t.Fatalf("generation %d after reopen, want 3", s.Sealer().Generation())
	}
	v, err := s.Get("key", []byte("k"))
	if err != nil || string(v) != "key material" {
		t.Fatalf("after rotation and reopen: %q %v", v, err)
	}
	// A record sealed under generation 1 (e.g. restored by the host from
	// an old copy) still opens: rotation does not revoke old keys.
	rawSet(t, s, "key", []byte("k"), before)
	if _, err := s.Get("key", []byte("k")); err != nil {
		t.Fatalf("generation-1 record: %v", err)
	}
}

// TestReadErrorIsNotCorruption: a read that fails in the filesystem is
// ErrIO, never ErrCorrupt (callers delete ErrCorrupt records), and the
// record reads again once the filesystem does.
func TestReadErrorIsNotCorruption(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	efs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsRead && strings.HasSuffix(op.Path, ".sst") {
			return errors.New("injected read error")
		}
		return nil
	}))
	s, err := Open(Options{Dir: dir, Root: root(t, 1), Purpose: "test", FS: efs, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put("msg", []byte("a"), []byte("value"), Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	_, err = s.Get("msg", []byte("a"))
	if !errors.Is(err, ErrIO) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get during a read error: %v, want ErrIO and not ErrCorrupt", err)
	}
	serr := s.Scan("msg", nil, func(_, _ []byte, err error) error { return err })
	if !errors.Is(serr, ErrIO) || errors.Is(serr, ErrCorrupt) {
		t.Fatalf("Scan during a read error: %v, want ErrIO and not ErrCorrupt", serr)
	}
	failing.Store(false)
	if v, err := s.Get("msg", []byte("a")); err != nil || string(v) != "value" {
		t.Fatalf("after the read error: %q %v", v, err)
	}
}

// TestSequenceCountsOpens: every open raises the sealed sequence by one,
// and a copy of the store keeps the sequence it had when it was copied —
// which is how an old copy put back shows.
func TestSequenceCountsOpens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	for want := uint64(1); want <= 3; want++ {
		s := open(t, dir, 1)
		if s.Sequence() != want {
			t.Fatalf("open %d: sequence %d", want, s.Sequence())
		}
		if want == 2 {
			if err := s.Checkpoint(dir + "-copy"); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	c := open(t, dir+"-copy", 1)
	defer c.Close()
	if c.Sequence() != 3 {
		t.Fatalf("the copy taken at sequence 2 opens at %d", c.Sequence())
	}
}
