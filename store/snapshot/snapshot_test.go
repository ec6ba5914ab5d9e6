package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
)

func newRoot(t *testing.T) *seal.Root {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	r, err := seal.NewRoot(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// backupDir makes a finished backup of a real store holding one record.
func backupDir(t *testing.T, root *seal.Root) string {
	t.Helper()
	tmp := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(tmp, "live"), Root: root, Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put("k", []byte("name"), []byte("secret value"), store.Sync); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "backup")
	if err := st.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "custody.json"), []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Finish(dir, root, Meta{Purpose: "kms", Sequence: 7, Taken: time.Unix(1700000000, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func archive(t *testing.T, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, dir); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRoundTrip: a backup written as an archive and extracted elsewhere is
// the same store: its record opens with the same root, and the sealed
// meta says what was backed up.
func TestRoundTrip(t *testing.T) {
	root := newRoot(t)
	dir := backupDir(t, root)
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "-c", "--quiet", SumsFile)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum -c SHA256SUMS in the backup: %v: %s", err, out)
		}
	}
	a := archive(t, dir)
	dst := filepath.Join(t.TempDir(), "restored")
	sum, err := Extract(bytes.NewReader(a), dst, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files < 4 {
		t.Fatalf("summary %+v", sum)
	}
	m, err := OpenMeta(dst, root, "kms")
	if err != nil {
		t.Fatal(err)
	}
	if m.Sequence != 7 || !m.Taken.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("meta %+v", m)
	}
	if _, err := OpenMeta(dst, newRoot(t), "kms"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another deployment's key opened the meta: %v", err)
	}
	if _, err := OpenMeta(dst, root, "relay"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another service's meta: %v", err)
	}
	st, err := store.Open(store.Options{Dir: dst, Root: root, Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := st.Get("k", []byte("name"))
	if err != nil || string(v) != "secret value" {
		t.Fatalf("restored record: %q, %v", v, err)
	}
	// Nothing in the archive is the record in plaintext.
	if bytes.Contains(gunzip(t, a), []byte("secret value")) {
		t.Fatal("the archive holds the record in plaintext")
	}
}

// TestLastFileIsSealedSums: the check Vault's Go client makes on
// `vault operator raft snapshot save` (the last file is a non-empty
// SHA256SUMS.sealed) holds.
func TestLastFileIsSealedSums(t *testing.T) {
	tr := tar.NewReader(bytes.NewReader(gunzip(t, archive(t, backupDir(t, newRoot(t))))))
	var last string
	var size int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last, size = h.Name, h.Size
	}
	if last != SealedFile || size == 0 {
		t.Fatalf("last file %q (%d bytes)", last, size)
	}
}

func gunzip(t *testing.T, a []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type entry struct {
	name string
	typ  byte
	body []byte
}

func entries(t *testing.T, a []byte) []entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(gunzip(t, a)))
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, entry{h.Name, h.Typeflag, b})
	}
}

func pack(t testing.TB, es []entry) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Size: int64(len(e.body)), Mode: 0o600}
		if typ != tar.TypeReg {
			h.Size = 0
			h.Linkname = "x"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// TestBadArchivesRefusedAndNothingLeft: every way an archive can be
// incomplete or altered is refused, and Extract leaves nothing behind.
func TestBadArchivesRefusedAndNothingLeft(t *testing.T) {
	good := archive(t, backupDir(t, newRoot(t)))
	es := entries(t, good)
	n := len(es)
	mod := func(f func([]entry) []entry) []byte {
		c := make([]entry, len(es))
		copy(c, es)
		return pack(t, f(c))
	}
	cases := map[string][]byte{
		"not gzip":        []byte("hello"),
		"empty":           {},
		"cut off midway":  good[:len(good)/2],
		"no sealed sums":  mod(func(e []entry) []entry { return e[:n-1] }),
		"no sums at all":  mod(func(e []entry) []entry { return e[:n-2] }),
		"empty sealed":    mod(func(e []entry) []entry { e[n-1].body = nil; return e }),
		"file altered":    mod(func(e []entry) []entry { b := bytes.Clone(e[0].body); b[0] ^= 1; e[0].body = b; return e }),
		"file dropped":    mod(func(e []entry) []entry { return e[1:] }),
		"file added":      mod(func(e []entry) []entry { return append([]entry{{name: "000999.sst", body: []byte("x")}}, e...) }),
		"file after sums": mod(func(e []entry) []entry { return append(e[:n-1:n-1], entry{name: "extra", body: []byte("x")}, e[n-1]) }),
		"after sealed":    mod(func(e []entry) []entry { return append(e, entry{name: "extra", body: []byte("x")}) }),
		"path traversal":  mod(func(e []entry) []entry { e[0].name = "../evil"; return e }),
		"subdirectory":    mod(func(e []entry) []entry { e[0].name = "a/b"; return e }),
		"symlink":         mod(func(e []entry) []entry { e[0].typ = tar.TypeSymlink; return e }),
		"duplicate":       mod(func(e []entry) []entry { return append([]entry{e[0]}, e...) }),
		"sealed before":   mod(func(e []entry) []entry { e[n-2], e[n-1] = e[n-1], e[n-2]; return e }),
		"sums malformed":  mod(func(e []entry) []entry { e[n-2].body = []byte("nonsense\n"); return e }),
		"sums no newline": mod(func(e []entry) []entry { e[n-2].body = bytes.TrimSuffix(e[n-2].body, []byte("\n")); return e }),
		"sums upper hex":  mod(func(e []entry) []entry { e[n-2].body = bytes.ToUpper(e[n-2].body); return e }),
		"sums names sums": mod(func(e []entry) []entry {
			e[n-2].body = append(bytes.Clone(e[n-2].body), []byte(strings.Repeat("a", 64)+"  SHA256SUMS\n")...)
			return e
		}),
		"oversized sealed": mod(func(e []entry) []entry { e[n-1].body = make([]byte, maxSealed+1); return e }),
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			if _, err := Extract(bytes.NewReader(a), filepath.Join(parent, "r"), Limits{}); err == nil {
				t.Fatal("accepted")
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Fatalf("left %d entries behind", len(ents))
			}
			if _, err := Check(bytes.NewReader(a), Limits{}); err == nil {
				t.Fatal("Check accepted it")
			}
		})
	}
	// Limits are checked before anything is written.
	parent := t.TempDir()
	if _, err := Extract(bytes.NewReader(good), filepath.Join(parent, "r"), Limits{Files: 2}); err == nil || !strings.Contains(err.Error(), "files") {
		t.Fatalf("file limit: %v", err)
	}
	if _, err := Extract(bytes.NewReader(good), filepath.Join(parent, "r"), Limits{Bytes: 10}); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("byte limit: %v", err)
	}
	// An existing directory is never written into.
	if err := os.Mkdir(filepath.Join(parent, "exists"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(bytes.NewReader(good), filepath.Join(parent, "exists"), Limits{}); err == nil {
		t.Fatal("extracted into an existing directory")
	}
}

// TestOpenMetaRefusesAlteredSums: SHA256SUMS edited after the backup no
// longer matches its sealed digest.
func TestOpenMetaRefusesAlteredSums(t *testing.T) {
	root := newRoot(t)
	dir := backupDir(t, root)
	p := filepath.Join(dir, SumsFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, []byte(strings.Repeat("0", 64)+"  extra\n")...), 0o600)
	if _, err := OpenMeta(dir, root, "kms"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("altered SHA256SUMS: %v", err)
	}
	os.Remove(filepath.Join(dir, SealedFile))
	if _, err := OpenMeta(dir, root, "kms"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no sealed sums: %v", err)
	}
}

func FuzzExtract(f *testing.F) {
	root, _ := seal.NewRoot(bytes.Repeat([]byte{7}, 32))
	tmp := f.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(tmp, "live"), Root: root, Purpose: "kms"})
	if err != nil {
		f.Fatal(err)
	}
	st.Put("k", []byte("n"), []byte("v"), store.Sync)
	dir := filepath.Join(tmp, "b")
	st.Checkpoint(dir)
	st.Close()
	Finish(dir, root, Meta{Purpose: "kms"})
	var b bytes.Buffer
	Write(&b, dir)
	f.Add(b.Bytes())
	f.Add(pack(f, []entry{{name: SumsFile, body: []byte("")}, {name: SealedFile, body: []byte("x")}}))
	// Check runs the same walk as Extract without the file system; an
	// archive Check accepts is extracted, and one it refuses is also
	// refused by Extract with nothing left behind.
	f.Fuzz(func(t *testing.T, a []byte) {
		lim := Limits{Files: 64, Bytes: 1 << 20}
		_, cerr := Check(bytes.NewReader(a), lim)
		if cerr != nil && !errors.Is(cerr, ErrInvalid) {
			t.Fatalf("a refusal that is not ErrInvalid: %v", cerr)
		}
		if cerr != nil && len(a)%16 != 0 {
			return
		}
		parent := t.TempDir()
		_, err := Extract(bytes.NewReader(a), filepath.Join(parent, "r"), lim)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("Check: %v, Extract: %v", cerr, err)
		}
		if ents, _ := os.ReadDir(parent); err != nil && len(ents) != 0 {
			t.Fatalf("refused (%v) but left %d entries", err, len(ents))
		}
	})
}
