package wire

import (
	"bytes"
	"io"
	"testing"
)

func seedFrames(f *testing.F) {
	f.Add(AppendFrame(nil, RegisterClient, []byte("alice")))
	f.Add(AppendFrame(AppendFrame(nil, SendData, mustAddressed("bob", []byte("hi"))), PollData, nil))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0x02, 0, 0, 0, 2, 0, 9})
}

// decodeAll reads every frame and re-encodes it; it returns the re-encoding
// of the well-formed prefix and the error that stopped it.
func decodeAll(r io.Reader) ([]byte, error) {
	fr := NewReader(r, 1<<16)
	var out []byte
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return out, err
		}
		if f.Type == SendData || f.Type == DataAvailable {
			if id, data, err := ParseAddressed(f.Payload); err == nil {
				if !bytes.Equal(mustAddressed(string(id), data), f.Payload) {
					panic("addressed payload does not round trip")
				}
			}
		}
		out = AppendFrame(out, f.Type, f.Payload)
	}
}

// FuzzReadFrame: whatever the input, decoding never panics, and the
// frames it yields re-encode to exactly the bytes they came from.
func FuzzReadFrame(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _ := decodeAll(bytes.NewReader(b))
		if !bytes.HasPrefix(b, out) {
			t.Fatal("re-encoded frames differ from the input")
		}
	})
}

// FuzzReadFrameSplit feeds each input in two halves, as two TCP segments
// would arrive; the result must not depend on where the split falls.
func FuzzReadFrameSplit(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		whole, errWhole := decodeAll(bytes.NewReader(b))
		for _, cut := range []int{len(b) / 2, len(b) / 3, 1} {
			if cut > len(b) {
				continue
			}
			split, errSplit := decodeAll(io.MultiReader(bytes.NewReader(b[:cut]), bytes.NewReader(b[cut:])))
			if !bytes.Equal(whole, split) || (errWhole == nil) != (errSplit == nil) {
				t.Fatalf("split at %d: %x/%v vs %x/%v", cut, split, errSplit, whole, errWhole)
			}
		}
	})
}
