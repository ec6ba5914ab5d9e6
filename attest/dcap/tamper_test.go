package dcap_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest"
)

// TestRealQuoteEveryByteTampered flips each byte of every signed region of
// the real quote — header, report body, signatures, attestation key, QE
// report, QE auth data, and the length fields between them — and expects
// verification to fail each time.
func TestRealQuoteEveryByteTampered(t *testing.T) {
	q := realQuote(t)
	v := realVerifier(t, realTime, nil)
	authLen := int(binary.LittleEndian.Uint16(q[1012:]))
	end := 1014 + authLen + 6 // through the certification data header
	if testing.Short() {
		end = 600
	}
	for i := 0; i < end; i++ {
		b := append([]byte(nil), q...)
		b[i] ^= 0x01
		if _, err := v.Verify(context.Background(), b); err == nil {
			t.Errorf("byte %d flipped: quote still verifies", i)
		} else if !errors.Is(err, attest.ErrNotGenuine) {
			t.Errorf("byte %d: error %v does not wrap ErrNotGenuine", i, err)
		}
	}
}

func TestRealQuoteTruncatedAndExtended(t *testing.T) {
	q := realQuote(t)
	v := realVerifier(t, realTime, nil)
	for _, b := range [][]byte{q[:len(q)-1], q[:436], append(append([]byte(nil), q...), 0)} {
		if _, err := v.Verify(context.Background(), b); !errors.Is(err, attest.ErrNotGenuine) {
			t.Errorf("%d bytes: %v", len(b), err)
		}
	}
}
