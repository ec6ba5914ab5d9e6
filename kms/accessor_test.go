package kms

import (
	"bytes"
	"crypto/rand"
	"regexp"
	"testing"
)

// TestAccessorShape: accessors are 24 letters and digits, as Vault's, so
// that none begins with '-' (the Vault CLI would take it for a flag);
// bytes that would bias the draw are skipped.
func TestAccessorShape(t *testing.T) {
	shape := regexp.MustCompile(`^[A-Za-z0-9]{24}$`)
	seen := map[string]bool{}
	for range 2000 {
		a, err := newAccessor(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(a) || seen[a] {
			t.Fatalf("accessor %q (seen before: %v)", a, seen[a])
		}
		seen[a] = true
	}
	// 0xFF is over the rejection bound: a reader of mostly 0xFF still
	// gives 24 symbols, all from the bytes under it.
	src := bytes.Repeat([]byte{0xFF, 0xFF, 0xFF, 1}, 200)
	a, err := newAccessor(bytes.NewReader(src))
	if err != nil || a != "BBBBBBBBBBBBBBBBBBBBBBBB" {
		t.Fatalf("accessor from a biased source: %q, %v", a, err)
	}
}
