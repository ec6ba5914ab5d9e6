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
	"crypto/rand"
	"encoding/binary"
	"net"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/wire"
)

// relayConn is a client.Conn behind a lock: the handle's calls take turns
// (the header's promise), so a FETCH's wait is not cut by another request.
//
// At dial the connection asks for the delivery extension (docs/PROTOCOL.md
// section 8). Where the relay grants delivery, poll and recv are FETCH
// (recv waits in the relay, which answers as soon as a message arrives),
// messages carry their delivery id and stay held until se_relay_ack. Where
// it grants message ids, sends are SEND_ID with a 64-bit id. Against a
// seed relay, everything is the seed protocol, as before.
type relayConn struct {
	mu       sync.Mutex
	c        *client.Conn // nil once closed
	timeout  time.Duration
	delivery bool          // FETCH and ACK granted
	msgIDs   bool          // SEND_ID granted
	maxWait  time.Duration // the relay's longest FETCH wait
}

// pollInterval is how often se_relay_recv asks a seed relay while waiting.
const pollInterval = 50 * time.Millisecond

// msgIDLen is the size of the message ids this library sends: a uint64,
// big-endian.
const msgIDLen = 8

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
		// A DELIVER carries up to 330 bytes more than the SEND it came from.
		MaxPayload: wire.DefaultMaxPayload + 1024,
	})
	if err != nil {
		return failErr(err)
	}
	info, err := c.Hello(wire.FeatureDelivery | wire.FeatureMsgID)
	if err != nil {
		c.Close()
		return failErr(err)
	}
	r := &relayConn{c: c, timeout: e.timeout,
		delivery: info.Features&wire.FeatureDelivery != 0,
		msgIDs:   info.Features&wire.FeatureMsgID != 0,
		maxWait:  time.Duration(info.MaxWaitMS) * time.Millisecond,
	}
	*out = C.se_relay(newHandle(r))
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

// sendArgs checks a send's arguments; nothing is sent if they are bad.
func sendArgs(fn string, recipient *C.se_cchar, data *C.se_cvoid, n C.size_t) (string, []byte, C.int) {
	to, code := cID(recipient, "recipient")
	if code != seOK {
		return "", nil, code
	}
	if n > C.SE_MAX_PAYLOAD {
		return "", nil, fail(seEInval, "%s: %d bytes of data, over SE_MAX_PAYLOAD (%d)", fn, uint64(n), C.SE_MAX_PAYLOAD)
	}
	if data == nil && n != 0 {
		return "", nil, fail(seEInval, "%s: data is NULL but data_len is %d", fn, uint64(n))
	}
	var payload []byte
	if n > 0 {
		payload = unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n))
	}
	return to, payload, seOK
}

// fitsWithID reports whether a SEND_ID frame with a msgIDLen-byte id fits
// in the relay's default frame limit (SE_MAX_PAYLOAD leaves room for a
// 255-byte recipient, not for the id as well).
func fitsWithID(to string, data []byte) bool {
	return 1+msgIDLen+2+len(to)+len(data) <= wire.DefaultMaxPayload
}

// sendID sends with message id id; with r locked.
func (r *relayConn) sendID(to string, data []byte, id uint64) C.int {
	if err := r.c.SendID(binary.BigEndian.AppendUint64(nil, id), to, data); err != nil {
		return failErr(err)
	}
	return seOK
}

//export se_relay_send
func se_relay_send(h C.se_relay, recipient *C.se_cchar, data *C.se_cvoid, n C.size_t, msgID *C.uint64_t) C.int {
	if msgID != nil {
		*msgID = 0
	}
	to, payload, code := sendArgs("se_relay_send", recipient, data, n)
	if code != seOK {
		return code
	}
	return withRelay(h, func(r *relayConn) C.int {
		if !r.msgIDs || !fitsWithID(to, payload) {
			if err := r.c.Send(to, payload); err != nil {
				return failErr(err)
			}
			return seOK
		}
		var id uint64
		for id == 0 {
			var b [msgIDLen]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fail(seEInternal, "se_relay_send: message id: %v", err)
			}
			id = binary.BigEndian.Uint64(b[:])
		}
		// Set before sending: after a failure the caller retries with it.
		if msgID != nil {
			*msgID = C.uint64_t(id)
		}
		return r.sendID(to, payload, id)
	})
}

//export se_relay_send_id
func se_relay_send_id(h C.se_relay, recipient *C.se_cchar, data *C.se_cvoid, n C.size_t, msgID C.uint64_t) C.int {
	to, payload, code := sendArgs("se_relay_send_id", recipient, data, n)
	if code != seOK {
		return code
	}
	if msgID == 0 {
		return fail(seEInval, "se_relay_send_id: message id 0")
	}
	if !fitsWithID(to, payload) {
		return fail(seEInval, "se_relay_send_id: %d bytes of data and a %d-byte recipient do not fit in one frame with a message id (%d bytes of data at most with this recipient)",
			len(payload), len(to), wire.DefaultMaxPayload-1-msgIDLen-2-len(to))
	}
	return withRelay(h, func(r *relayConn) C.int {
		if !r.msgIDs {
			return fail(seEUnsupported, "se_relay_send_id: the relay does not offer message ids (SEND_ID, docs/PROTOCOL.md section 8): it speaks the seed protocol")
		}
		return r.sendID(to, payload, uint64(msgID))
	})
}

// newMessage copies a message into C memory.
func newMessage(from string, data []byte, id uint64, flags uint32) (*C.se_message, C.int) {
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
	m.id = C.uint64_t(id)
	m.flags = C.uint32_t(flags)
	return m, seOK
}

// fetch asks the relay for one message, waiting up to wait; with r locked.
func (r *relayConn) fetch(wait time.Duration, out **C.se_message) C.int {
	ds, err := r.c.Fetch(1, wait)
	if err != nil {
		return failErr(err)
	}
	if len(ds) == 0 {
		return seNoData
	}
	d := ds[0]
	var flags uint32
	if d.Flags&wire.FlagRedelivered != 0 {
		flags |= C.SE_MSG_REDELIVERED
	}
	m, code := newMessage(string(d.From), d.Data, d.ID, flags)
	if code != seOK {
		return code
	}
	*out = m
	return seOK
}

// pollOnce asks the relay once, without waiting; with r locked.
func (r *relayConn) pollOnce(out **C.se_message) C.int {
	if r.delivery {
		return r.fetch(0, out)
	}
	from, data, ok, err := r.c.Poll()
	if err != nil {
		return failErr(err)
	}
	if !ok {
		return seNoData
	}
	m, code := newMessage(from, data, 0, 0)
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
		if r.delivery {
			// FETCH waits in the relay, which answers when a message
			// arrives; waits over its maximum are split.
			for {
				left := max(time.Until(end), 0)
				wait := left
				if r.maxWait > 0 {
					wait = min(wait, r.maxWait)
				}
				if code := r.fetch(wait, out); code != seNoData || left <= wait {
					return code
				}
			}
		}
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
		if !r.delivery {
			return fail(seEUnsupported, "se_relay_ack: the relay does not offer acknowledgements (docs/PROTOCOL.md section 8): it speaks the seed protocol, where a message is removed when it is polled")
		}
		if msgID == 0 {
			return fail(seEInval, "se_relay_ack: message id 0 (a message with id 0 needs no acknowledgement)")
		}
		acked, _, err := r.c.Ack(uint64(msgID))
		if err != nil {
			return failErr(err)
		}
		if acked == 0 {
			return seNoData
		}
		return seOK
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
