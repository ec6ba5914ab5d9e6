//go:build cgo && sharedenclave_c

// Command cshared is libsharedenclave: the C interface to Shared Enclave,
// built with
//
//	go build -tags sharedenclave_c -buildmode=c-shared -o libsharedenclave.so ./cshared
//	go build -tags sharedenclave_c -buildmode=c-archive -o libsharedenclave.a ./cshared
//
// sharedenclave.h is the public header: every function, its ownership
// rules, its error codes and the thread-safety rules are documented there.
// This package only adapts: the attestation is atls.Peer, the relay client
// is package client, the backend is attest/backend and policies come from
// attest/policyfile, exactly as for the Go commands.
//
// Boundary rules kept here: no Go pointer is returned to C (objects are
// integer handles into a table; messages are C.malloc'd copies); every
// length from C is checked before a slice is made over C memory; errors are
// codes plus a per-thread message in C memory (support.c).
//
// The build tag keeps this package out of the CGO_ENABLED=0 build of the
// rest of the repository.
package main

/*
#cgo CFLAGS: -std=c11 -Wall
#include <stdlib.h>
#include "sharedenclave.h"

// cgo cannot spell const in exported signatures; these typedefs make the
// prototypes cgo writes identical to the header's.
typedef const char se_cchar;
typedef const void se_cvoid;
typedef const se_env_options se_cenv_options;

void se_set_error(const char *msg, size_t len);
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/wire"
)

func main() {}

// Codes, as in sharedenclave.h.
const (
	seOK           = 0
	seNoData       = 1
	seWantRead     = 2
	seWantWrite    = 3
	seEInval       = -1
	seEBadHandle   = -2
	seEPolicy      = -3
	seEBackend     = -4
	seEAttest      = -5
	seERefused     = -6
	seENack        = -7
	seEServer      = -8
	seEIO          = -9
	seEClosed      = -10
	seEUnsupported = -11
	seENoMem       = -12
	seEInternal    = -13
)

// maxCString bounds every NUL-terminated string read from C (ids, paths,
// host names): the scan stops there, so an unterminated buffer is refused
// rather than read past.
const maxCString = 4096

// fail records msg as the calling thread's error and returns code.
func fail(code C.int, format string, args ...any) C.int {
	msg := fmt.Sprintf(format, args...)
	if !utf8.ValidString(msg) {
		msg = string([]rune(msg)) // replaces invalid bytes
	}
	if msg == "" {
		msg = "(no message)"
	}
	C.se_set_error((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
	return code
}

// failErr maps a Go error to a code and records its message.
func failErr(err error) C.int {
	return fail(codeOf(err), "%v", err)
}

func codeOf(err error) C.int {
	var ne *client.NackError
	var se *client.ServerError
	switch {
	case errors.As(err, &ne):
		return seENack
	case errors.As(err, &se):
		return seEServer
	case errors.Is(err, atls.ErrRefused):
		return seERefused
	case errors.Is(err, atls.ErrPeer), errors.Is(err, attest.ErrNotGenuine), errors.Is(err, attest.ErrPolicy):
		return seEAttest
	case errors.Is(err, wire.ErrMalformed):
		return seEInval
	case errors.Is(err, io.EOF):
		return seEClosed
	}
	return seEIO
}

// goString reads an optional NUL-terminated C string of at most max bytes.
// ok is false if it is longer (no NUL within max+1 bytes).
func goString(p *C.se_cchar, max int) (s string, ok bool) {
	if p == nil {
		return "", true
	}
	b := (*byte)(unsafe.Pointer(p))
	for n := 0; n <= max; n++ {
		if *(*byte)(unsafe.Add(unsafe.Pointer(b), n)) == 0 {
			return string(unsafe.Slice(b, n)), true
		}
	}
	return "", false
}

// Handles: integers into one table, never reused, so a stale handle is
// an error and not another object.
var (
	handleMu sync.Mutex
	handles  = map[uint64]any{}
	lastID   uint64
)

func newHandle(v any) uint64 {
	handleMu.Lock()
	defer handleMu.Unlock()
	lastID++
	handles[lastID] = v
	return lastID
}

func lookup[T any](h uint64) (T, bool) {
	handleMu.Lock()
	defer handleMu.Unlock()
	v, ok := handles[h].(T)
	return v, ok
}

// release removes h if it holds a T, and returns what it held.
func release[T any](h uint64) (T, bool) {
	handleMu.Lock()
	defer handleMu.Unlock()
	v, ok := handles[h].(T)
	if ok {
		delete(handles, h)
	}
	return v, ok
}

func badHandle(kind string, h uint64) C.int {
	return fail(seEBadHandle, "sharedenclave: %d is not an open %s handle", h, kind)
}

// fillIdentity copies a verified report into C memory.
func fillIdentity(out *C.se_identity, r *attest.Report) {
	*out = C.se_identity{}
	for i := range 32 {
		out.mrenclave[i] = C.uint8_t(r.MREnclave[i])
		out.mrsigner[i] = C.uint8_t(r.MRSigner[i])
	}
	out.isv_prod_id = C.uint16_t(r.ISVProdID)
	out.isv_svn = C.uint16_t(r.ISVSVN)
	if r.Debug {
		out.debug = 1
	}
	if r.Simulated {
		out.simulated = 1
	}
	st := string(r.TCBStatus)
	for i := 0; i < len(st) && i < len(out.tcb_status)-1; i++ {
		out.tcb_status[i] = C.char(st[i])
	}
}
