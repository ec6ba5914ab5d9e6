package ego

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/seal"
)

func TestQuoteStripsHeader(t *testing.T) {
	q, err := os.ReadFile("../../testdata/dcap-real-quote-a/quote.bin")
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	a := New(func(rd []byte) ([]byte, error) { got = rd; return sgxquote.AddEGoHeader(q), nil }, nil)
	out, err := a.Quote(context.Background(), [64]byte{1, 2, 3})
	if err != nil || !bytes.Equal(out, q) {
		t.Fatalf("quote: %v", err)
	}
	if len(got) != 64 || got[0] != 1 {
		t.Fatal("report data not passed through")
	}
	bad := New(func([]byte) ([]byte, error) { return q, nil }, nil) // no header
	if _, err := bad.Quote(context.Background(), [64]byte{}); err == nil {
		t.Fatal("report without EGo's header accepted")
	}
	failing := New(func([]byte) ([]byte, error) { return nil, errors.New("no enclave") }, nil)
	if _, err := failing.Quote(context.Background(), [64]byte{}); err == nil {
		t.Fatal("error swallowed")
	}
}

func TestSealKeyAllZeroRefused(t *testing.T) {
	zero := New(nil, func() ([]byte, error) { return make([]byte, 16), nil })
	if _, err := zero.SealRoot(); !errors.Is(err, seal.ErrBadKey) {
		t.Fatalf("all-zero seal key (EGo outside an enclave): %v", err)
	}
	good := New(nil, func() ([]byte, error) { return bytes.Repeat([]byte{7}, 16), nil })
	if _, err := good.SealRoot(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(nil, nil).SealRoot(); err == nil {
		t.Fatal("missing seal key function accepted")
	}
}
