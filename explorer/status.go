package explorer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxMetrics bounds a metrics page read from a server.
const maxMetrics = 4 << 20

// Status is a relayd's or kmsd's state, drawn from its metrics endpoint.
type Status struct {
	URL       string       `json:"url"`
	Service   string       `json:"service"` // "relayd", "kmsd" or "unknown"
	Simulated bool         `json:"simulated"`
	FetchedAt string       `json:"fetched_at"`
	Relay     *RelayStatus `json:"relay,omitempty"`
	KMS       *KMSStatus   `json:"kms,omitempty"`
	Process   ProcStatus   `json:"process"`
}

// Labeled is one series of a counter vector.
type Labeled struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// RelayStatus holds relayd's metrics (package metrics names them).
type RelayStatus struct {
	Connections      float64   `json:"connections"`
	ConnectionsTotal float64   `json:"connections_total"`
	Delivered        float64   `json:"delivered"`
	MailboxMessages  float64   `json:"mailbox_messages"`
	MailboxBytes     float64   `json:"mailbox_bytes"`
	Attestations     []Labeled `json:"attestations"`
	Frames           []Labeled `json:"frames"`
	Nacks            []Labeled `json:"nacks"`
}

// KMSStatus holds kmsd's metrics.
type KMSStatus struct {
	Keys     float64     `json:"keys"`
	Requests []Labeled   `json:"requests"`
	Latency  []OpLatency `json:"latency"`
}

// OpLatency is one operation's request count and mean latency.
type OpLatency struct {
	Operation   string  `json:"operation"`
	Count       uint64  `json:"count"`
	MeanSeconds float64 `json:"mean_seconds"`
}

// ProcStatus is the process metrics every service exports.
type ProcStatus struct {
	Goroutines    float64 `json:"goroutines"`
	ResidentBytes float64 `json:"resident_bytes"`
	StartTime     string  `json:"start_time,omitempty"`
}

// metricsURL turns what the user typed (HOST:PORT or an http(s) URL)
// into the URL of the metrics page.
func metricsURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return "", &RequestError{"metrics", fmt.Sprintf("%q is not a URL", addr)}
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/metrics"
		}
		return u.String(), nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", &RequestError{"metrics", fmt.Sprintf("%q is not HOST:PORT or an http:// URL", addr)}
	}
	return "http://" + addr + "/metrics", nil
}

// Status fetches and summarizes the metrics at addr.
func (s *Server) Status(ctx context.Context, addr string) (*Status, error) {
	u, err := metricsURL(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &RequestError{"metrics", err.Error()}
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, &RequestError{"metrics", fmt.Sprintf("cannot reach %s: %v", u, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &RequestError{"metrics", fmt.Sprintf("%s answered %s", u, resp.Status)}
	}
	if resp.ContentLength > maxMetrics {
		return nil, &RequestError{"metrics", fmt.Sprintf("%s: %d bytes, over the %d-byte limit", u, resp.ContentLength, maxMetrics)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetrics+1))
	if err != nil {
		return nil, &RequestError{"metrics", fmt.Sprintf("reading %s: %v", u, err)}
	}
	if len(body) > maxMetrics {
		return nil, &RequestError{"metrics", fmt.Sprintf("%s: over the %d-byte limit", u, maxMetrics)}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, &RequestError{"metrics", fmt.Sprintf("%s is not a Prometheus text page: %v", u, err)}
	}
	return summarize(u, fams, s.cfg.Now()), nil
}

func summarize(u string, fams map[string]*dto.MetricFamily, now time.Time) *Status {
	st := &Status{URL: u, Service: "unknown", FetchedAt: now.UTC().Format(time.RFC3339)}
	one := func(name string) float64 {
		f := fams[name]
		if f == nil || len(f.Metric) == 0 {
			return 0
		}
		return value(f.Metric[0])
	}
	vec := func(name string, labels ...string) []Labeled {
		out := []Labeled{}
		f := fams[name]
		if f == nil {
			return out
		}
		for _, m := range f.Metric {
			var parts []string
			for _, l := range labels {
				for _, lp := range m.Label {
					if lp.GetName() == l {
						parts = append(parts, lp.GetValue())
					}
				}
			}
			out = append(out, Labeled{Label: strings.Join(parts, " "), Value: value(m)})
		}
		slices.SortFunc(out, func(a, b Labeled) int { return strings.Compare(a.Label, b.Label) })
		return out
	}
	st.Simulated = one("shared_enclave_simulated") == 1
	if f := fams["shared_enclave_simulated"]; f != nil && len(f.Metric) > 0 {
		for _, lp := range f.Metric[0].Label {
			if lp.GetName() == "service" {
				st.Service = lp.GetValue()
			}
		}
	}
	if fams["relay_connections_total"] != nil {
		if st.Service == "unknown" {
			st.Service = "relayd"
		}
		st.Relay = &RelayStatus{
			Connections: one("relay_connections"), ConnectionsTotal: one("relay_connections_total"),
			Delivered: one("relay_delivered_total"), MailboxMessages: one("relay_mailbox_messages"), MailboxBytes: one("relay_mailbox_bytes"),
			Attestations: vec("relay_attestations_total", "result"), Frames: vec("relay_frames_total", "type"), Nacks: vec("relay_nacks_total", "type", "reason"),
		}
	}
	if fams["kms_requests_total"] != nil || fams["kms_request_duration_seconds"] != nil || fams["kms_keys"] != nil {
		if st.Service == "unknown" {
			st.Service = "kmsd"
		}
		k := &KMSStatus{Keys: one("kms_keys"), Requests: vec("kms_requests_total", "operation", "status"), Latency: []OpLatency{}}
		if f := fams["kms_request_duration_seconds"]; f != nil {
			for _, m := range f.Metric {
				h := m.GetHistogram()
				if h == nil {
					continue
				}
				op := ""
				for _, lp := range m.Label {
					if lp.GetName() == "operation" {
						op = lp.GetValue()
					}
				}
				l := OpLatency{Operation: op, Count: h.GetSampleCount()}
				if l.Count > 0 {
					l.MeanSeconds = h.GetSampleSum() / float64(l.Count)
				}
				k.Latency = append(k.Latency, l)
			}
			slices.SortFunc(k.Latency, func(a, b OpLatency) int { return strings.Compare(a.Operation, b.Operation) })
		}
		st.KMS = k
	}
	st.Process.Goroutines = one("go_goroutines")
	st.Process.ResidentBytes = one("process_resident_memory_bytes")
	if t := one("process_start_time_seconds"); t > 0 {
		st.Process.StartTime = time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
	}
	return st
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
