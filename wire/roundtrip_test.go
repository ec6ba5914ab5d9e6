package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
)

// mustAddressed is AppendAddressed for ids a test knows are valid.
func mustAddressed(id string, data []byte) []byte {
	p, err := AppendAddressed(nil, id, data)
	if err != nil {
		panic(err)
	}
	return p
}

// TestEncodersRefuseOverlongID is issue 12 item 5 as seen: the recipient
// "bob" followed by 65,536 bytes was encoded with its length cast to u16,
// so the relay read the recipient "bob" and the rest as data.
func TestEncodersRefuseOverlongID(t *testing.T) {
	id := "bob" + strings.Repeat("x", 65536)
	p, err := AppendAddressed([]byte("keep"), id, []byte("hi"))
	var pe *PayloadError
	if !errors.As(err, &pe) || pe.Problem != IDTooLong || !errors.Is(err, ErrMalformed) {
		t.Fatalf("AppendAddressed with a %d-byte id: %v, want a *PayloadError IDTooLong", len(id), err)
	}
	if string(p) != "keep" {
		t.Fatalf("a refused AppendAddressed changed dst to %q…", p[:min(len(p), 16)])
	}
	for _, bad := range []string{"", strings.Repeat("a", MaxIDLen+1), "\xff"} {
		if _, err := AppendAddressed(nil, bad, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("AppendAddressed(%.8q…): %v", bad, err)
		}
		if _, err := AppendRegister(nil, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("AppendRegister(%.8q…): %v", bad, err)
		}
	}
	if err := CheckFrameLen(MaxFrameLen + 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckFrameLen(MaxFrameLen+1): %v", err)
	}
	if err := CheckFrameLen(-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckFrameLen(-1): %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("AppendFrameHeader wrote a length over MaxFrameLen")
			}
		}()
		AppendFrameHeader(nil, SendData, MaxFrameLen+1)
	}()
}

// input is one random encoder input, biased towards the edges the
// decoders check: id lengths 0, 1, 255, 256, 65535, 65536 and more,
// invalid UTF-8, empty and non-empty data.
type input struct {
	Type  Type
	ID    string
	Data  []byte
	Quote []byte
}

func (input) Generate(r *rand.Rand, size int) reflect.Value {
	idLens := []int{0, 1, 2, MaxIDLen - 1, MaxIDLen, MaxIDLen + 1, 0xFFFF, 0x10000, 0x10003, r.IntN(300)}
	n := idLens[r.IntN(len(idLens))]
	// Two-byte runes cut to n bytes: an odd n ends mid-rune, which is
	// invalid UTF-8.
	id := []byte(strings.Repeat("é", n/2+1))[:n]
	switch r.IntN(4) {
	case 0:
		id = []byte(strings.Repeat("a", len(id)))
	case 1:
		if len(id) > 0 {
			id[r.IntN(len(id))] = 0xFF
		}
	}
	data := make([]byte, r.IntN(size+1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	quoteLens := []int{0, 1, MaxQuote, MaxQuote + 1, r.IntN(2000)}
	return reflect.ValueOf(input{
		Type: Type(r.Uint32()), ID: string(id), Data: data,
		Quote: make([]byte, quoteLens[r.IntN(len(quoteLens))]),
	})
}

var quickConfig = &quick.Config{MaxCount: 2000}

// roundTrip encodes in as every frame type and decodes it again. It
// returns "" when, for each encoder, either the decoder gives back exactly
// the input or the encoder refused it — and refused exactly what the
// decoder refuses.
func roundTrip(in input) string {
	// Any type, raw payload: the frame layer carries it unchanged.
	frame := AppendFrame(nil, in.Type, in.Data)
	f, err := NewReader(bytes.NewReader(frame), len(in.Data)+1).ReadFrame()
	if err != nil || f.Type != in.Type || !bytes.Equal(f.Payload, in.Data) {
		return "frame does not round trip"
	}
	decoderRefuses := CheckID([]byte(in.ID)) != nil

	// REGISTER_CLIENT: the payload is the id.
	p, err := AppendRegister(nil, in.ID)
	if (err != nil) != decoderRefuses {
		return "AppendRegister refuses differently from CheckID"
	}
	if err == nil {
		f, rerr := NewReader(bytes.NewReader(AppendFrame(nil, RegisterClient, p)), 0).ReadFrame()
		if rerr != nil || f.Type != RegisterClient || string(f.Payload) != in.ID || CheckID(f.Payload) != nil {
			return "REGISTER_CLIENT does not round trip"
		}
	}

	// SEND_DATA and DATA_AVAILABLE: u16 id length ‖ id ‖ data.
	for _, ty := range []Type{SendData, DataAvailable} {
		p, err := AppendAddressed(nil, in.ID, in.Data)
		if (err != nil) != decoderRefuses {
			return "AppendAddressed refuses differently from ParseAddressed"
		}
		if err != nil {
			continue
		}
		f, rerr := NewReader(bytes.NewReader(AppendFrame(nil, ty, p)), len(p)+1).ReadFrame()
		if rerr != nil || f.Type != ty {
			return ty.String() + " frame does not round trip"
		}
		id, data, perr := ParseAddressed(f.Payload)
		if perr != nil || string(id) != in.ID || !bytes.Equal(data, in.Data) {
			return ty.String() + " payload does not round trip"
		}
	}

	// Empty-payload types and the reasons of NACK and ERROR.
	for _, ty := range []Type{PollData, RegisterAck, SendAck, NoDataAvailable, RegisterNack, SendNack, PollNack, Error} {
		var b bytes.Buffer
		if err := WriteFrame(&b, ty, in.Data); err != nil {
			return ty.String() + ": " + err.Error()
		}
		f, err := NewReader(&b, len(in.Data)+1).ReadFrame()
		if err != nil || f.Type != ty || !bytes.Equal(f.Payload, in.Data) {
			return ty.String() + " does not round trip"
		}
	}

	// The attestation message.
	var b bytes.Buffer
	werr := WriteQuote(&b, in.Quote)
	if werr == nil {
		q, rerr := ReadQuote(&b)
		if rerr != nil || !bytes.Equal(q, in.Quote) {
			return "quote does not round trip"
		}
	} else if len(in.Quote) >= 1 && len(in.Quote) <= MaxQuote {
		return "WriteQuote refused a quote ReadQuote accepts"
	}
	return ""
}

// TestRoundTripEveryFrameType: encode then decode gives back exactly the
// input, or the encoder returns an error (and then the decoder would have
// refused it too).
func TestRoundTripEveryFrameType(t *testing.T) {
	if err := quick.Check(func(in input) bool {
		if msg := roundTrip(in); msg != "" {
			t.Logf("type 0x%02X, id of %d bytes (%.12q…), %d data bytes: %s", uint8(in.Type), len(in.ID), in.ID, len(in.Data), msg)
			return false
		}
		return true
	}, quickConfig); err != nil {
		t.Fatal(err)
	}
}

// FuzzEncodeDecode is the same property for inputs the fuzzer picks.
func FuzzEncodeDecode(f *testing.F) {
	f.Add(byte(SendData), []byte("bob"), []byte("hi"), 5)
	f.Add(byte(RegisterClient), []byte(strings.Repeat("b", 256)), []byte{}, 0)
	f.Add(byte(DataAvailable), append([]byte("bob"), make([]byte, 0x10000)...), []byte("hi"), 1)
	f.Add(byte(0xFF), []byte("\xff"), []byte("reason"), MaxQuote+1)
	f.Fuzz(func(t *testing.T, ty byte, id, data []byte, quoteLen int) {
		if quoteLen < 0 || quoteLen > MaxQuote+1 {
			quoteLen = 0
		}
		if msg := roundTrip(input{Type: Type(ty), ID: string(id), Data: data, Quote: make([]byte, quoteLen)}); msg != "" {
			t.Fatal(msg)
		}
	})
}
