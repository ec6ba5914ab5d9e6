package custody

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestGF256(t *testing.T) {
	// Known products under the AES polynomial (FIPS-197 §4.2).
	if gfMul(0x57, 0x83) != 0xc1 || gfMul(0x57, 0x13) != 0xfe {
		t.Fatalf("gfMul: %#x %#x", gfMul(0x57, 0x83), gfMul(0x57, 0x13))
	}
	for a := 1; a < 256; a++ {
		if gfMul(byte(a), gfInv(byte(a))) != 1 {
			t.Fatalf("%#x * inv = %#x", a, gfMul(byte(a), gfInv(byte(a))))
		}
	}
	if gfInv(0) != 0 {
		t.Fatal("inv(0)")
	}
}

func TestSplitCombineEverySubset(t *testing.T) {
	secret := []byte("thirty-two bytes of data key....")
	for _, kn := range [][2]int{{2, 2}, {2, 3}, {3, 5}, {5, 5}} {
		k, n := kn[0], kn[1]
		shares, err := split(secret, n, k, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for mask := 1; mask < 1<<n; mask++ {
			var sub [][]byte
			for i := range n {
				if mask&(1<<i) != 0 {
					sub = append(sub, shares[i])
				}
			}
			got, err := combine(sub)
			switch {
			case len(sub) < 2:
				if err == nil {
					t.Errorf("%d-of-%d: one share combined", k, n)
				}
			case len(sub) >= k:
				if err != nil || !bytes.Equal(got, secret) {
					t.Errorf("%d-of-%d, %d shares: %v %q", k, n, len(sub), err, got)
				}
			default:
				if bytes.Equal(got, secret) {
					t.Errorf("%d-of-%d: %d shares gave the secret", k, n, len(sub))
				}
			}
		}
	}
}

func TestSplitRefuses(t *testing.T) {
	for _, kn := range [][2]int{{1, 3}, {4, 3}, {2, 256}, {0, 0}} {
		if _, err := split([]byte{1}, kn[1], kn[0], rand.Reader); err == nil {
			t.Errorf("%d-of-%d accepted", kn[0], kn[1])
		}
	}
	sh, _ := split([]byte{1, 2}, 3, 2, rand.Reader)
	if _, err := combine([][]byte{sh[0], sh[0]}); err == nil {
		t.Error("the same share twice combined")
	}
	if _, err := combine([][]byte{sh[0], {0, 1, 2}}); err == nil {
		t.Error("x = 0 combined")
	}
	if _, err := combine([][]byte{sh[0], sh[1][:2]}); err == nil {
		t.Error("shares of different lengths combined")
	}
}
