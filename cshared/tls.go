//go:build cgo && sharedenclave_c

package main

/*
#include "sharedenclave.h"
typedef const char se_cchar;
typedef const void se_cvoid;
*/
import "C"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
)

// tlsSession is an attested TLS session over a caller's descriptor.
type tlsSession struct {
	rmu, wmu sync.Mutex // one reader and one writer at a time
	conn     *tls.Conn
	fc       *fdConn
	peer     *attest.Report
	timeout  time.Duration
	wantRead atomic.Bool
	closed   atomic.Bool
}

// newSession runs the handshake and the attestation (side) to completion,
// waiting out EAGAIN, bounded by the environment's timeout.
func newSession(e *env, fd C.int, out *C.se_tls, policyFile *C.se_cchar, side func(context.Context, *atls.Peer, *fdConn) (*tls.Conn, *attest.Report, error)) C.int {
	if fd < 0 {
		return fail(seEInval, "sharedenclave: file descriptor %d", int(fd))
	}
	pol, code := e.policy(policyFile)
	if code != seOK {
		return code
	}
	fc := &fdConn{fd: int(fd), wait: true}
	peer := &atls.Peer{Attester: e.be.Attester, Verifier: e.be.Verifier, Policy: pol, Timeout: e.timeout}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	conn, report, err := side(ctx, peer, fc)
	if err != nil {
		return failErr(err)
	}
	fc.setWait(false)
	*out = C.se_tls(newHandle(&tlsSession{conn: conn, fc: fc, peer: report, timeout: e.timeout}))
	return seOK
}

//export se_tls_client_new
func se_tls_client_new(envh C.se_env, fd C.int, hostname, policyFile *C.se_cchar, out *C.se_tls) C.int {
	if out == nil {
		return fail(seEInval, "se_tls_client_new: out is NULL")
	}
	*out = 0
	e, ok := lookup[*env](uint64(envh))
	if !ok {
		return badHandle("environment", uint64(envh))
	}
	host, ok := goString(hostname, 255)
	if !ok {
		return fail(seEInval, "se_tls_client_new: hostname longer than 255 bytes")
	}
	return newSession(e, fd, out, policyFile, func(ctx context.Context, p *atls.Peer, fc *fdConn) (*tls.Conn, *attest.Report, error) {
		cfg := atls.ClientConfig()
		cfg.ServerName = host // SNI only: the server's quote authenticates it
		conn := tls.Client(fc, cfg)
		r, err := p.Client(ctx, conn)
		return conn, r, err
	})
}

//export se_tls_server_new
func se_tls_server_new(envh C.se_env, fd C.int, policyFile *C.se_cchar, out *C.se_tls) C.int {
	if out == nil {
		return fail(seEInval, "se_tls_server_new: out is NULL")
	}
	*out = 0
	e, ok := lookup[*env](uint64(envh))
	if !ok {
		return badHandle("environment", uint64(envh))
	}
	return newSession(e, fd, out, policyFile, func(ctx context.Context, p *atls.Peer, fc *fdConn) (*tls.Conn, *attest.Report, error) {
		// A key generated here, inside the enclave, for this session.
		cert, err := atls.NewKeyCertificate(atls.CertOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("sharedenclave: generating the server key: %w", err)
		}
		conn := tls.Server(fc, atls.ServerConfig(cert))
		r, err := p.Server(ctx, conn, cert.Certificate[0])
		return conn, r, err
	})
}

func withSession(h C.se_tls, f func(s *tlsSession) C.int) C.int {
	s, ok := lookup[*tlsSession](uint64(h))
	if !ok || s.closed.Load() {
		return badHandle("TLS session", uint64(h))
	}
	return f(s)
}

//export se_tls_peer
func se_tls_peer(h C.se_tls, out *C.se_identity) C.int {
	if out == nil {
		return fail(seEInval, "se_tls_peer: out is NULL")
	}
	return withSession(h, func(s *tlsSession) C.int {
		fillIdentity(out, s.peer)
		return seOK
	})
}

// ioCode maps a read or write error.
func ioCode(err error) C.int {
	if errors.Is(err, errWouldBlock) {
		return seWantRead
	}
	if errors.Is(err, io.EOF) {
		return fail(seEClosed, "sharedenclave: the peer closed the TLS session")
	}
	return fail(seEIO, "sharedenclave: %v", err)
}

//export se_tls_read
func se_tls_read(h C.se_tls, buf unsafe.Pointer, n C.size_t, got *C.size_t) C.int {
	if got != nil {
		*got = 0
	}
	if buf == nil || got == nil || n == 0 || n > math.MaxInt32 {
		return fail(seEInval, "se_tls_read: buf and n must not be NULL, len must be 1..INT32_MAX")
	}
	return withSession(h, func(s *tlsSession) C.int {
		s.rmu.Lock()
		defer s.rmu.Unlock()
		if s.closed.Load() {
			return badHandle("TLS session", uint64(h))
		}
		k, err := s.conn.Read(unsafe.Slice((*byte)(buf), int(n)))
		// Reading may have queued records to send (TLS 1.3 key updates).
		if ferr := s.fc.tryFlush(); ferr != nil && ferr != errWouldBlock && err == nil {
			err = ferr
		}
		if k > 0 {
			s.wantRead.Store(false)
			*got = C.size_t(k)
			return seOK
		}
		if errors.Is(err, errWouldBlock) {
			s.wantRead.Store(true)
			return seWantRead
		}
		s.wantRead.Store(false)
		if err == nil {
			err = io.ErrNoProgress
		}
		return ioCode(err)
	})
}

//export se_tls_write
func se_tls_write(h C.se_tls, buf *C.se_cvoid, n C.size_t, put *C.size_t) C.int {
	if put != nil {
		*put = 0
	}
	if buf == nil || put == nil || n == 0 || n > C.SE_MAX_TLS_WRITE {
		return fail(seEInval, "se_tls_write: buf and n must not be NULL, len must be 1..SE_MAX_TLS_WRITE")
	}
	return withSession(h, func(s *tlsSession) C.int {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if s.closed.Load() {
			return badHandle("TLS session", uint64(h))
		}
		if err := s.fc.flush(); err == errWouldBlock {
			return seWantWrite
		} else if err != nil {
			return ioCode(err)
		}
		k, err := s.conn.Write(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n)))
		if err != nil {
			return ioCode(err)
		}
		*put = C.size_t(k)
		return seOK
	})
}

//export se_tls_flush
func se_tls_flush(h C.se_tls) C.int {
	return withSession(h, func(s *tlsSession) C.int {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if s.closed.Load() {
			return badHandle("TLS session", uint64(h))
		}
		switch err := s.fc.flush(); {
		case err == errWouldBlock:
			return seWantWrite
		case err != nil:
			return ioCode(err)
		}
		return seOK
	})
}

//export se_tls_wants_read
func se_tls_wants_read(h C.se_tls) C.int {
	return withSession(h, func(s *tlsSession) C.int {
		if s.wantRead.Load() {
			return 1
		}
		return 0
	})
}

//export se_tls_wants_write
func se_tls_wants_write(h C.se_tls) C.int {
	return withSession(h, func(s *tlsSession) C.int {
		if s.fc.hasPending() {
			return 1
		}
		return 0
	})
}

//export se_tls_close
func se_tls_close(h C.se_tls) C.int {
	s, ok := release[*tlsSession](uint64(h))
	if !ok {
		return badHandle("TLS session", uint64(h))
	}
	s.closed.Store(true)
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Write the backlog and close_notify, waiting out EAGAIN, bounded.
	s.fc.setWait(true)
	s.fc.SetWriteDeadline(time.Now().Add(s.timeout))
	s.fc.flush()
	s.conn.Close() // close_notify; fdConn.Close leaves the descriptor open
	return seOK
}
