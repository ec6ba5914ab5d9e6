package kms

import (
	"sync"
	"unsafe"
)

// slicePool keeps the large slices of batch requests between requests:
// the body, the items, the results and the answer of a 1000-item batch
// are each 100–300 KiB, which the runtime would otherwise zero, collect
// and hand back to the OS on every request. A slice is cleared when it
// is put back (bodies and answers hold plaintexts), and one over
// maxPooled bytes is left to the garbage collector.
type slicePool[T any] struct{ p sync.Pool }

const maxPooled = 8 << 20

// get returns a slice of length 0 and capacity at least n.
func (sp *slicePool[T]) get(n int) []T {
	if v, _ := sp.p.Get().(*[]T); v != nil && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]T, 0, n)
}

// put clears s (to its capacity) and keeps it for a later get. The caller
// must not use s afterwards.
func (sp *slicePool[T]) put(s []T) {
	var zero T
	if s == nil || uintptr(cap(s))*unsafe.Sizeof(zero) > maxPooled {
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
