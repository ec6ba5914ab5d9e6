//go:build cgo && sharedenclave_c

package main

/*
#include <stdlib.h>
#include <string.h>
#include "sharedenclave.h"
typedef const char se_cchar;
typedef const void se_cvoid;
*/
import "C"

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/wire"
)

// relayConn is a client.Conn behind a lock: client.Conn is not safe for
// concurrent use, and the header promises that a relay handle is.
type relayConn struct {
	mu      sync.Mutex
	c       *client.Conn // nil once closed
	timeout time.Duration
}

// pollInterval is how often se_relay_recv asks the relay while waiting.
const pollInterval = 50 * time.Millisecond

// withRelay runs f with the connection of handle h locked.
func withRelay(h C.se_relay, f func(r *relayConn) C.int) C.int {
	r, ok := lookup[*relayConn](uint64(h))
	if !ok {
		return badHandle("relay", uint64(h))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c == nil { // closed while we waited for the lock
		return badHandle("relay", uint64(h))
	}
	return f(r)
}

// cID reads a client id: NUL-terminated, 1..255 bytes of UTF-8.
func cID(p *C.se_cchar, what string) (string, C.int) {
	if p == nil {
		return "", fail(seEInval, "sharedenclave: %s is NULL", what)
	}
	s, ok := goString(p, wire.MaxIDLen)
	if !ok {
		return "", fail(seEInval, "sharedenclave: %s is longer than %d bytes", what, wire.MaxIDLen)
	}
	if _, err := wire.AppendRegister(nil, s); err != nil {
		return "", fail(seEInval, "sharedenclave: %s: %v", what, err)
	}
	return s, seOK
}

//export se_relay_dial
func se_relay_dial(envh C.se_env, host, port, policyFile *C.se_cchar, out *C.se_relay) C.int {
	if out == nil || host == nil || port == nil {
		return fail(seEInval, "se_relay_dial: host, port and out must not be NULL")
	}
	*out = 0
	e, ok := lookup[*env](uint64(envh))
	if !ok {
		return badHandle("environment", uint64(envh))
	}
	hs, ok1 := goString(host, 1024)
	ps, ok2 := goString(port, 16)
	if !ok1 || !ok2 || hs == "" {
		return fail(seEInval, "se_relay_dial: host (1..1024 bytes) and port must be given")
	}
	if n, err := strconv.ParseUint(ps, 10, 16); err != nil || n == 0 || ps[0] == '+' {
		return fail(seEInval, "se_relay_dial: port %q is not a decimal number 1..65535", ps)
	}
	pol, code := e.policy(policyFile)
	if code != seOK {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	c, err := client.Dial(ctx, net.JoinHostPort(hs, ps), client.Config{
		Attester: e.be.Attester, Verifier: e.be.Verifier, Policy: pol, Timeout: e.timeout,
	})
	if err != nil {
		return failErr(err)
	}
	*out = C.se_relay(newHandle(&relayConn{c: c, timeout: e.timeout}))
	return seOK
}

//export se_relay_peer
func se_relay_peer(h C.se_relay, out *C.se_identity) C.int {
	if out == nil {
		return fail(seEInval, "se_relay_peer: out is NULL")
	}
	return withRelay(h, func(r *relayConn) C.int {
		fillIdentity(out, r.c.ServerReport())
		return seOK
	})
}

//export se_relay_register
func se_relay_register(h C.se_relay, id *C.se_cchar) C.int {
	s, code := cID(id, "id")
	if code != seOK {
		return code
	}
	return withRelay(h, func(r *relayConn) C.int {
		if err := r.c.Register(s); err != nil {
			return failErr(err)
		}
		return seOK
	})
}

//export se_relay_send
func se_relay_send(h C.se_relay, recipient *C.se_cchar, data *C.se_cvoid, n C.size_t, msgID *C.uint64_t) C.int {
	if msgID != nil {
		*msgID = 0
	}
	to, code := cID(recipient, "recipient")
	if code != seOK {
		return code
	}
	if n > C.SE_MAX_PAYLOAD {
		return fail(seEInval, "se_relay_send: %d bytes of data, over SE_MAX_PAYLOAD (%d)", uint64(n), C.SE_MAX_PAYLOAD)
	}
	if data == nil && n != 0 {
		return fail(seEInval, "se_relay_send: data is NULL but data_len is %d", uint64(n))
	}
	var payload []byte
	if n > 0 {
		payload = unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n))
	}
	return withRelay(h, func(r *relayConn) C.int {
		if err := r.c.Send(to, payload); err != nil {
			return failErr(err)
		}
		return seOK
	})
}

// newMessage copies a message into C memory.
func newMessage(from string, data []byte) (*C.se_message, C.int) {
	m := (*C.se_message)(C.calloc(1, C.size_t(unsafe.Sizeof(C.se_message{}))))
	if m == nil {
		return nil, fail(seENoMem, "sharedenclave: out of memory")
	}
	m.from = (*C.char)(C.malloc(C.size_t(len(from) + 1)))
	m.data = (*C.uint8_t)(C.malloc(C.size_t(len(data) + 1)))
	if m.from == nil || m.data == nil {
		C.se_message_free(m)
		return nil, fail(seENoMem, "sharedenclave: out of memory")
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(m.from)), len(from)+1), from+"\x00")
	d := unsafe.Slice((*byte)(unsafe.Pointer(m.data)), len(data)+1)
	copy(d, data)
	d[len(data)] = 0
	m.from_len = C.size_t(len(from))
	m.data_len = C.size_t(len(data))
	return m, seOK
}

// pollOnce asks the relay once; with r locked.
func (r *relayConn) pollOnce(out **C.se_message) C.int {
	from, data, ok, err := r.c.Poll()
	if err != nil {
		return failErr(err)
	}
	if !ok {
		return seNoData
	}
	m, code := newMessage(from, data)
	if code != seOK {
		return code
	}
	*out = m
	return seOK
}

//export se_relay_poll
func se_relay_poll(h C.se_relay, out **C.se_message) C.int {
	if out == nil {
		return fail(seEInval, "se_relay_poll: out is NULL")
	}
	*out = nil
	return withRelay(h, func(r *relayConn) C.int { return r.pollOnce(out) })
}

//export se_relay_recv
func se_relay_recv(h C.se_relay, timeoutMS C.uint32_t, out **C.se_message) C.int {
	if out == nil {
		return fail(seEInval, "se_relay_recv: out is NULL")
	}
	*out = nil
	end := time.Now().Add(time.Duration(timeoutMS) * time.Millisecond)
	return withRelay(h, func(r *relayConn) C.int {
		for {
			if code := r.pollOnce(out); code != seNoData {
				return code
			}
			left := time.Until(end)
			if left <= 0 {
				return seNoData
			}
			time.Sleep(min(left, pollInterval))
		}
	})
}

//export se_relay_ack
func se_relay_ack(h C.se_relay, msgID C.uint64_t) C.int {
	return withRelay(h, func(r *relayConn) C.int {
		return fail(seEUnsupported, "se_relay_ack: the relay protocol has no acknowledgements yet: a message is removed when it is polled")
	})
}

//export se_relay_close
func se_relay_close(h C.se_relay) C.int {
	r, ok := release[*relayConn](uint64(h))
	if !ok {
		return badHandle("relay", uint64(h))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.c.Close()
	r.c = nil
	return seOK
}
