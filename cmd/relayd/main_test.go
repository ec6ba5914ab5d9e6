package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRelaydSimulationEndToEnd starts relayd as `relayd --simulation`
// would, creating its platform on first use, talks to it with the client
// library, and stops it as SIGTERM would.
func TestRelaydSimulationEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	var logs syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--simulation", "--sim-dir", dir, "--listen", "127.0.0.1:0", "--log-format", "json"}, noEnv, io.Discard, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("relayd exited %d: %s", code, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("relayd did not start")
	}
	if _, err := os.Stat(filepath.Join(dir, "root_ca.pem")); err != nil {
		t.Fatal("relayd did not create the simulated platform")
	}
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register("me"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("me", []byte("note to self")); err != nil {
		t.Fatal(err)
	}
	if _, data, ok, err := c.Poll(); err != nil || !ok || string(data) != "note to self" {
		t.Fatalf("poll: %q %v %v", data, ok, err)
	}
	c.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("relayd did not stop")
	}
	out := logs.String()
	for _, want := range []string{"SIMULATION MODE", "memory-only", "relayd stopped", `"id_tag":"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(out, "note to self") {
		t.Error("a payload was logged")
	}
	if strings.Contains(out, `"me"`) {
		t.Error("a client id was logged (the log is the host's: it carries id_tag, never the id)")
	}
}

func TestRelaydFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "nonsense"},
		{"--max-payload", "0"},
		{"--pace-backlog", "0"},
		{"--pace-wait", "-1s"},
		{"--log-format", "xml"},
		{"--seal-policy", "none"},
		{"stray"},
	} {
		var out syncBuf
		if code := run(context.Background(), args, noEnv, io.Discard, &out, nil); code != 2 || out.String() == "" {
			t.Errorf("%q: exit %d, %q", args, code, out.String())
		}
	}
	var out syncBuf
	if code := run(context.Background(), []string{"--help"}, noEnv, &out, io.Discard, nil); code != 0 || !strings.Contains(out.String(), "-simulation") {
		t.Errorf("--help: %d", code)
	}
	// SGX mode outside an enclave fails with a hint.
	out = syncBuf{}
	if code := run(context.Background(), []string{"--listen", "127.0.0.1:0"}, noEnv, io.Discard, &out, nil); code != 1 || !strings.Contains(out.String(), "--simulation") {
		t.Errorf("SGX mode outside Gramine: %d %q", code, out.String())
	}
}

// startRun runs relayd in-process and returns its address and a stop
// function that waits for it to exit.
func startRun(t *testing.T, args ...string) (string, *syncBuf, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	logs := &syncBuf{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, noEnv, io.Discard, logs, ready) }()
	select {
	case addr := <-ready:
		return addr, logs, func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("relayd exited %d", code)
			}
		}
	case code := <-done:
		t.Fatalf("relayd exited %d: %s", code, logs.String())
	}
	return "", nil, nil
}

func TestRelaydDataDirRestartAndRotate(t *testing.T) {
	tmp := t.TempDir()
	dir, data := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	args := []string{"--simulation", "--sim-dir", dir, "--data-dir", data, "--listen", "127.0.0.1:0", "--log-format", "json"}
	addr, logs, stop := startRun(t, args...)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr, id string) *client.Conn {
		c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(id); err != nil {
			t.Fatal(err)
		}
		return c
	}
	dial(addr, "bob").Close()
	a := dial(addr, "alice")
	for _, m := range []string{"one", "two"} {
		if err := a.Send("bob", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	stop()
	if !strings.Contains(logs.String(), "durable and sealed") || strings.Contains(logs.String(), "memory-only") {
		t.Errorf("durability not announced:\n%s", logs.String())
	}

	addr, logs, stop = startRun(t, append(args, "--rotate-seal-key")...)
	defer stop()
	if !strings.Contains(logs.String(), `"records_resealed":`) {
		t.Errorf("rotation not logged:\n%s", logs.String())
	}
	b := dial(addr, "bob")
	defer b.Close()
	for _, want := range []string{"one", "two"} {
		from, data, ok, err := b.Poll()
		if err != nil || !ok || from != "alice" || string(data) != want {
			t.Fatalf("after restart and rotation: %q %q %v %v", from, data, ok, err)
		}
	}
}

func noEnv(string) string { return "" }

func TestRelaydConfigFile(t *testing.T) {
	tmp := t.TempDir()
	n := 0
	write := func(body string) string {
		n++
		p := filepath.Join(tmp, fmt.Sprintf("relayd-%d.toml", n))
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown key":      {[]string{"--config", write("listne = \":1\"\n")}, `unknown key "listne"`},
		"bad port":         {[]string{"--config", write("listen = \":99999\"\n")}, "port must be a number"},
		"bad port flag":    {[]string{"--listen", "127.0.0.1:http-ish"}, "port must be a number"},
		"missing config":   {[]string{"--config", filepath.Join(tmp, "none.toml")}, "no such file"},
		"missing policy":   {[]string{"--simulation", "--policy", filepath.Join(tmp, "none.toml")}, "--policy"},
		"sim with a root":  {[]string{"--simulation", "--root", "/etc/hostname"}, "conflicting options"},
		"sim with pccs":    {[]string{"--config", write("simulation = true\npccs = \"https://pccs\"\n")}, "conflicting options"},
		"sim dir, no sim":  {[]string{"--sim-dir", tmp}, "conflicting options"},
		"bad metrics addr": {[]string{"--simulation", "--metrics-listen", "nowhere"}, "--metrics-listen"},
	} {
		var out syncBuf
		if code := run(context.Background(), tc.args, noEnv, io.Discard, &out, nil); code != 2 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d, %q; want 2 and %q", name, code, out.String(), tc.want)
		}
	}
	// Flags override the environment, which overrides the file.
	sim := filepath.Join(tmp, "sim")
	cfg := write(fmt.Sprintf("simulation = true\nsim-dir = %q\nlisten = \"127.0.0.1:1\"\nlog-format = \"json\"\n", sim))
	env := func(k string) string {
		if k == "RELAYD_LISTEN" {
			return "127.0.0.1:2"
		}
		return ""
	}
	o, err := parseFlags([]string{"--config", cfg, "--listen", "127.0.0.1:0"}, env, io.Discard, io.Discard)
	if err != nil || o.Listen != "127.0.0.1:0" || !o.Simulation || o.SimDir != sim || o.LogFormat != "json" {
		t.Fatalf("flag over file: %+v %v", o, err)
	}
	o, err = parseFlags([]string{"--config", cfg}, env, io.Discard, io.Discard)
	if err != nil || o.Listen != "127.0.0.1:2" {
		t.Fatalf("env over file: %+v %v", o, err)
	}
}

// TestMetricsAfterExchange scrapes /metrics after a relay exchange: the
// counters move, and no label carries a client id or payload.
func TestMetricsAfterExchange(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "sim")
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ml.Addr().String()
	ml.Close()
	addr, _, stop := startRun(t, "--simulation", "--sim-dir", dir, "--listen", "127.0.0.1:0", "--metrics-listen", maddr)
	defer stop()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	c.Register("metrics-client-id-x1")
	c.Send("metrics-client-id-x1", []byte("metrics-payload-y2"))
	c.Send("nobody-z3", []byte("x"))
	c.Send("metrics-client-id-x1", []byte("again"))
	c.Poll()
	c.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}
	_, m := get("/metrics")
	for _, want := range []string{
		`relay_attestations_total{result="ok"} 1`,
		`relay_frames_total{type="SEND_DATA"} 3`,
		`relay_frames_total{type="REGISTER_CLIENT"} 1`,
		`relay_nacks_total{reason="recipient not found",type="SEND_NACK"} 1`,
		`relay_delivered_total 1`,
		`relay_mailbox_messages 1`,
		`shared_enclave_simulated{service="relayd"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, secret := range []string{"metrics-client-id-x1", "metrics-payload-y2", "nobody-z3"} {
		if strings.Contains(m, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
}

// TestNodeClientFromProtocolDoc runs a relay client written from
// docs/PROTOCOL.md alone in JavaScript, on Node's TLS stack, against
// relayd: attestation in both directions, then the frames and their
// answers. It skips where node is not installed.
func TestNodeClientFromProtocolDoc(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	tmp := t.TempDir()
	enclavectl := filepath.Join(tmp, "enclavectl")
	build := exec.Command("go", "build", "-o", enclavectl, "../enclavectl")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building enclavectl: %v\n%s", err, b)
	}
	sim := filepath.Join(tmp, "sim")
	addr, _, stop := startRun(t, "--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0")
	defer stop()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(node, "../../testdata/interop/relay-client.js", host, port, sim, enclavectl).Output()
	if err != nil {
		t.Fatalf("node client: %v", err)
	}
	var res struct {
		Error           string `json:"error"`
		TLSVersion      string `json:"tls_version"`
		ServerGenuine   bool   `json:"server_genuine"`
		ServerBindingOK bool   `json:"server_binding_ok"`
		PolledFrom      string `json:"polled_from"`
		PolledData      string `json:"polled_data"`
		Steps           []struct {
			Name    string `json:"name"`
			Type    int    `json:"type"`
			Payload string `json:"payload"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if res.Error != "" {
		t.Fatalf("node client failed: %s", res.Error)
	}
	if res.TLSVersion != "TLSv1.3" || !res.ServerGenuine || !res.ServerBindingOK {
		t.Fatalf("attestation from node: %+v", res)
	}
	want := []struct {
		typ    int
		reason string
	}{{0x81, ""}, {0x82, ""}, {0x83, ""}, {0xA3, ""}, {0xE2, "recipient not found"}, {0xFF, "unknown frame type 0x04"}, {0xE1, "empty client id"}}
	if len(res.Steps) != len(want) {
		t.Fatalf("steps %+v", res.Steps)
	}
	for i, w := range want {
		s := res.Steps[i]
		if s.Type != w.typ || (w.reason != "" && s.Payload != w.reason) {
			t.Errorf("%s: answer 0x%02X %q, want 0x%02X %q", s.Name, s.Type, s.Payload, w.typ, w.reason)
		}
	}
	if res.PolledFrom != "node-client" || res.PolledData != "hello from node" {
		t.Errorf("polled %q from %q", res.PolledData, res.PolledFrom)
	}
}
