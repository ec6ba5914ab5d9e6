//go:build cgo && sharedenclave_c

package main

/*
#include <poll.h>
#include <sys/socket.h>
*/
import "C"

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// fdConn is a net.Conn over a file descriptor the C caller owns. It never
// changes the descriptor's flags and never closes it, so the caller's
// choice of blocking or non-blocking I/O holds:
//
//   - While wait is set (the handshake and attestation, and close), EAGAIN
//     is waited out with poll(2) up to the deadline: crypto/tls cannot
//     resume a handshake that saw an error.
//   - Otherwise a read that would block returns errWouldBlock, a
//     temporary net.Error, which crypto/tls does not record, so the next
//     Read resumes where it stopped; bytes a write could not hand to the
//     socket are kept in pending (crypto/tls treats every write error as
//     fatal, so a write never fails for EAGAIN) and flush writes them later.
//
// A deadline, when set, is enforced with poll(2) before each read or write,
// so a blocking descriptor cannot hold the handshake past it either.
type fdConn struct {
	fd int

	mu       sync.Mutex // guards the deadlines and wait
	rdl, wdl time.Time
	wait     bool

	pmu     sync.Mutex // guards pending; held across a blocking write
	pending []byte
	npend   atomic.Int64 // len(pending), readable without pmu
}

// errWouldBlock: the descriptor is non-blocking and has nothing to read.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "sharedenclave: operation would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

func (c *fdConn) state(read bool) (deadline time.Time, wait bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if read {
		return c.rdl, c.wait
	}
	return c.wdl, c.wait
}

func (c *fdConn) setWait(w bool) {
	c.mu.Lock()
	c.wait = w
	c.mu.Unlock()
}

// poll waits for ev on the descriptor until deadline (zero: forever).
func (c *fdConn) poll(ev C.short, deadline time.Time) error {
	for {
		ms := C.int(-1)
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			ms = C.int((left + time.Millisecond - 1) / time.Millisecond)
		}
		pfd := C.struct_pollfd{fd: C.int(c.fd), events: ev}
		n, err := C.poll(&pfd, 1, ms)
		switch {
		case n < 0 && errors.Is(err, syscall.EINTR):
			continue
		case n < 0:
			return err
		case n > 0:
			if pfd.revents&C.POLLNVAL != 0 {
				return syscall.EBADF
			}
			return nil // readable, writable, or an error the next call reports
		}
	}
}

func (c *fdConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	deadline, wait := c.state(true)
	for {
		if !deadline.IsZero() {
			if err := c.poll(C.POLLIN, deadline); err != nil {
				return 0, err
			}
		}
		n, err := syscall.Read(c.fd, p)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			if !wait {
				return 0, errWouldBlock
			}
			if err := c.poll(C.POLLIN, deadline); err != nil {
				return 0, err
			}
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write hands p to the socket, or keeps what it would not take (see the
// type's comment). Only a real error is returned.
func (c *fdConn) Write(p []byte) (int, error) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	c.pending = append(c.pending, p...)
	if err := c.flushLocked(); err != nil && err != errWouldBlock {
		return 0, err
	}
	return len(p), nil
}

// flush writes pending: nil when none is left, errWouldBlock when the
// socket takes no more, or an error.
func (c *fdConn) flush() error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.flushLocked()
}

// tryFlush is flush for the read side: if a writer holds pmu (possibly
// blocked in write(2) until the peer reads), it returns nil at once — that
// writer drains pending itself — so a read never waits for a write.
func (c *fdConn) tryFlush() error {
	if !c.pmu.TryLock() {
		return nil
	}
	defer c.pmu.Unlock()
	return c.flushLocked()
}

func (c *fdConn) hasPending() bool { return c.npend.Load() > 0 }

func (c *fdConn) flushLocked() error {
	defer func() { c.npend.Store(int64(len(c.pending))) }()
	deadline, wait := c.state(false)
	for len(c.pending) > 0 {
		if !deadline.IsZero() {
			if err := c.poll(C.POLLOUT, deadline); err != nil {
				return err
			}
		}
		n, err := c.write(c.pending)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			if !wait {
				return errWouldBlock
			}
			if err := c.poll(C.POLLOUT, deadline); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	}
	c.pending = nil
	return nil
}

// write sends p with MSG_NOSIGNAL, so a peer that is gone is an EPIPE
// error and never a SIGPIPE for the C program; a descriptor that is not a
// socket is written with write(2).
func (c *fdConn) write(p []byte) (int, error) {
	n, err := C.send(C.int(c.fd), unsafe.Pointer(&p[0]), C.size_t(len(p)), C.MSG_NOSIGNAL)
	if n < 0 && errors.Is(err, syscall.ENOTSOCK) {
		return syscall.Write(c.fd, p)
	}
	if n < 0 {
		return 0, err
	}
	return int(n), nil
}

// Close does not close the descriptor: it is the caller's.
func (c *fdConn) Close() error { return nil }

type fdAddr struct{}

func (fdAddr) Network() string { return "fd" }
func (fdAddr) String() string  { return "fd" }

func (c *fdConn) LocalAddr() net.Addr  { return fdAddr{} }
func (c *fdConn) RemoteAddr() net.Addr { return fdAddr{} }

func (c *fdConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.mu.Unlock()
	return nil
}

func (c *fdConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	return nil
}

func (c *fdConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}
