package kms

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// RFC 5649, section 6.
func TestKWPVectors(t *testing.T) {
	kek := unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, v := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		w, err := kwpWrap(kek, unhex(v.key))
		if err != nil || hex.EncodeToString(w) != v.wrapped {
			t.Errorf("wrap %s: %x %v", v.key, w, err)
		}
		p, err := kwpUnwrap(kek, unhex(v.wrapped))
		if err != nil || !bytes.Equal(p, unhex(v.key)) {
			t.Errorf("unwrap %s: %x %v", v.wrapped, p, err)
		}
	}
}

func TestKWPRefusesTampering(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	for _, n := range []int{1, 7, 8, 9, 16, 32, 33, 1218} {
		key := bytes.Repeat([]byte{0x5a}, n)
		w, err := kwpWrap(kek, key)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := kwpUnwrap(kek, w); err != nil || !bytes.Equal(p, key) {
			t.Fatalf("round trip %d: %v", n, err)
		}
		for i := range w {
			bad := bytes.Clone(w)
			bad[i] ^= 0x80
			if _, err := kwpUnwrap(kek, bad); err == nil {
				t.Fatalf("len %d: flipped byte %d unwrapped", n, i)
			}
		}
		for l := 0; l < len(w); l++ {
			if _, err := kwpUnwrap(kek, w[:l]); err == nil {
				t.Fatalf("len %d: prefix %d unwrapped", n, l)
			}
		}
	}
}

func FuzzKWPUnwrap(f *testing.F) {
	f.Add(unhex("afbeb0f07dfbf5419200f2ccb50bb24f"))
	f.Fuzz(func(t *testing.T, c []byte) {
		kek := unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
		p, err := kwpUnwrap(kek, c)
		if err == nil {
			w, _ := kwpWrap(kek, p)
			if !bytes.Equal(w, c) {
				t.Fatalf("unwrap accepted %x, which is not the wrap of what it gave", c)
			}
		}
	})
}
