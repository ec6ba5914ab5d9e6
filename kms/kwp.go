package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// AES key wrap with padding (RFC 5649), the inner layer of Vault's BYOK
// import format. Only unwrap is needed by the service; wrap serves the
// tests and the client side.

var errKWP = errors.New("kms: key unwrap failed")

// kwpWrap wraps p (1 to 2^32-1 bytes) under kek.
func kwpWrap(kek, p []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 || uint64(len(p)) > 0xffffffff {
		return nil, errors.New("kms: key wrap: bad length")
	}
	padded := make([]byte, (len(p)+7)/8*8)
	copy(padded, p)
	var aiv [8]byte
	binary.BigEndian.PutUint32(aiv[:4], 0xA65959A6)
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(p)))
	if len(padded) == 8 {
		out := make([]byte, 16)
		copy(out, aiv[:])
		copy(out[8:], padded)
		b.Encrypt(out, out)
		return out, nil
	}
	return wrap3394(b, aiv, padded), nil
}

// wrap3394 is RFC 3394's wrapping process W with initial value a.
func wrap3394(b cipher.Block, a [8]byte, p []byte) []byte {
	n := len(p) / 8
	r := make([]byte, len(p))
	copy(r, p)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], r[i*8:i*8+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(r[i*8:], buf[8:])
		}
	}
	return append(a[:], r...)
}

// kwpUnwrap reverses kwpWrap, checking the integrity value, the length
// and the zero padding; any failure is the same error.
func kwpUnwrap(kek, c []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(c) < 16 || len(c)%8 != 0 {
		return nil, errKWP
	}
	var a [8]byte
	var p []byte
	if len(c) == 16 {
		var buf [16]byte
		b.Decrypt(buf[:], c)
		copy(a[:], buf[:8])
		p = append([]byte(nil), buf[8:]...)
	} else {
		n := len(c)/8 - 1
		copy(a[:], c[:8])
		r := append([]byte(nil), c[8:]...)
		var buf [16]byte
		for j := 5; j >= 0; j-- {
			for i := n - 1; i >= 0; i-- {
				t := uint64(n*j + i + 1)
				binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(buf[8:], r[i*8:i*8+8])
				b.Decrypt(buf[:], buf[:])
				copy(a[:], buf[:8])
				copy(r[i*8:], buf[8:])
			}
		}
		p = r
	}
	mli := binary.BigEndian.Uint32(a[4:])
	ok := subtle.ConstantTimeCompare(a[:4], []byte{0xA6, 0x59, 0x59, 0xA6})
	if ok != 1 || int(mli) > len(p) || int(mli) <= len(p)-8 {
		return nil, errKWP
	}
	var pad byte
	for _, x := range p[mli:] {
		pad |= x
	}
	if pad != 0 {
		return nil, errKWP
	}
	return p[:mli], nil
}
