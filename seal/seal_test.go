package seal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func root(t testing.TB, b byte) *Root {
	r, err := NewRoot(bytes.Repeat([]byte{b}, 16))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpen(t *testing.T) {
	s, err := NewSealer(root(t, 1), "relay", 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Seal("msg", []byte("alice/1"), 7, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(c, []byte("secret")) || len(c) != len("secret")+Overhead {
		t.Fatalf("sealed %x", c)
	}
	p, err := s.Open("msg", []byte("alice/1"), 7, c)
	if err != nil || string(p) != "secret" {
		t.Fatalf("%q %v", p, err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"other name":    func() ([]byte, error) { return s.Open("msg", []byte("alice/2"), 7, c) },
		"other kind":    func() ([]byte, error) { return s.Open("key", []byte("alice/1"), 7, c) },
		"other version": func() ([]byte, error) { return s.Open("msg", []byte("alice/1"), 8, c) },
		"truncated":     func() ([]byte, error) { return s.Open("msg", []byte("alice/1"), 7, c[:len(c)-1]) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for i := range c {
		b := bytes.Clone(c)
		b[i] ^= 1
		if _, err := s.Open("msg", []byte("alice/1"), 7, b); err == nil {
			t.Fatalf("byte %d flipped: opened", i)
		}
	}
}

func TestOtherEnclaveCannotOpen(t *testing.T) {
	a, _ := NewSealer(root(t, 1), "relay", 1)
	b, _ := NewSealer(root(t, 2), "relay", 1)
	kms, _ := NewSealer(root(t, 1), "kms", 1)
	c, _ := a.Seal("msg", []byte("x"), 0, []byte("p"))
	if _, err := b.Open("msg", []byte("x"), 0, c); !errors.Is(err, ErrOpen) {
		t.Errorf("another root opened it: %v", err)
	}
	if _, err := kms.Open("msg", []byte("x"), 0, c); !errors.Is(err, ErrOpen) {
		t.Errorf("another purpose opened it: %v", err)
	}
	var sec [32]byte
	r1, _ := SimulatedRoot(bytes.Repeat([]byte{9}, 32), [32]byte{1})
	r2, _ := SimulatedRoot(bytes.Repeat([]byte{9}, 32), [32]byte{2})
	s1, _ := NewSealer(r1, "relay", 1)
	s2, _ := NewSealer(r2, "relay", 1)
	c, _ = s1.Seal("msg", nil, 0, sec[:])
	if _, err := s2.Open("msg", nil, 0, c); !errors.Is(err, ErrOpen) {
		t.Error("another simulated measurement opened it")
	}
}

func TestBadRoots(t *testing.T) {
	for name, raw := range map[string][]byte{"nil": nil, "short": make([]byte, 15), "zero": make([]byte, 16), "zero32": make([]byte, 32)} {
		if _, err := NewRoot(raw); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := SimulatedRoot(nil, [32]byte{}); !errors.Is(err, ErrBadKey) {
		t.Error("empty platform secret accepted")
	}
	if _, err := NewSealer(nil, "x", 1); !errors.Is(err, ErrBadKey) {
		t.Error("nil root accepted")
	}
	if _, err := NewSealer(root(t, 1), "x", 0); err == nil {
		t.Error("generation 0 accepted")
	}
	if s := fmt.Sprint(root(t, 0x41)); bytes.Contains([]byte(s), []byte("AAAA")) || s != "seal.Root(…)" {
		t.Errorf("root prints as %q", s)
	}
	if s := fmt.Sprintf("%#v %+v", root(t, 0x41), root(t, 0x41)); bytes.Contains([]byte(s), []byte("65, 65")) {
		t.Errorf("root prints as %q", s)
	}
}

func TestRotation(t *testing.T) {
	old, _ := NewSealer(root(t, 1), "kms", 1)
	c1, _ := old.Seal("key", []byte("k"), 1, []byte("v1"))
	cur, _ := NewSealer(root(t, 1), "kms", 2)
	if !cur.NeedsReseal(c1) {
		t.Fatal("generation-1 record not flagged for re-sealing")
	}
	p, err := cur.Open("key", []byte("k"), 1, c1)
	if err != nil || string(p) != "v1" {
		t.Fatalf("generation 2 sealer cannot open generation 1: %v", err)
	}
	c2, _ := cur.Seal("key", []byte("k"), 1, p)
	if cur.NeedsReseal(c2) {
		t.Fatal("fresh record flagged")
	}
	if _, err := old.Open("key", []byte("k"), 1, c2); !errors.Is(err, ErrUnknownGeneration) {
		t.Fatalf("old sealer on a newer record: %v", err)
	}
}

func TestBlind(t *testing.T) {
	a, _ := NewSealer(root(t, 1), "relay", 1)
	a2, _ := NewSealer(root(t, 1), "relay", 2)
	b, _ := NewSealer(root(t, 2), "relay", 1)
	x := a.Blind("id", []byte("alice"))
	if len(x) != 16 || !bytes.Equal(x, a2.Blind("id", []byte("alice"))) {
		t.Fatal("blinding must be stable across generations")
	}
	if bytes.Equal(x, b.Blind("id", []byte("alice"))) || bytes.Equal(x, a.Blind("id", []byte("bob"))) || bytes.Equal(x, a.Blind("id2", []byte("alice"))) {
		t.Fatal("blinding collides across roots, names or kinds")
	}
}
