package jetstream

import (
	"bytes"
	"testing"
)

func TestRecordRoundTripAndPrefixes(t *testing.T) {
	b := encodeRecord("kms/token", bytes.Repeat([]byte{7}, 32), []byte(`{"a":1}`))
	kind, key, value, err := decodeRecord(b)
	if err != nil || kind != "kms/token" || !bytes.Equal(key, bytes.Repeat([]byte{7}, 32)) || string(value) != `{"a":1}` {
		t.Fatalf("round trip: %q %x %q %v", kind, key, value, err)
	}
	// Every prefix that cuts the kind or the key fails.
	for n := 0; n < 2+9+2+32; n++ {
		if _, _, _, err := decodeRecord(b[:n]); err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord("kms/key", []byte("0123456789abcdef"), []byte("{}")))
	f.Add([]byte{0, 1, 'k', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, key, value, err := decodeRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeRecord(kind, key, value), b) {
			t.Fatal("decode then encode differs")
		}
	})
}
