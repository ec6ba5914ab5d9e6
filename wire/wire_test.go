package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	frames := []Frame{
		{RegisterClient, []byte("alice")},
		{SendData, mustAddressed("bob", []byte("hello"))},
		{PollData, nil},
		{Error, []byte("unknown frame type 0x04")},
	}
	for _, f := range frames {
		if err := WriteFrame(&b, f.Type, f.Payload); err != nil {
			t.Fatal(err)
		}
	}
	// Byte-exact encoding of the first frame.
	if got := b.Bytes()[:10]; !bytes.Equal(got, []byte{0x01, 0, 0, 0, 5, 'a', 'l', 'i', 'c', 'e'}) {
		t.Fatalf("REGISTER_CLIENT encodes as %x", got)
	}
	// One byte at a time, as a slow client would send it.
	r := NewReader(iotest.OneByteReader(bytes.NewReader(b.Bytes())), 0)
	for i, want := range frames {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type != want.Type || !bytes.Equal(f.Payload, want.Payload) {
			t.Fatalf("frame %d: %v %q", i, f.Type, f.Payload)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestEveryStrictPrefixFails(t *testing.T) {
	enc := AppendFrame(nil, SendData, mustAddressed("bob", []byte("hi")))
	for n := 1; n < len(enc); n++ {
		_, err := NewReader(bytes.NewReader(enc[:n]), 0).ReadFrame()
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("prefix of %d bytes: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

// failAfter fails the test if more than n bytes are read from it.
type failAfter struct {
	t    *testing.T
	data []byte
	n    int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, io.EOF
	}
	if f.n <= 0 {
		f.t.Fatal("read past the header of an oversize frame")
	}
	m := copy(p[:min(len(p), f.n)], f.data)
	f.data, f.n = f.data[m:], f.n-m
	return m, nil
}

func TestSizeLimitBeforeAllocation(t *testing.T) {
	const max = 1024
	exact := AppendFrame(nil, SendData, make([]byte, max))
	if f, err := NewReader(bytes.NewReader(exact), max).ReadFrame(); err != nil || len(f.Payload) != max {
		t.Fatalf("payload of exactly the maximum: %v", err)
	}
	for _, n := range []uint32{max + 1, 0xFFFFFFFF} {
		hdr := binary.BigEndian.AppendUint32([]byte{byte(SendData)}, n)
		src := &failAfter{t: t, data: append(hdr, make([]byte, 64)...), n: HeaderSize}
		r := &Reader{r: newUnbuffered(src), max: max}
		_, err := r.ReadFrame()
		var se *SizeError
		if !errors.As(err, &se) || !errors.Is(err, ErrTooLarge) || se.Len != uint64(n) {
			t.Fatalf("length %d: %v", n, err)
		}
		if cap(r.buf) != 0 {
			t.Errorf("length %d: a %d-byte buffer was allocated for a refused frame", n, cap(r.buf))
		}
	}
}

func TestZeroLengthPayload(t *testing.T) {
	f, err := NewReader(bytes.NewReader([]byte{0x03, 0, 0, 0, 0}), 0).ReadFrame()
	if err != nil || f.Type != PollData || len(f.Payload) != 0 {
		t.Fatalf("%v %v", f, err)
	}
}

func TestParseAddressed(t *testing.T) {
	id, data, err := ParseAddressed(mustAddressed("bob", []byte("x")))
	if err != nil || string(id) != "bob" || string(data) != "x" {
		t.Fatalf("%q %q %v", id, data, err)
	}
	id, data, err = ParseAddressed(mustAddressed("bob", nil))
	if err != nil || string(id) != "bob" || len(data) != 0 {
		t.Fatalf("empty data: %v", err)
	}
	for name, p := range map[string][]byte{
		"empty":                      nil,
		"one byte":                   {0},
		"zero-length id":             {0, 0, 'x'},
		"id length longer than rest": {0, 5, 'b', 'o', 'b'},
		"invalid UTF-8":              {0, 2, 0xff, 0xfe},
		"id over 255 bytes":          append([]byte{1, 0}, strings.Repeat("a", 256)...),
	} {
		if _, _, err := ParseAddressed(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"a", strings.Repeat("z", 255), "клиент", "default_client_id"} {
		if err := CheckID([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("z", 256), "\xff"} {
		if err := CheckID([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestQuoteMessage(t *testing.T) {
	var b bytes.Buffer
	if err := WriteQuote(&b, []byte("quote")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), []byte{0, 0, 0, 5, 'q', 'u', 'o', 't', 'e'}) {
		t.Fatalf("%x", b.Bytes())
	}
	q, err := ReadQuote(bytes.NewReader(b.Bytes()))
	if err != nil || string(q) != "quote" {
		t.Fatal(err)
	}
	for n := 0; n < b.Len(); n++ {
		if _, err := ReadQuote(bytes.NewReader(b.Bytes()[:n])); err == nil {
			t.Fatalf("prefix %d accepted", n)
		}
	}
	if _, err := ReadQuote(bytes.NewReader([]byte{0, 0, 0, 0})); !errors.Is(err, ErrMalformed) {
		t.Errorf("length 0: %v", err)
	}
	if _, err := ReadQuote(bytes.NewReader([]byte{0, 1, 0, 1})); !errors.Is(err, ErrTooLarge) {
		t.Errorf("length over the cap: %v", err)
	}
	if err := WriteQuote(io.Discard, nil); err == nil {
		t.Error("empty quote written")
	}
}

func TestTypes(t *testing.T) {
	for _, ty := range []Type{RegisterClient, SendData, PollData} {
		if !ty.FromClient() || !ty.Known() {
			t.Errorf("%v", ty)
		}
	}
	for _, ty := range []Type{0x00, 0x04, 0x81, 0xFF} {
		if ty.FromClient() {
			t.Errorf("%v is not a client type", ty)
		}
	}
	if Type(0x04).String() != "UNKNOWN(0x04)" || SendNack.String() != "SEND_NACK" {
		t.Error("names")
	}
}

func TestLargeFrameBufferNotRetained(t *testing.T) {
	var b bytes.Buffer
	WriteFrame(&b, SendData, make([]byte, retainMax+1))
	WriteFrame(&b, PollData, nil)
	r := NewReader(&b, 0)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if cap(r.buf) > retainMax {
		t.Fatalf("a %d-byte buffer is kept after a large frame", cap(r.buf))
	}
	if f, err := r.ReadFrame(); err != nil || f.Type != PollData {
		t.Fatal(err)
	}
}
