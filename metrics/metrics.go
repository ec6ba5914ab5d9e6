// Package metrics exposes Prometheus metrics and health endpoints on a
// listener separate from the service's own. No label ever carries a
// client id, a key name, a payload or a token: labels are frame types,
// reasons, operations and statuses from fixed sets.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/wire"
)

// Registry holds one process's metrics and its readiness.
type Registry struct {
	reg   *prometheus.Registry
	ready atomic.Bool
}

// New returns a registry with Go runtime and process collectors and a
// gauge saying whether attestation is simulated.
func New(service string, simulated bool) *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sim := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shared_enclave_simulated", Help: "1 if attestation uses a simulated SGX platform (not a real enclave).",
		ConstLabels: prometheus.Labels{"service": service},
	})
	if simulated {
		sim.Set(1)
	}
	reg.MustRegister(sim)
	return &Registry{reg: reg}
}

// StoreSequence exports the sealed open counter of the service's store
// (store.Store.Sequence) as shared_enclave_store_sequence. It only grows
// while the same data dir is in use: a monitoring system that sees it go
// down has seen an older copy of the data dir put back (a rollback).
func (r *Registry) StoreSequence(seq uint64) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shared_enclave_store_sequence",
		Help: "Times the data dir's store has been opened, a sealed counter; lower than before means an older copy (rollback)."})
	g.Set(float64(seq))
	r.reg.MustRegister(g)
}

// SetReady marks the service ready (or not) for /readyz.
func (r *Registry) SetReady(ok bool) { r.ready.Store(ok) }

// Handler serves /metrics, /healthz (alive) and /readyz (serving).
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !r.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// Relay implements relay.Metrics.
type Relay struct {
	conns        prometheus.Gauge
	connsTotal   prometheus.Counter
	attestations *prometheus.CounterVec
	frames       *prometheus.CounterVec
	nacks        *prometheus.CounterVec
	delivered    prometheus.Counter
	// The delivery extension (relay.DeliveryMetrics).
	subscriptions prometheus.Gauge
	credit        prometheus.Counter
	pushed        *prometheus.CounterVec
	acked         prometheus.Counter
	ackWait       prometheus.Counter
	released      prometheus.Counter
	duplicates    prometheus.Counter
	paced         prometheus.Counter
	paceTimeouts  prometheus.Counter

	// The counters of the per-message paths, each looked up by its label
	// values once (a lookup validates, hashes and finds them again: about
	// 100 ns, several times per message) and created on first use, so
	// that the exposition shows only what happened. The keys come from
	// fixed sets (frame types, reasons), so the caches stay small.
	frameC  [256]atomic.Pointer[prometheus.Counter] // by frame type
	pushedC [2]atomic.Pointer[prometheus.Counter]   // by redelivered
	nackMu  sync.RWMutex
	nackC   map[uint16]prometheus.Counter // by frame type << 8 | reason
}

// cached returns the counter in slot, making it with mk the first time.
func cached(slot *atomic.Pointer[prometheus.Counter], mk func() prometheus.Counter) prometheus.Counter {
	if c := slot.Load(); c != nil {
		return *c
	}
	c := mk()
	slot.CompareAndSwap(nil, &c)
	return *slot.Load()
}

// Depth reports the total messages and bytes waiting in all mailboxes.
type Depth func() (messages int64, bytes int64)

// NewRelay registers the relay's metrics.
func (r *Registry) NewRelay(depth Depth) *Relay {
	m := &Relay{
		conns:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_connections", Help: "Open client connections."}),
		connsTotal:   prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_connections_total", Help: "Accepted client connections."}),
		attestations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_attestations_total", Help: "Client attestations by result (ok, or the reason it failed)."}, []string{"result"}),
		frames:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_frames_total", Help: "Frames received by type."}, []string{"type"}),
		nacks:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_nacks_total", Help: "NACKs sent by type and reason."}, []string{"type", "reason"}),
		delivered:    prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_delivered_total", Help: "Messages delivered by POLL."}),
		nackC:        map[uint16]prometheus.Counter{},
	}
	m.subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_subscriptions", Help: "Live push subscriptions."})
	m.credit = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_credit_granted_total", Help: "Credit granted by SUBSCRIBE and CREDIT, in messages."})
	m.pushed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_pushed_total", Help: "DELIVER frames sent (subscriptions and FETCH), by whether the message was redelivered."}, []string{"redelivered"})
	m.acked = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_acked_total", Help: "Deliveries acknowledged."})
	m.ackWait = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_ack_wait_expired_total", Help: "Deliveries released for redelivery because their ack-wait expired."})
	m.released = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_released_total", Help: "Unacknowledged deliveries released for redelivery because their session ended."})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_duplicates_dropped_total", Help: "SEND_IDs dropped as duplicates of a message id in the de-duplication window."})
	m.paced = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_paced_sends_total", Help: "Times a sending session waited for a recipient's receiving session to take messages (its backlog at --pace-backlog)."})
	m.paceTimeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_pace_timeouts_total", Help: "Pacing waits that ran out (--pace-wait) before the recipient took its backlog below half; the sender then carried on."})
	r.reg.MustRegister(m.conns, m.connsTotal, m.attestations, m.frames, m.nacks, m.delivered,
		m.subscriptions, m.credit, m.pushed, m.acked, m.ackWait, m.released, m.duplicates, m.paced, m.paceTimeouts)
	if depth != nil {
		r.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_mailbox_messages", Help: "Messages waiting in all mailboxes."}, func() float64 { n, _ := depth(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_mailbox_bytes", Help: "Data bytes waiting in all mailboxes."}, func() float64 { _, b := depth(); return float64(b) }),
		)
	}
	return m
}

// Connection implements relay.Metrics.
func (m *Relay) Connection(open bool) {
	if open {
		m.conns.Inc()
		m.connsTotal.Inc()
	} else {
		m.conns.Dec()
	}
}

// Attestation implements relay.Metrics.
func (m *Relay) Attestation(result string) { m.attestations.WithLabelValues(result).Inc() }

// Frame implements relay.Metrics. Unknown types share one label value.
func (m *Relay) Frame(t wire.Type) {
	cached(&m.frameC[t], func() prometheus.Counter {
		name := t.String()
		if !t.Known() && !t.Extension() {
			name = "UNKNOWN"
		}
		return m.frames.WithLabelValues(name)
	}).Inc()
}

// Nack implements relay.Metrics. The label comes from the reason's own
// fixed table (relay.Reason.Label), never from text a client influenced.
func (m *Relay) Nack(t wire.Type, r relay.Reason) {
	k := uint16(t)<<8 | uint16(r)
	m.nackMu.RLock()
	c := m.nackC[k]
	m.nackMu.RUnlock()
	if c == nil {
		m.nackMu.Lock()
		if c = m.nackC[k]; c == nil {
			c = m.nacks.WithLabelValues(t.String(), r.Label())
			m.nackC[k] = c
		}
		m.nackMu.Unlock()
	}
	c.Inc()
}

// Delivered implements relay.Metrics.
func (m *Relay) Delivered() { m.delivered.Inc() }

// Subscriptions implements relay.DeliveryMetrics.
func (m *Relay) Subscriptions(delta int) { m.subscriptions.Add(float64(delta)) }

// CreditGranted implements relay.DeliveryMetrics.
func (m *Relay) CreditGranted(n int) { m.credit.Add(float64(n)) }

// Pushed implements relay.DeliveryMetrics.
func (m *Relay) Pushed(redelivered bool) {
	i := 0
	if redelivered {
		i = 1
	}
	cached(&m.pushedC[i], func() prometheus.Counter {
		return m.pushed.WithLabelValues(strconv.FormatBool(redelivered))
	}).Inc()
}

// Acked implements relay.DeliveryMetrics.
func (m *Relay) Acked(n int) { m.acked.Add(float64(n)) }

// AckWaitExpired implements relay.DeliveryMetrics.
func (m *Relay) AckWaitExpired() { m.ackWait.Inc() }

// Released implements relay.DeliveryMetrics.
func (m *Relay) Released(n int) { m.released.Add(float64(n)) }

// DuplicateDropped implements relay.DeliveryMetrics.
func (m *Relay) DuplicateDropped() { m.duplicates.Inc() }

// Paced implements relay.DeliveryMetrics.
func (m *Relay) Paced(timedOut bool) {
	if timedOut {
		m.paceTimeouts.Inc()
	} else {
		m.paced.Inc()
	}
}

var _ relay.DeliveryMetrics = (*Relay)(nil)

// KMS implements kms.Metrics.
type KMS struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewKMS registers the KMS's metrics; keys reports the number of keys.
func (r *Registry) NewKMS(keys func() int) *KMS {
	m := &KMS{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kms_requests_total", Help: "Requests by operation and HTTP status."}, []string{"operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kms_request_duration_seconds", Help: "Time to answer a request, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"operation"}),
	}
	r.reg.MustRegister(m.requests, m.latency)
	if keys != nil {
		r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kms_keys", Help: "Keys held."}, func() float64 { return float64(keys()) }))
	}
	return m
}

// Request implements kms.Metrics.
func (m *KMS) Request(op string, status int, took time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(op).Observe(took.Seconds())
}
