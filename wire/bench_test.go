package wire

import (
	"bytes"
	"io"
	"testing"
)

// repeatReader serves the same bytes forever.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], r.b[r.off:])
		n += m
		r.off = (r.off + m) % len(r.b)
	}
	return n, nil
}

func benchRead(b *testing.B, size int) {
	frame := AppendFrame(nil, SendData, mustAddressed("recipient", make([]byte, size)))
	r := NewReader(&repeatReader{b: bytes.Repeat(frame, 64)}, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ParseAddressed(f.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame64(b *testing.B)   { benchRead(b, 64) }
func BenchmarkReadFrame1024(b *testing.B) { benchRead(b, 1024) }

func BenchmarkAppendFrame64(b *testing.B) {
	payload := mustAddressed("recipient", make([]byte, 64))
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(HeaderSize + len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrame(buf[:0], SendData, payload)
	}
	io.Discard.Write(buf)
}
