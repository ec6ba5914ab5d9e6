package kms

import (
	"reflect"
	"sync"
)

// slicePool keeps the large slices of batch requests between requests:
// the body, the items, the results and the answer of a 1000-item batch
// are each 100–300 KiB, which the runtime would otherwise zero, collect
// and hand back to the OS on every request. Only slices of minPooled to
// maxPooled bytes are kept (a single request allocates its own small
// ones, and never pays for clearing a batch's), and a slice is cleared
// when it is put back (bodies and answers hold plaintexts).
type slicePool[T any] struct{ p sync.Pool }

const (
	minPooled = 16 << 10
	maxPooled = 8 << 20
)

func (sp *slicePool[T]) bytes(n int) int { return n * int(reflect.TypeFor[T]().Size()) }

// get returns a slice of length 0 and capacity at least n.
func (sp *slicePool[T]) get(n int) []T {
	if sp.bytes(n) >= minPooled {
		if v, _ := sp.p.Get().(*[]T); v != nil && cap(*v) >= n {
			return (*v)[:0]
		}
	}
	return make([]T, 0, n)
}

// put clears s (to its capacity) and keeps it for a later get, if it is
// of a size the pool keeps. The caller must not use s afterwards.
func (sp *slicePool[T]) put(s []T) {
	if b := sp.bytes(cap(s)); b < minPooled || b > maxPooled {
		return
	}
	s = s[:cap(s)]
	clear(s)
	s = s[:0]
	sp.p.Put(&s)
}

var (
	bodyPool     slicePool[byte]
	itemPool     slicePool[batchItem]
	resultPool   slicePool[itemResult]
	envelopePool slicePool[byte]
)
