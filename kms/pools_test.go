package kms

import (
	"bytes"
	"testing"
)

// TestSlicePool: a pooled slice comes back cleared (it held a request's
// plaintexts); small slices are never pooled, so a small request neither
// gets nor clears a batch's buffer.
func TestSlicePool(t *testing.T) {
	var p slicePool[byte]
	big := p.get(64 << 10)
	big = append(big, bytes.Repeat([]byte("secret"), 10000)...)
	p.put(big)
	if small := p.get(100); cap(small) >= 64<<10 {
		t.Fatalf("a 100-byte get was given a %d-byte pooled slice", cap(small))
	}
	again := p.get(32 << 10)
	if cap(again) == cap(big) && bytes.Contains(again[:cap(again)], []byte("secret")) {
		t.Fatal("a pooled slice came back with the last request's bytes")
	}
	p.put(make([]byte, 100)) // not kept: under minPooled
	if v, _ := p.p.Get().(*[]byte); v != nil && cap(*v) < minPooled {
		t.Fatalf("a %d-byte slice was pooled", cap(*v))
	}
}
