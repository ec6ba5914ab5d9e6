package sgxquote

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

func realQuote(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/dcap-real-quote-a/quote.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRealQuote(t *testing.T) {
	b := realQuote(t)
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Header.Version != 3 || q.Header.AttestationKeyType != 2 || q.CertDataType != 5 {
		t.Errorf("header %+v cert type %d", q.Header, q.CertDataType)
	}
	if got := q.Body.MREnclave[:4]; !bytes.Equal(got, []byte{0x68, 0x82, 0x3b, 0xc6}) {
		t.Errorf("MRENCLAVE starts %x", got)
	}
	if len(q.QEAuthData) != 32 {
		t.Errorf("QE auth data %d bytes, want 32", len(q.QEAuthData))
	}
	if q.Body.Debug() {
		t.Error("real quote reported as debug")
	}
	out, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		t.Fatal("Marshal(Parse(b)) != b")
	}
	if !bytes.Equal(q.SignedBytes(), b[:SignedSize]) {
		t.Fatal("SignedBytes differs from bytes 0..432")
	}
}

func TestEveryPrefixFails(t *testing.T) {
	b := realQuote(t)
	for n := 0; n < len(b); n++ {
		if _, err := Parse(b[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d bytes: err %v", n, err)
		}
	}
}

func TestTrailingBytesFail(t *testing.T) {
	b := append(realQuote(t), 0)
	if _, err := Parse(b); !errors.Is(err, ErrFormat) {
		t.Fatalf("trailing byte accepted: %v", err)
	}
}

func TestHeaderFieldsChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  int
		val  byte
	}{
		{"version 2", 0, 2},
		{"version 4", 0, 4},
		{"key type 3", 2, 3},
		{"TEE type TDX", 4, 0x81},
		{"signature length", 432, 0xff},
		{"auth data length", 1012, 0xff},
	} {
		b := realQuote(t)
		b[tc.off] = tc.val
		if _, err := Parse(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: accepted (%v)", tc.name, err)
		}
	}
}

func TestOversizeRefused(t *testing.T) {
	if _, err := Parse(make([]byte, MaxSize+1)); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
}

func TestEGoHeader(t *testing.T) {
	b := realQuote(t)
	r := AddEGoHeader(b)
	got, err := StripEGoHeader(r)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("round trip: %v", err)
	}
	for n := 0; n < 16; n++ {
		if _, err := StripEGoHeader(r[:n]); err == nil {
			t.Fatalf("header prefix of %d accepted", n)
		}
	}
	bad := bytes.Clone(r)
	bad[0] = 2
	if _, err := StripEGoHeader(bad); err == nil {
		t.Error("version 2 header accepted")
	}
	if _, err := StripEGoHeader(r[:len(r)-1]); err == nil {
		t.Error("length mismatch accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(realQuote(f))
	f.Add(make([]byte, MinSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Parse(b)
		if err != nil {
			return
		}
		out, err := q.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed quote: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("Marshal(Parse(b)) != b")
		}
	})
}
