package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestExtensionExamples: the hex examples of docs/PROTOCOL.md section 8,
// byte for byte.
func TestExtensionExamples(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"HELLO", AppendFrame(nil, Hello, AppendHello(nil, HelloInfo{Version: 1, Features: FeatureDelivery | FeatureMsgID})),
			"10 00000009 53455854 01 00000003"},
		{"HELLO_ACK", AppendFrame(nil, HelloAck, AppendHelloAck(nil, HelloAckInfo{Version: 1, Features: 3, MaxBatch: 256, MaxWaitMS: 30000, MaxCredit: 1024, AckWaitMS: 30000, IdleMS: 300000, DedupS: 120})),
			"90 0000001f 53455854 01 00000003 0100 00007530 00000400 00007530 000493e0 00000078"},
		{"FETCH", AppendFrame(nil, Fetch, must(AppendFetch(nil, FetchReq{Max: 10, WaitMS: 5000}))),
			"11 00000006 000a 00001388"},
		{"FETCH_END", AppendFrame(nil, FetchEnd, AppendFetchEnd(nil, 2)), "91 00000002 0002"},
		{"SUBSCRIBE", AppendFrame(nil, Subscribe, AppendU32(nil, 64)), "12 00000004 00000040"},
		{"CREDIT", AppendFrame(nil, Credit, must(AppendCredit(nil, 32))), "13 00000004 00000020"},
		{"ACK individual", AppendFrame(nil, Ack, must(AppendAck(nil, AckReq{IDs: []uint64{7, 9}}))),
			"14 00000013 00 0002 0000000000000007 0000000000000009"},
		{"ACK cumulative", AppendFrame(nil, Ack, must(AppendAck(nil, AckReq{Cumulative: true, IDs: []uint64{9}}))),
			"14 00000009 01 0000000000000009"},
		{"ACKED", AppendFrame(nil, Acked, AppendAcked(nil, 2, 0)), "94 00000008 00000002 00000000"},
		{"SEND_ID", AppendFrame(nil, SendID, must(AppendSendID(nil, []byte("m1"), "bob", []byte("hi")))),
			"15 0000000a 02 6d31 0003 626f62 6869"},
		{"DELIVER", AppendFrame(nil, Deliver, append(must(AppendDeliveryHeader(nil, 7, FlagRedelivered, []byte("m1"), "alice")), "hi"...)),
			"98 00000015 0000000000000007 01 02 6d31 0005 616c696365 6869"},
	} {
		if want := unhex(c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s: got % x, want % x", c.name, c.got, want)
		}
	}
}

// extCase is one payload and its decoder.
type extCase struct {
	name   string
	p      []byte
	decode func([]byte) (any, error)
}

func extCases() []extCase {
	dec := func(f func([]byte) (any, error)) func([]byte) (any, error) { return f }
	return []extCase{
		{"HELLO", AppendHello(nil, HelloInfo{1, 3}), dec(func(p []byte) (any, error) { return ParseHello(p) })},
		{"HELLO_ACK", AppendHelloAck(nil, HelloAckInfo{1, 3, 256, 1, 2, 3, 4, 5}), dec(func(p []byte) (any, error) { return ParseHelloAck(p) })},
		{"FETCH", must(AppendFetch(nil, FetchReq{1, 0})), dec(func(p []byte) (any, error) { return ParseFetch(p) })},
		{"CREDIT", must(AppendCredit(nil, 1)), dec(func(p []byte) (any, error) { return ParseCredit(p) })},
		{"SUBSCRIBE", AppendU32(nil, 0), dec(func(p []byte) (any, error) { return ParseU32(p) })},
		{"ACK individual", must(AppendAck(nil, AckReq{IDs: []uint64{1, 2, 3}})), dec(func(p []byte) (any, error) { return ParseAck(p) })},
		{"ACK cumulative", must(AppendAck(nil, AckReq{Cumulative: true, IDs: []uint64{1 << 60}})), dec(func(p []byte) (any, error) { return ParseAck(p) })},
		{"ACKED", AppendAcked(nil, 1, 2), dec(func(p []byte) (any, error) { a, n, err := ParseAcked(p); return [2]uint32{a, n}, err })},
		{"FETCH_END", AppendFetchEnd(nil, 3), dec(func(p []byte) (any, error) { return ParseFetchEnd(p) })},
		{"SEND_ID", must(AppendSendID(nil, []byte("id"), "bob", nil)), dec(func(p []byte) (any, error) {
			m, r, d, err := ParseSendID(p)
			return [3]string{string(m), string(r), string(d)}, err
		})},
		{"DELIVER", must(AppendDeliveryHeader(nil, 1, 0, nil, "a")), dec(func(p []byte) (any, error) { return ParseDelivery(p) })},
	}
}

// TestExtensionStrictPrefixes: every strict prefix of a valid extension
// payload fails to decode, and so does the payload with a byte appended
// (no trailing bytes), except where the format ends in free data.
func TestExtensionStrictPrefixes(t *testing.T) {
	for _, c := range extCases() {
		if _, err := c.decode(c.p); err != nil {
			t.Fatalf("%s: valid payload refused: %v", c.name, err)
		}
		for i := 0; i < len(c.p); i++ {
			if _, err := c.decode(c.p[:i]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: prefix of %d/%d bytes: %v, want ErrMalformed", c.name, i, len(c.p), err)
			}
		}
		if c.name == "SEND_ID" || c.name == "DELIVER" {
			continue // data runs to the end of the payload
		}
		if _, err := c.decode(append(bytes.Clone(c.p), 0)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: a trailing byte accepted", c.name)
		}
	}
}

// TestExtensionEncodersRefuseWhatDecodersRefuse.
func TestExtensionEncodersRefuseWhatDecodersRefuse(t *testing.T) {
	type enc struct {
		name string
		err  error
		want Problem
	}
	long := bytes.Repeat([]byte("m"), MaxMsgIDLen+1)
	_, e1 := AppendFetch(nil, FetchReq{Max: 0})
	_, e2 := AppendCredit(nil, 0)
	_, e3 := AppendAck(nil, AckReq{})
	_, e4 := AppendAck(nil, AckReq{IDs: make([]uint64, MaxAckIDs+1)})
	_, e5 := AppendSendID(nil, nil, "bob", nil)
	_, e6 := AppendSendID(nil, long, "bob", nil)
	_, e7 := AppendSendID(nil, []byte("m"), "", nil)
	_, e8 := AppendDeliveryHeader(nil, 1, 0x80, nil, "a")
	_, e9 := AppendDeliveryHeader(nil, 1, 0, long, "a")
	_, e10 := AppendDeliveryHeader(nil, 1, 0, nil, strings.Repeat("a", 256))
	for _, c := range []enc{
		{"FETCH max 0", e1, ZeroCount}, {"CREDIT 0", e2, ZeroCount}, {"ACK no ids", e3, ZeroCount},
		{"ACK too many", e4, TooManyIDs}, {"SEND_ID empty msgid", e5, EmptyMsgID}, {"SEND_ID long msgid", e6, MsgIDTooLong},
		{"SEND_ID empty recipient", e7, EmptyID}, {"DELIVER flags", e8, UnknownFlags}, {"DELIVER long msgid", e9, MsgIDTooLong},
		{"DELIVER long sender", e10, IDTooLong},
	} {
		var pe *PayloadError
		if !errors.As(c.err, &pe) || pe.Problem != c.want {
			t.Errorf("%s: %v, want problem %d", c.name, c.err, c.want)
		}
	}
	// And the decoders refuse the same things when they arrive.
	for _, c := range []struct {
		name string
		p    []byte
		dec  func([]byte) error
		want Problem
	}{
		{"FETCH max 0", unhex("0000 00000001"), func(p []byte) error { _, err := ParseFetch(p); return err }, ZeroCount},
		{"CREDIT 0", unhex("00000000"), func(p []byte) error { _, err := ParseCredit(p); return err }, ZeroCount},
		{"ACK 0 ids", unhex("00 0000"), func(p []byte) error { _, err := ParseAck(p); return err }, ZeroCount},
		{"ACK 1025 ids", unhex("00 0401"), func(p []byte) error { _, err := ParseAck(p); return err }, TooManyIDs},
		{"ACK kind 2", unhex("02 0000000000000001"), func(p []byte) error { _, err := ParseAck(p); return err }, BadAckKind},
		{"HELLO no magic", unhex("53455859 01 00000001"), func(p []byte) error { _, err := ParseHello(p); return err }, BadMagic},
		{"SEND_ID msgid 0", unhex("00 0001 61"), func(p []byte) error { _, _, _, err := ParseSendID(p); return err }, EmptyMsgID},
		{"SEND_ID msgid 65", append([]byte{65}, make([]byte, 70)...), func(p []byte) error { _, _, _, err := ParseSendID(p); return err }, MsgIDTooLong},
		{"DELIVER flags 2", unhex("0000000000000001 02 00 0001 61"), func(p []byte) error { _, err := ParseDelivery(p); return err }, UnknownFlags},
	} {
		var pe *PayloadError
		if err := c.dec(c.p); !errors.As(err, &pe) || pe.Problem != c.want {
			t.Errorf("%s: %v, want problem %d", c.name, err, c.want)
		}
	}
	if Hello.Known() || Hello.FromClient() || !Hello.ExtFromClient() || Deliver.ExtFromClient() || !Deliver.Extension() {
		t.Error("extension types must not count as seed types")
	}
}

// extRoundTrip decodes p with every extension decoder; whatever decodes
// must re-encode to exactly p.
func extRoundTrip(t *testing.T, p []byte) {
	if h, err := ParseHello(p); err == nil && !bytes.Equal(AppendHello(nil, h), p) {
		t.Fatalf("HELLO % x does not round trip", p)
	}
	if h, err := ParseHelloAck(p); err == nil && !bytes.Equal(AppendHelloAck(nil, h), p) {
		t.Fatalf("HELLO_ACK % x does not round trip", p)
	}
	if f, err := ParseFetch(p); err == nil && !bytes.Equal(must(AppendFetch(nil, f)), p) {
		t.Fatalf("FETCH % x does not round trip", p)
	}
	if n, err := ParseCredit(p); err == nil && !bytes.Equal(must(AppendCredit(nil, n)), p) {
		t.Fatalf("CREDIT % x does not round trip", p)
	}
	if a, err := ParseAck(p); err == nil {
		q, err := AppendAck(nil, a)
		if err != nil || !bytes.Equal(q, p) {
			t.Fatalf("ACK % x does not round trip: %v", p, err)
		}
		if a2, _ := ParseAck(q); !reflect.DeepEqual(a, a2) {
			t.Fatal("ACK decodes differently")
		}
	}
	if a, n, err := ParseAcked(p); err == nil && !bytes.Equal(AppendAcked(nil, a, n), p) {
		t.Fatalf("ACKED % x does not round trip", p)
	}
	if n, err := ParseFetchEnd(p); err == nil && !bytes.Equal(AppendFetchEnd(nil, n), p) {
		t.Fatalf("FETCH_END % x does not round trip", p)
	}
	if m, r, d, err := ParseSendID(p); err == nil {
		q, err := AppendSendID(nil, m, string(r), d)
		if err != nil || !bytes.Equal(q, p) {
			t.Fatalf("SEND_ID % x does not round trip: %v", p, err)
		}
	}
	if d, err := ParseDelivery(p); err == nil {
		q, err := AppendDeliveryHeader(nil, d.ID, d.Flags, d.MsgID, string(d.From))
		if err != nil || !bytes.Equal(append(q, d.Data...), p) || len(q) != DeliveryHeaderLen(d.MsgID, string(d.From)) {
			t.Fatalf("DELIVER % x does not round trip: %v", p, err)
		}
	}
}

func TestExtensionRoundTrip(t *testing.T) {
	for _, c := range extCases() {
		extRoundTrip(t, c.p)
	}
}

// FuzzExtensionDecoders: no extension decoder panics, and whatever one
// accepts re-encodes to exactly its input.
func FuzzExtensionDecoders(f *testing.F) {
	for _, c := range extCases() {
		f.Add(c.p)
	}
	f.Add(unhex("00 0401"))
	f.Fuzz(func(t *testing.T, p []byte) { extRoundTrip(t, p) })
}
