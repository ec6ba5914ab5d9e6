package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/wire"
)

// Config configures a Server. Certificate and Peer are required.
type Config struct {
	// Certificate is the server's TLS identity, generated in the enclave.
	Certificate tls.Certificate
	// Peer attests the server and verifies clients (its Policy says which
	// client enclaves may connect).
	Peer *atls.Peer
	// Bindings optionally ties client ids to attested identities.
	Bindings map[string]*attest.Policy
	// Mailboxes stores messages; nil means in-memory with Limits.
	Mailboxes Mailboxes
	// Holders, when several relay nodes serve one relay, says which ids
	// are held by a live session on another node; nil for a single relay.
	Holders Holders
	Limits  Limits
	// MaxPayload caps a frame's payload; default wire.DefaultMaxPayload.
	MaxPayload int
	// MaxConns caps concurrent connections; default 10000.
	MaxConns int
	// IdleTimeout is how long a session may wait for its next frame;
	// default 5 minutes. WriteTimeout bounds each flush; default 10 s.
	IdleTimeout  time.Duration
	WriteTimeout time.Duration
	// Logger receives connection events, never payloads. Nil: discard.
	Logger *slog.Logger
	// Metrics, when set, is told about events.
	Metrics Metrics
	// Rand is the source of the key that tags client ids in the log
	// (see Server.idTag); default crypto/rand.
	Rand io.Reader

	// The delivery extension (docs/PROTOCOL.md section 8). MaxBatch caps
	// the messages of one FETCH (default 256, at most 65535);
	// MaxFetchWait the wait of one FETCH (default 30 s); MaxCredit the
	// credit a subscription may hold (default 1024); AckWait how long a
	// delivered message waits for its ACK before it is released for
	// redelivery (default 30 s). Larger requests are refused, not clamped.
	MaxBatch     int
	MaxFetchWait time.Duration
	MaxCredit    int
	AckWait      time.Duration

	// Pacing (see session.paceStored): a session that stored messages
	// for an id whose session receives (subscribed or fetching), leaving
	// PaceBacklog of them (default 1024) untaken, reads nothing more
	// until that session has taken them below half of it, for at most
	// PaceWait (default 10 ms). A negative PaceWait turns pacing off.
	// Only Mailboxes that implement Backlogger are paced.
	PaceBacklog int
	PaceWait    time.Duration
}

// Metrics receives relay events; package metrics (or a test) implements it.
type Metrics interface {
	Connection(open bool)
	Attestation(result string)
	Frame(t wire.Type)
	Nack(t wire.Type, r Reason)
	Delivered()
}

// DeliveryMetrics is implemented by Metrics that also count the delivery
// extension's events; the relay finds it by type assertion.
type DeliveryMetrics interface {
	// Subscriptions changes the number of live subscriptions by delta.
	Subscriptions(delta int)
	// CreditGranted counts credit granted by SUBSCRIBE and CREDIT.
	CreditGranted(n int)
	// Pushed counts a DELIVER frame sent (by a subscription or a FETCH).
	Pushed(redelivered bool)
	// Acked counts acknowledged deliveries.
	Acked(n int)
	// AckWaitExpired counts deliveries released after the ack-wait.
	AckWaitExpired()
	// Released counts deliveries released when their session ended.
	Released(n int)
	// DuplicateDropped counts SEND_IDs dropped as duplicates.
	DuplicateDropped()
	// Paced counts a sending session's wait for a recipient to take
	// messages (timedOut false, when it starts), and a wait that ran out
	// (true).
	Paced(timedOut bool)
}

type noMetrics struct{}

func (noMetrics) Subscriptions(int) {}
func (noMetrics) CreditGranted(int) {}
func (noMetrics) Pushed(bool)       {}
func (noMetrics) Acked(int)         {}
func (noMetrics) AckWaitExpired()   {}
func (noMetrics) Released(int)      {}
func (noMetrics) DuplicateDropped() {}
func (noMetrics) Paced(bool)        {}

func (noMetrics) Connection(bool)        {}
func (noMetrics) Attestation(string)     {}
func (noMetrics) Frame(wire.Type)        {}
func (noMetrics) Nack(wire.Type, Reason) {}
func (noMetrics) Delivered()             {}

// Server is the relay.
type Server struct {
	cfg    Config
	boxes  Mailboxes
	reg    registry
	log    *slog.Logger
	logKey []byte // HMAC key of idTag, random per Server

	mu       sync.Mutex
	sessions map[*session]struct{}
	lns      map[net.Listener]struct{}
	closing  atomic.Bool
	wg       sync.WaitGroup
	nextID   atomic.Uint64
	conns    atomic.Int64

	dm       DeliveryMetrics
	wmu      sync.RWMutex
	waiters  map[string]*waiter // id → its receiving extension session
	nWaiters atomic.Int64
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("relay: server closed")

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("relay: no TLS certificate")
	}
	if cfg.Peer == nil || cfg.Peer.Policy == nil {
		return nil, errors.New("relay: no attestation peer or client policy")
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = wire.DefaultMaxPayload
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 10000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	for _, c := range []struct {
		name string
		v    int64
	}{{"MaxBatch", int64(cfg.MaxBatch)}, {"MaxFetchWait", int64(cfg.MaxFetchWait)}, {"MaxCredit", int64(cfg.MaxCredit)}, {"AckWait", int64(cfg.AckWait)}, {"PaceBacklog", int64(cfg.PaceBacklog)}} {
		if c.v < 0 {
			return nil, fmt.Errorf("relay: Config.%s is negative", c.name)
		}
	}
	if cfg.MaxBatch > 0xFFFF {
		return nil, fmt.Errorf("relay: Config.MaxBatch %d is over 65535 (FETCH states it in a u16)", cfg.MaxBatch)
	}
	if cfg.MaxFetchWait > 0xFFFFFFFF*time.Millisecond || cfg.AckWait > 0xFFFFFFFF*time.Millisecond {
		return nil, errors.New("relay: Config.MaxFetchWait and AckWait must fit in a u32 of milliseconds")
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 256
	}
	if cfg.MaxFetchWait == 0 {
		cfg.MaxFetchWait = 30 * time.Second
	}
	if cfg.MaxCredit == 0 {
		cfg.MaxCredit = 1024
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.PaceBacklog == 0 {
		cfg.PaceBacklog = 1024
	}
	if cfg.PaceWait == 0 {
		cfg.PaceWait = 10 * time.Millisecond
	}
	dm, ok := cfg.Metrics.(DeliveryMetrics)
	if !ok {
		dm = noMetrics{}
	}
	logKey := make([]byte, 32)
	if _, err := io.ReadFull(cfg.Rand, logKey); err != nil {
		return nil, fmt.Errorf("relay: generating the log key: %w", err)
	}
	boxes := cfg.Mailboxes
	if boxes == nil {
		boxes = NewMemoryMailboxes(cfg.Limits)
	}
	srv := &Server{
		cfg: cfg, boxes: boxes, log: cfg.Logger, logKey: logKey,
		reg:      registry{live: map[string]*session{}, bindings: cfg.Bindings, holders: cfg.Holders},
		sessions: map[*session]struct{}{},
		lns:      map[net.Listener]struct{}{},
		dm:       dm,
		waiters:  map[string]*waiter{},
	}
	if a, ok := boxes.(Arrivals); ok {
		a.OnArrival(srv.wake)
	}
	return srv, nil
}

// Serve accepts connections on ln until Shutdown, one goroutine each.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.conns.Add(1) > int64(s.cfg.MaxConns) {
			s.conns.Add(-1)
			s.log.Warn("connection refused: at the connection limit", "remote", c.RemoteAddr().String(), "max_conns", s.cfg.MaxConns)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.conns.Add(-1)
			s.handle(c)
		}()
	}
}

// Shutdown stops accepting, lets every session finish the request it is
// handling (its answer is flushed), closes the connections, and waits for
// them until ctx is done; then it closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	for sess := range s.sessions {
		sess.stop()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.conn.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (s *Server) handle(c net.Conn) {
	id := s.nextID.Add(1)
	log := s.log.With("conn", id, "remote", c.RemoteAddr().String())
	s.cfg.Metrics.Connection(true)
	defer s.cfg.Metrics.Connection(false)
	tc := tls.Server(c, atls.ServerConfig(s.cfg.Certificate))
	sess := &session{srv: s, conn: tc, log: log, stopCh: make(chan struct{})}
	if !s.track(sess) {
		c.Close()
		return
	}
	defer s.untrack(sess)
	defer tc.Close()

	report, err := s.cfg.Peer.Server(context.Background(), tc, s.cfg.Certificate.Certificate[0])
	if err != nil {
		reason := attestationFailure(err)
		s.cfg.Metrics.Attestation(reason)
		log.Info("attestation failed", "reason", reason, "err", err)
		return
	}
	s.cfg.Metrics.Attestation("ok")
	sess.peer = report
	log.Info("client attested", "mrenclave", report.MREnclave.String(), "mrsigner", report.MRSigner.String(),
		"tcb_status", string(report.TCBStatus), "simulated", report.Simulated)
	sess.serve()
	s.reg.release(sess)
	if sess.id != "" {
		log.Info("session closed", "id_tag", s.idTag(sess.id))
	} else {
		log.Info("session closed")
	}
}

// idTag is what the log says in place of a client id: the first 8 bytes of
// HMAC-SHA256 under a key drawn at New, in hex. The log is the host's, and
// ids never reach the host (docs/SECURITY.md); the tag is the same for an
// id throughout one run, so lines can be correlated, and differs between
// runs, so a table of tags built in one run is useless in the next.
func (s *Server) idTag(id string) string {
	m := hmac.New(sha256.New, s.logKey)
	m.Write([]byte("relay log id tag\x00"))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// attestationFailure names why a client's attestation failed, for metrics.
func attestationFailure(err error) string {
	var pe *attest.PolicyError
	switch {
	case errors.As(err, &pe):
		return "policy-" + pe.Rule
	case errors.Is(err, attest.ErrNotGenuine):
		return "not-genuine"
	case errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrMalformed):
		return "bad-message"
	case errors.Is(err, atls.ErrNoExporter):
		return "no-exporter"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, atls.ErrPeer) {
		return "io"
	}
	return "tls-handshake"
}

func (s *Server) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.sessions[sess] = struct{}{}
	return true
}

func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Totals returns the messages and bytes waiting in all mailboxes, if the
// mailbox store can tell (both built-in ones can).
func (s *Server) Totals() (messages, bytes int64) {
	if t, ok := s.boxes.(interface{ Totals() (int64, int64) }); ok {
		return t.Totals()
	}
	return 0, 0
}
