package durable

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteNew(p, strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "data" || st.Mode().Perm() != 0o600 {
		t.Fatalf("%q %v", b, st.Mode())
	}
	// An existing file is never overwritten, nor removed.
	if err := WriteNew(p, strings.NewReader("other")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "data" {
		t.Fatal("the existing file changed")
	}
	// A failed copy leaves nothing.
	q := filepath.Join(dir, "g")
	if err := WriteNew(q, failing{}); err == nil {
		t.Fatal("a failed copy succeeded")
	}
	if _, err := os.Stat(q); !os.IsNotExist(err) {
		t.Fatal("a failed write left a partial file")
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("broken reader") }
