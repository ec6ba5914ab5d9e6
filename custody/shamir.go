package custody

import (
	"errors"
	"fmt"
	"io"
)

// Shamir's secret sharing over GF(2^8) with the AES polynomial
// x^8 + x^4 + x^3 + x + 1, one byte of the secret at a time. Arithmetic is
// written without tables or secret-dependent branches, so that splitting
// and combining take the same time whatever the secret.

// gfMul multiplies in GF(2^8) in constant time.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		hi := -(a >> 7)
		a = a<<1 ^ hi&0x1b
		b >>= 1
	}
	return p
}

// gfInv returns a^254 = a^-1 (and 0 for 0), in constant time.
func gfInv(a byte) byte {
	// 254 = 0b11111110: square-and-multiply with a fixed sequence.
	r := a
	for range 6 {
		r = gfMul(r, r)
		r = gfMul(r, a)
	}
	return gfMul(r, r)
}

// split returns n shares of secret, any k of which give it back. Share i
// (1-based) is x = i followed by the polynomials' values at x.
func split(secret []byte, n, k int, rand io.Reader) ([][]byte, error) {
	if k < 2 || n < k || n > 255 {
		return nil, fmt.Errorf("custody: %d-of-%d: want 2 ≤ k ≤ n ≤ 255", k, n)
	}
	if len(secret) == 0 {
		return nil, errors.New("custody: empty secret")
	}
	coef := make([]byte, (k-1)*len(secret))
	if _, err := io.ReadFull(rand, coef); err != nil {
		return nil, err
	}
	defer clear(coef)
	shares := make([][]byte, n)
	for i := range shares {
		x := byte(i + 1)
		s := make([]byte, 1+len(secret))
		s[0] = x
		for b, c0 := range secret {
			// Horner: ((a_{k-1} x + a_{k-2}) x + …) x + c0
			var y byte
			for d := k - 2; d >= 0; d-- {
				y = gfMul(y, x) ^ coef[d*len(secret)+b]
			}
			s[1+b] = gfMul(y, x) ^ c0
		}
		shares[i] = s
	}
	return shares, nil
}

// combine interpolates the shares at 0. It checks their form (equal
// lengths, distinct non-zero x); whether they are the right shares is
// for the caller to check (custody does it with an AEAD).
func combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("custody: %d share(s), need at least 2", len(shares))
	}
	n := len(shares[0])
	seen := map[byte]bool{}
	for _, s := range shares {
		if len(s) != n || n < 2 {
			return nil, errors.New("custody: shares of different lengths")
		}
		if s[0] == 0 || seen[s[0]] {
			return nil, fmt.Errorf("custody: share x=%d is zero or given twice", s[0])
		}
		seen[s[0]] = true
	}
	secret := make([]byte, n-1)
	for i, si := range shares {
		// Lagrange basis at 0: prod_{j≠i} x_j / (x_j - x_i); minus is xor.
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if j != i {
				num = gfMul(num, sj[0])
				den = gfMul(den, sj[0]^si[0])
			}
		}
		l := gfMul(num, gfInv(den))
		for b := range secret {
			secret[b] ^= gfMul(si[1+b], l)
		}
	}
	return secret, nil
}
