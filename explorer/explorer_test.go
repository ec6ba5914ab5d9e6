package explorer_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/attest/verdict"
	"github.com/sharedenclave/sharedenclave/explorer"
	"github.com/sharedenclave/sharedenclave/kms/kmstest"
	"github.com/sharedenclave/sharedenclave/metrics"
)

// The real Intel quote at its time: every step passes, and the page has
// what a person checks — status, measurement, the matched TCB level with
// its advisories, the PCK extensions, the layout.
func TestRealQuote(t *testing.T) {
	ts := startExplorer(t, explorer.Config{})
	code, r, e := analyze(t, ts, realUpload(t, realQuote(t)))
	if code != 200 {
		t.Fatalf("status %d: %s", code, e.Error)
	}
	v := r.Verdict
	if !v.Genuine || !v.Acceptable || v.TCBStatus != attest.SWHardeningNeeded || v.MREnclave.String() != realMREnclave || v.MRSigner.String() != realMRSigner {
		t.Fatalf("verdict %+v", v)
	}
	wantAdv := []string{"INTEL-SA-00615", "INTEL-SA-00657"}
	if !slices.Equal(v.AdvisoryIDs, wantAdv) {
		t.Errorf("advisories %v, want %v", v.AdvisoryIDs, wantAdv)
	}
	if r.Simulated {
		t.Error("a real Intel quote is flagged as simulated")
	}
	for _, s := range r.Steps {
		if s.Result != "passed" {
			t.Errorf("step %s: %s (%s)", s.ID, s.Result, s.Reason)
		}
	}
	if len(r.Steps) != 11 {
		t.Errorf("%d steps, want 10 dcap steps and the policy", len(r.Steps))
	}
	tcb := r.TCB
	if tcb == nil || !tcb.Verified || tcb.Matched < 0 {
		t.Fatalf("TCB table %+v", tcb)
	}
	lvl := tcb.Levels[tcb.Matched]
	if lvl.Status != "SWHardeningNeeded" || lvl.TCBDate != "2022-08-10T00:00:00Z" || !slices.Equal(lvl.AdvisoryIDs, wantAdv) {
		t.Errorf("matched level %d: %+v", tcb.Matched, lvl)
	}
	if tcb.FMSPC != "00606A000000" && !strings.EqualFold(tcb.FMSPC, "00606a000000") {
		t.Errorf("TCB info FMSPC %s", tcb.FMSPC)
	}
	if r.PCK == nil || r.PCK.FMSPC != "00606a000000" || r.PCK.PCESVN != 13 || len(r.PCK.CompSVN) != 16 {
		t.Errorf("PCK extensions %+v", r.PCK)
	}
	if len(r.PCKChain) != 3 || !strings.Contains(r.PCKChain[2].Subject, "Intel SGX Root CA") {
		t.Errorf("PCK chain %+v", r.PCKChain)
	}
	// The layout: MRENCLAVE at byte 112 (48-byte header + 64), holding
	// the measurement; the last field ends at the last byte.
	var mr, last explorer.Field
	for _, f := range r.Fields {
		if f.Section == "ISV enclave report" && f.Name == "MRENCLAVE" {
			mr = f
		}
		last = f
	}
	if mr.Offset != 112 || mr.Size != 32 || mr.Hex != realMREnclave {
		t.Errorf("MRENCLAVE field %+v", mr)
	}
	if last.Offset+last.Size != r.QuoteSize || r.QuoteSize != len(realQuote(t)) {
		t.Errorf("last field %+v ends at %d, quote is %d bytes", last, last.Offset+last.Size, r.QuoteSize)
	}
}

// The downloadable report is byte for byte what verdict.Judge gives
// `enclavectl quote verify` (cmd/enclavectl compares the two outputs; here
// the JSON is checked to be the verdict itself).
func TestVerdictJSONIsTheVerdict(t *testing.T) {
	ts := startExplorer(t, explorer.Config{})
	_, r, _ := analyze(t, ts, realUpload(t, realQuote(t)))
	var v verdict.Verdict
	if err := json.Unmarshal([]byte(r.VerdictJSON), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Genuine || v.MREnclave.String() != realMREnclave || v.TCBStatus != attest.SWHardeningNeeded {
		t.Errorf("verdict JSON %s", r.VerdictJSON)
	}
}

// Hex, base64 and EGo-framed input read the same quote.
func TestInputEncodings(t *testing.T) {
	ts := startExplorer(t, explorer.Config{})
	q := realQuote(t)
	for name, in := range map[string]string{
		"hex":    hex.EncodeToString(q),
		"base64": base64.StdEncoding.EncodeToString(q),
	} {
		u := realUpload(t, nil)
		u.files = nil
		u.values["quote_text"] = in
		code, r, e := analyze(t, ts, u)
		if code != 200 || !r.Verdict.Genuine || r.Input != name {
			t.Errorf("%s: status %d %s, input %q", name, code, e.Error, inputOf(r))
		}
	}
}

func inputOf(r *explorer.Result) string {
	if r == nil {
		return ""
	}
	return r.Input
}

// A tampered quote: one byte of MRENCLAVE flipped. The ISV signature step
// fails with its reason; the steps before it passed, the ones after it
// did not run.
func TestTamperedQuote(t *testing.T) {
	ts := startExplorer(t, explorer.Config{})
	q := realQuote(t)
	q[112] ^= 1
	code, r, e := analyze(t, ts, realUpload(t, q))
	if code != 200 {
		t.Fatalf("status %d: %s", code, e.Error)
	}
	if r.Verdict.Genuine || r.Verdict.FailedStep != string(dcap.StepISVSignature) {
		t.Fatalf("verdict %+v", r.Verdict)
	}
	seen := "passed"
	for _, s := range r.Steps {
		switch {
		case s.ID == string(dcap.StepISVSignature):
			if s.Result != "failed" || !strings.Contains(s.Reason, "ISV report signature does not verify") {
				t.Errorf("failing step %+v", s)
			}
			seen = "not run"
		case s.Result != seen:
			t.Errorf("step %s: %s, want %s", s.ID, s.Result, seen)
		}
	}
	if !strings.Contains(r.Verdict.Hint, "altered or forged") {
		t.Errorf("hint %q", r.Verdict.Hint)
	}
}

// A simulated quote checked against its platform: genuine, flagged
// simulated. The same quote under Intel's root: not genuine, still
// flagged, with the hint naming the simulated root.
func TestSimulatedQuoteFlagged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	p, err := sim.Init(dir, sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.Quote(sim.Identity{MREnclave: attest.Hash32{1, 2, 3}, ISVProdID: 7, ISVSVN: 3}, [64]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	ts := startExplorer(t, explorer.Config{})
	code, r, e := analyze(t, ts, upload{values: map[string]string{"source": "sim", "location": dir}, files: map[string][]byte{"quote_file": q}})
	if code != 200 {
		t.Fatalf("status %d: %s", code, e.Error)
	}
	if !r.Simulated || !r.Verdict.Genuine || !r.Verdict.Simulated || !r.Verdict.Acceptable {
		t.Fatalf("simulated %v, verdict %+v", r.Simulated, r.Verdict)
	}
	// The policy lines accept exactly this enclave.
	f, err := policyfile.Parse([]byte(r.PolicyLines))
	if err != nil {
		t.Fatalf("policy lines do not parse: %v\n%s", err, r.PolicyLines)
	}
	pol, _ := f.Peers.Policy()
	if err := pol.Check(r.Verdict.Report); err != nil {
		t.Errorf("policy lines refuse their own enclave: %v\n%s", err, r.PolicyLines)
	}
	other := *r.Verdict.Report
	other.MREnclave = attest.Hash32{4}
	if pol.Check(&other) == nil {
		t.Error("policy lines accept another MRENCLAVE")
	}
	// Under Intel's root.
	code, r, _ = analyze(t, ts, upload{values: map[string]string{"source": "dir", "location": filepath.Join(dir, "collateral")}, files: map[string][]byte{"quote_file": q}})
	if code != 200 || r.Verdict.Genuine || !r.Simulated || !strings.Contains(r.Verdict.Hint, "looks simulated") {
		t.Fatalf("under Intel's root: status %d, simulated %v, verdict %+v", code, r.Simulated, r.Verdict)
	}
	if s := stepResults(r)[string(dcap.StepPCKChain)]; s.Result != "failed" {
		t.Errorf("pck-chain step %+v", s)
	}
}

// A policy file decides; a bad one is refused naming the field.
func TestPolicyFile(t *testing.T) {
	ts := startExplorer(t, explorer.Config{})
	u := realUpload(t, realQuote(t))
	u.values["policy_text"] = "[peers]\nmrenclave = [\"" + strings.Repeat("00", 32) + "\"]\n"
	_, r, _ := analyze(t, ts, u)
	if !r.Verdict.Genuine || r.Verdict.Acceptable || r.Verdict.PolicyRule != "mrenclave" || stepResults(r)["policy"].Result != "failed" {
		t.Errorf("verdict %+v", r.Verdict)
	}
	u.values["policy_text"] = "[peers]\nmrenclave = [\"" + realMREnclave + "\"]\n"
	if _, r, _ = analyze(t, ts, u); !r.Verdict.Acceptable {
		t.Errorf("policy naming the enclave: %+v", r.Verdict)
	}
	u.values["policy_text"] = "[peers]\nbogus = 1\n"
	code, _, e := analyze(t, ts, u)
	if code != 400 || e.Field != "policy" {
		t.Errorf("bad policy: %d %+v", code, e)
	}
}

// RA-TLS certificates in the three formats, PEM and DER.
func TestRATLSCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	p, err := sim.Init(dir, sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := startExplorer(t, explorer.Config{})
	for _, f := range []atls.Format{atls.GramineStandard, atls.GramineLegacy, atls.EGo} {
		cert, err := atls.NewCertificate(context.Background(), p.Attester(sim.Identity{MREnclave: attest.Hash32{5}}), atls.CertOptions{}, f)
		if err != nil {
			t.Fatal(err)
		}
		der := cert.Certificate[0]
		for enc, in := range map[string][]byte{"PEM certificate": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "DER certificate": der} {
			code, r, e := analyze(t, ts, upload{values: map[string]string{"source": "sim", "location": dir}, files: map[string][]byte{"quote_file": in}})
			if code != 200 {
				t.Fatalf("%s %s: %d %s", f, enc, code, e.Error)
			}
			c := r.Certificate
			if r.Input != enc || c == nil || c.Used != f.String() || !c.Binding || !r.Verdict.Genuine || !r.Simulated {
				t.Errorf("%s %s: input %q cert %+v genuine %v", f, enc, r.Input, c, r.Verdict.Genuine)
			}
		}
	}
}

// Bad input: each a clear message, as JSON, naming the field.
func TestBadInput(t *testing.T) {
	ts := startExplorer(t, explorer.Config{MaxRequestBytes: 200 << 10})
	q := realQuote(t)

	// Oversized upload: refused before reading.
	code, _, e := analyze(t, ts, realUpload(t, make([]byte, 300<<10)))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(e.Error, "over the") {
		t.Errorf("oversized: %d %+v", code, e)
	}
	// Garbage: the parse step fails with sgxquote's message.
	code, r, _ := analyze(t, ts, realUpload(t, []byte("this is not a quote at all, just some text")))
	if code != 200 || r.Verdict.FailedStep != "parse" || r.ParseError == "" || stepResults(r)["parse"].Result != "failed" || !strings.Contains(r.Verdict.Hint, "not an SGX ECDSA quote") {
		t.Errorf("garbage: %d %+v", code, r)
	}
	// Truncated certification section, as cut: the lengths no longer add up.
	code, r, _ = analyze(t, ts, realUpload(t, q[:len(q)-100]))
	if code != 200 || r.Verdict.FailedStep != "parse" || !strings.Contains(stepResults(r)["parse"].Reason, "signature data length 4294, but 4194 bytes follow") {
		t.Errorf("truncated: %d %+v", code, r.Verdict)
	}
	// Truncated certification section with its lengths rewritten to
	// match: the quote parses, and the PCK chain step says what is wrong.
	pq, err := sgxquote.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	pq.CertData = pq.CertData[:len(pq.CertData)-100]
	short, err := pq.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	code, r, _ = analyze(t, ts, realUpload(t, short))
	if code != 200 || r.Verdict.FailedStep != "pck-chain" || stepResults(r)["pck-chain"].Reason == "" || len(r.Fields) == 0 {
		t.Errorf("truncated chain: %d %+v", code, r.Verdict)
	}
	// Empty.
	code, _, e = analyze(t, ts, upload{values: map[string]string{"source": "dir", "location": absRealDir(t)}})
	if code != 400 || !strings.Contains(e.Error, "empty") {
		t.Errorf("empty: %d %+v", code, e)
	}
	// A certificate without RA-TLS evidence.
	plain, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, e = analyze(t, ts, realUpload(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: plain.Certificate[0]})))
	if code != 400 || !strings.Contains(e.Error, "no RA-TLS extension") {
		t.Errorf("plain certificate: %d %+v", code, e)
	}
	// Unreachable server.
	code, _, e = analyze(t, ts, upload{values: map[string]string{"source": "dir", "location": absRealDir(t), "address": "127.0.0.1:1", "kind": "kmsd"}})
	if code != http.StatusBadGateway || e.Field != "address" || !strings.Contains(e.Error, "cannot reach 127.0.0.1:1") {
		t.Errorf("unreachable: %d %+v", code, e)
	}
	// Not HOST:PORT.
	code, _, e = analyze(t, ts, upload{values: map[string]string{"source": "dir", "location": absRealDir(t), "address": "nonsense", "kind": "kmsd"}})
	if code != http.StatusBadGateway || e.Field != "address" {
		t.Errorf("bad address: %d %+v", code, e)
	}
	// Bad time, unknown source, unknown field, missing collateral dir.
	for name, tc := range map[string]struct {
		values map[string]string
		field  string
	}{
		"bad at":         {map[string]string{"source": "dir", "location": absRealDir(t), "at": "yesterday"}, "at"},
		"unknown source": {map[string]string{"source": "ftp", "location": absRealDir(t)}, "source"},
		"unknown field":  {map[string]string{"source": "dir", "location": absRealDir(t), "colour": "red"}, "colour"},
		"no location":    {map[string]string{"source": "dir"}, "collateral"},
		"sim with root":  {map[string]string{"source": "sim", "location": "/nonexistent", "root": "/x.pem"}, "root"},
	} {
		code, _, e := analyze(t, ts, upload{values: tc.values, files: map[string][]byte{"quote_file": q}})
		if code != 400 || e.Field != tc.field || e.Error == "" {
			t.Errorf("%s: %d %+v", name, code, e)
		}
	}
	// A missing collateral directory: the collateral step fails, with a hint.
	code, r, _ = analyze(t, ts, upload{values: map[string]string{"source": "dir", "location": "/nonexistent", "at": realAt}, files: map[string][]byte{"quote_file": q}})
	if code != 200 || r.Verdict.FailedStep != "collateral" || r.Verdict.Hint == "" {
		t.Errorf("missing collateral: %d %+v", code, r.Verdict)
	}
	// The wrong time: the PCK chain is not yet valid.
	u := realUpload(t, q)
	u.values["at"] = "2020-01-01T00:00:00Z"
	if _, r, _ = analyze(t, ts, u); r.Verdict.FailedStep != "pck-chain" || !strings.Contains(r.Verdict.Hint, "--at") {
		t.Errorf("wrong time: %+v", r.Verdict)
	}
}

// The page and API refuse what could let another web page use the
// explorer, and every response carries the CSP.
func TestSafeByConstruction(t *testing.T) {
	ts := startExplorer(t, explorer.Config{})
	get := func(path string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	for _, path := range []string{"/", "/status", "/static/explorer.js", "/static/style.css"} {
		resp, body := get(path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != explorer.CSP || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, headers %v", path, resp.StatusCode, resp.Header)
		}
		if strings.HasSuffix(path, "/") || path == "/status" {
			if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, "<style") || strings.Contains(body, "onclick") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
				t.Errorf("%s has inline script or style, or an external reference", path)
			}
		}
	}
	if !strings.Contains(explorer.CSP, "script-src 'self'") || strings.Contains(explorer.CSP, "unsafe") {
		t.Errorf("CSP %q", explorer.CSP)
	}
	if resp, _ := get("/", map[string]string{"Host": "evil.example:80"}); resp.StatusCode != 403 {
		t.Errorf("rebinding Host: %d", resp.StatusCode)
	}
	if resp, _ := get("/api/status?addr=127.0.0.1:1", nil); resp.StatusCode != 403 {
		t.Errorf("API without its header: %d", resp.StatusCode)
	}
	if resp, _ := get("/api/status?addr=127.0.0.1:1", map[string]string{explorer.APIHeader: "1", "Origin": "http://evil.example"}); resp.StatusCode != 403 {
		t.Errorf("cross-origin API call: %d", resp.StatusCode)
	}
	if resp, body := get("/api/status?addr=127.0.0.1:1", map[string]string{explorer.APIHeader: "1"}); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "cannot reach") {
		t.Errorf("unreachable metrics: %d %s", resp.StatusCode, body)
	}
}

// Live: kmsd's RA-TLS certificate from the handshake; relayd's quote from
// the attestation exchange (the explorer attesting as a simulated client).
func TestLiveServers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	kmsAddr, _ := kmstest.StartSim(t, dir)
	relayAddr, _ := startRelay(t, dir)
	ts := startExplorer(t, explorer.Config{})
	for _, kind := range []string{"kmsd", "relayd"} {
		addr := kmsAddr
		if kind == "relayd" {
			addr = relayAddr
		}
		code, r, e := analyze(t, ts, upload{values: map[string]string{"source": "sim", "location": dir, "address": addr, "kind": kind}})
		if code != 200 {
			t.Fatalf("%s: %d %s", kind, code, e.Error)
		}
		if !r.Verdict.Genuine || !r.Simulated || r.Live == nil || r.Live.Address != addr {
			t.Errorf("%s: verdict %+v live %+v", kind, r.Verdict, r.Live)
		}
		bound := r.Live.Binding
		if kind == "kmsd" {
			bound = r.Certificate != nil && r.Certificate.Binding
		}
		if !bound {
			t.Errorf("%s: quote does not bind the connection: %+v %+v", kind, r.Live, r.Certificate)
		}
	}
	// relayd without a simulated platform: explained, not attempted.
	code, _, e := analyze(t, ts, upload{values: map[string]string{"source": "dir", "location": absRealDir(t), "address": relayAddr, "kind": "relayd"}})
	if code != http.StatusBadGateway || !strings.Contains(e.Error, "attests first") {
		t.Errorf("relayd without sim: %d %+v", code, e)
	}
}

// The status page's numbers come from relayd's metrics and move with
// traffic.
func TestStatusFromRelayMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	relayAddr, metricsAddr := startRelay(t, dir)
	ts := startExplorer(t, explorer.Config{})
	status := func() *explorer.Status {
		req, _ := http.NewRequest("GET", ts.URL+"/api/status?addr="+metricsAddr, nil)
		req.Header.Set(explorer.APIHeader, "1")
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s explorer.Status
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&s) != nil {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return &s
	}
	before := status()
	if before.Service != "relayd" || !before.Simulated || before.Relay == nil || before.Relay.Delivered != 0 {
		t.Fatalf("before: %+v", before)
	}
	relayTraffic(t, dir, relayAddr, "alice", 4)
	after := status()
	r := after.Relay
	if r.ConnectionsTotal != 1 || r.Delivered != 2 || r.MailboxMessages != 2 || r.MailboxBytes == 0 {
		t.Errorf("after traffic: %+v", r)
	}
	if !slices.ContainsFunc(r.Attestations, func(l explorer.Labeled) bool { return l.Label == "ok" && l.Value == 1 }) {
		t.Errorf("attestations %+v", r.Attestations)
	}
}

// A PCCS URL as the collateral source: the simulated platform's
// collateral served at Intel PCS v4 paths (as `enclavectl sim serve` does).
func TestPCCSSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	p, err := sim.Init(dir, sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.Quote(sim.Identity{MREnclave: attest.Hash32{1}}, [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	pccs := httptest.NewServer(pcs.Handler(filepath.Join(dir, sim.DirCollateral)))
	defer pccs.Close()
	ts := startExplorer(t, explorer.Config{})
	code, r, e := analyze(t, ts, upload{
		values: map[string]string{"source": "pccs", "location": pccs.URL + "/sgx/certification/v4/", "root": filepath.Join(dir, "root_ca.pem")},
		files:  map[string][]byte{"quote_file": q},
	})
	if code != 200 || !r.Verdict.Genuine || !r.Simulated || r.TCB == nil || r.TCB.Matched != 0 {
		t.Fatalf("%d %s %+v", code, e.Error, r)
	}
	// An unreachable PCCS: the collateral step fails and says so.
	pccs.Close()
	_, r, _ = analyze(t, ts, upload{
		values: map[string]string{"source": "pccs", "location": pccs.URL + "/sgx/certification/v4/", "root": filepath.Join(dir, "root_ca.pem")},
		files:  map[string][]byte{"quote_file": q},
	})
	if r.Verdict.FailedStep != "collateral" || !strings.Contains(stepResults(r)["collateral"].Reason, "connect") {
		t.Errorf("unreachable PCCS: %+v", r.Verdict)
	}
}

// kmsd's metrics: requests by operation and status, mean latency, keys.
func TestStatusFromKMSMetrics(t *testing.T) {
	reg := metrics.New("kmsd", false)
	m := reg.NewKMS(func() int { return 3 })
	m.Request("encrypt", 200, 2*time.Millisecond)
	m.Request("encrypt", 200, 4*time.Millisecond)
	m.Request("decrypt", 403, time.Millisecond)
	ms := httptest.NewServer(reg.Handler())
	defer ms.Close()
	ts := startExplorer(t, explorer.Config{})
	req, _ := http.NewRequest("GET", ts.URL+"/api/status?addr="+ms.URL, nil)
	req.Header.Set(explorer.APIHeader, "1")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s explorer.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if s.Service != "kmsd" || s.Simulated || s.Relay != nil || s.KMS == nil || s.KMS.Keys != 3 {
		t.Fatalf("%+v", s)
	}
	want := []explorer.Labeled{{Label: "decrypt 403", Value: 1}, {Label: "encrypt 200", Value: 2}}
	if !slices.Equal(s.KMS.Requests, want) {
		t.Errorf("requests %+v, want %+v", s.KMS.Requests, want)
	}
	for _, l := range s.KMS.Latency {
		if l.Operation == "encrypt" && (l.Count != 2 || l.MeanSeconds < 0.0029 || l.MeanSeconds > 0.0031) {
			t.Errorf("encrypt latency %+v, want 2 requests, mean 3 ms", l)
		}
	}
	// Not a metrics page: a clear message.
	req, _ = http.NewRequest("GET", ts.URL+"/api/status?addr="+ts.URL+"/static/style.css", nil)
	req.Header.Set(explorer.APIHeader, "1")
	resp2, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var e apiErr
	json.NewDecoder(resp2.Body).Decode(&e)
	if resp2.StatusCode != http.StatusBadGateway || !strings.Contains(e.Error, "not a Prometheus text page") {
		t.Errorf("not metrics: %d %+v", resp2.StatusCode, e)
	}
}
