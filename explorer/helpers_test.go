package explorer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/explorer"
	"github.com/sharedenclave/sharedenclave/metrics"
	"github.com/sharedenclave/sharedenclave/relay"
)

// Facts about the real quote (testdata/dcap-real-quote-a/PROVENANCE.md).
const (
	realDir       = "../testdata/dcap-real-quote-a"
	realAt        = "2022-12-20T00:50:04Z"
	realMREnclave = "68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f"
	realMRSigner  = "9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"
)

func realQuote(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join(realDir, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func absRealDir(t testing.TB) string {
	d, err := filepath.Abs(realDir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startExplorer serves an explorer on loopback for the test.
func startExplorer(t testing.TB, cfg explorer.Config) *httptest.Server {
	t.Helper()
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 5 * time.Second
	}
	s, err := explorer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

// upload is one form submission: values and files.
type upload struct {
	values map[string]string
	files  map[string][]byte
}

func (u upload) body(t testing.TB) (*bytes.Buffer, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range u.values {
		mw.WriteField(k, v)
	}
	for k, v := range u.files {
		w, err := mw.CreateFormFile(k, k+".bin")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(v)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// analyze posts u to the explorer and decodes the answer: a Result on
// 200, an error body otherwise.
func analyze(t testing.TB, ts *httptest.Server, u upload) (int, *explorer.Result, apiErr) {
	t.Helper()
	body, ctype := u.body(t)
	req, _ := http.NewRequest("POST", ts.URL+"/api/analyze", body)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(explorer.APIHeader, "1")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		var e apiErr
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("status %d, body not JSON: %s", resp.StatusCode, raw)
		}
		return resp.StatusCode, nil, e
	}
	var r explorer.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("result not JSON: %v\n%s", err, raw)
	}
	return 200, &r, apiErr{}
}

type apiErr struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

func realUpload(t testing.TB, quote []byte) upload {
	return upload{
		values: map[string]string{"source": "dir", "location": absRealDir(t), "at": realAt},
		files:  map[string][]byte{"quote_file": quote},
	}
}

func stepResults(r *explorer.Result) map[string]explorer.Step {
	m := map[string]explorer.Step{}
	for _, s := range r.Steps {
		m[s.ID] = s
	}
	return m
}

// startRelay runs a relay in simulation on the platform in simDir
// (created if missing), with its Prometheus endpoint, the way relayd wires
// them. It returns the relay's address and the metrics address.
func startRelay(t testing.TB, simDir string) (relayAddr, metricsAddr string) {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := atls.NewKeyCertificate(atls.CertOptions{CommonName: "Shared Enclave relay"})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New("relayd", be.Simulated)
	var srv *relay.Server
	m := reg.NewRelay(func() (int64, int64) { return srv.Totals() })
	srv, err = relay.New(relay.Config{Metrics: m, Certificate: cert, Peer: &atls.Peer{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	ms := httptest.NewServer(reg.Handler())
	reg.SetReady(true)
	t.Cleanup(func() {
		ms.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), strings.TrimPrefix(ms.URL, "http://")
}

// relayTraffic connects a client of the platform in simDir to the relay,
// registers id, sends n messages to itself and polls half of them back.
func relayTraffic(t testing.TB, simDir, addr, id string, n int) {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Register(id); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := c.Send(id, []byte("hello from the explorer test")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n/2; i++ {
		if _, _, _, err := c.Poll(); err != nil {
			t.Fatal(err)
		}
	}
}
