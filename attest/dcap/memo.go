package dcap

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// memo remembers the results of expensive checks that depend only on
// their input bytes (and the trusted roots, fixed per Verifier): chain
// building, signatures over collateral, CRL signatures. Only successes are
// kept, each with the time window in which it holds; every call still
// checks its own time against that window and everything per-quote.
type memo struct {
	mu sync.Mutex
	m  map[[32]byte]memoEntry
}

type memoEntry struct {
	v         any
	notBefore time.Time
	notAfter  time.Time
}

const memoMax = 512

func memoKey(kind string, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		var n [8]byte
		for i, l := 0, len(p); i < 8; i, l = i+1, l>>8 {
			n[i] = byte(l)
		}
		h.Write(n[:])
		h.Write(p)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (m *memo) get(k [32]byte, now time.Time) (any, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[k]
	if !ok || now.Before(e.notBefore) || now.After(e.notAfter) {
		return nil, false
	}
	return e.v, true
}

func (m *memo) put(k [32]byte, v any, notBefore, notAfter time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= memoMax {
		m.m = make(map[[32]byte]memoEntry)
	}
	m.m[k] = memoEntry{v, notBefore, notAfter}
}

// chainWindow is the time range in which every certificate of chain is
// valid.
func chainWindow(chain []*x509.Certificate) (time.Time, time.Time) {
	nb, na := chain[0].NotBefore, chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotBefore.After(nb) {
			nb = c.NotBefore
		}
		if c.NotAfter.Before(na) {
			na = c.NotAfter
		}
	}
	return nb, na
}

// memoized returns f's result for key, computing and keeping it on first
// use. Use it only for pure functions of the bytes hashed into key whose
// results callers never modify.
func memoized[T any](m *memo, key [32]byte, f func() (T, error)) (T, error) {
	if v, ok := m.get(key, time.Time{}); ok {
		return v.(T), nil
	}
	v, err := f()
	if err != nil {
		return v, err
	}
	m.put(key, v, time.Time{}, maxTime)
	return v, nil
}

type parsedDoc[T any] struct {
	doc         *T
	signed, sig []byte
}
