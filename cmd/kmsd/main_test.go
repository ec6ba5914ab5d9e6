package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
)

// The crash test runs kmsd as a child: this test binary re-executed with
// KMSD_TEST_CHILD=1 behaves as kmsd.
func TestMain(m *testing.M) {
	if os.Getenv("KMSD_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, io.Discard, os.Stderr, nil)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

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

func startKMSD(t *testing.T, args ...string) (string, *syncBuf, *syncBuf, func()) {
	t.Helper()
	return startKMSDEnv(t, noEnv, args...)
}

func startKMSDEnv(t *testing.T, getenv func(string) string, args ...string) (string, *syncBuf, *syncBuf, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	logs, audit := &syncBuf{}, &syncBuf{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, getenv, strings.NewReader(""), audit, logs, ready) }()
	select {
	case addr := <-ready:
		var once sync.Once
		return addr, logs, audit, func() {
			// Idempotent: a test may stop a replica early and defer
			// the same stop.
			once.Do(func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("kmsd exited %d", code)
				}
			})
		}
	case code := <-done:
		t.Fatalf("kmsd exited %d: %s", code, logs.String())
	}
	return "", nil, nil, nil
}

// vaultOverRATLS is Vault's client whose TLS accepts kmsd only if its
// RA-TLS certificate carries a quote from the expected enclave.
func vaultOverRATLS(t *testing.T, addr, token string, be *backend.Backend, p *attest.Policy) *vault.Client {
	cfg := vault.DefaultConfig()
	cfg.Address = "https://" + addr
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, p)}, Timeout: 10 * time.Second}
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func readToken(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestKMSDEndToEnd(t *testing.T) {
	tmp := t.TempDir()
	sim, data, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data"), filepath.Join(tmp, "root.token")
	args := []string{"--simulation", "--sim-dir", sim, "--data-dir", data, "--root-token-file", tokFile, "--listen", "127.0.0.1:0"}
	addr, logs, audit, stop := startKMSD(t, args...)
	st, err := os.Stat(tokFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("root token file: %v %v", st, err)
	}
	tok := readToken(t, tokFile)
	if strings.Contains(logs.String(), tok) {
		t.Fatal("the root token was logged")
	}
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	if _, err := c.Logical().Write("transit/keys/app", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("hello"))})
	if err != nil {
		t.Fatal(err)
	}
	ct := s.Data["ciphertext"]

	// A client whose policy wants another enclave refuses the server in the handshake.
	wrong := &attest.Policy{MREnclave: []attest.Hash32{{0xde, 0xad}}, AllowSimulated: true}
	if _, err := vaultOverRATLS(t, addr, tok, be, wrong).Logical().Read("transit/keys/app"); err == nil {
		t.Fatal("client accepted a KMS whose measurement its policy does not allow")
	}

	// /v1/sys/attestation: the quote binds the certificate the handshake showed.
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy)}}).Get("https://" + addr + "/v1/sys/attestation")
	if err != nil {
		t.Fatal(err)
	}
	var att struct {
		Data map[string]any `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&att)
	resp.Body.Close()
	q, _ := base64.StdEncoding.DecodeString(att.Data["quote"].(string))
	block, _ := pem.Decode([]byte(att.Data["certificate"].(string)))
	cert, _ := x509.ParseCertificate(block.Bytes)
	r, err := be.Verifier.Verify(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if !bytes.Equal(r.ReportData[:32], h[:]) || !bytes.Equal(cert.Raw, resp.TLS.PeerCertificates[0].Raw) || att.Data["simulated"] != true {
		t.Fatal("attestation endpoint's quote does not bind the served certificate")
	}
	if !strings.Contains(audit.String(), `"path":"/v1/transit/encrypt/app"`) {
		t.Error("no audit line for the encrypt request")
	}
	stop()

	// Restart: the key is still there, and no new root token is made.
	addr, _, _, stop = startKMSD(t, args...)
	defer stop()
	c = vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	s, err = c.Logical().Write("transit/decrypt/app", map[string]any{"ciphertext": ct})
	if err != nil || s.Data["plaintext"] != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Fatalf("after restart: %v %v", s, err)
	}
}

// A stock crypto/tls client and openssl s_client complete the TLS
// handshake with kmsd; the RA-TLS certificate is an ordinary certificate
// to them.
func TestKMSDStockTLSAndOpenSSL(t *testing.T) {
	tmp := t.TempDir()
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", filepath.Join(tmp, "sim"), "--listen", "127.0.0.1:0", "--print-root-token")
	defer stop()
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Get("https://" + addr + "/v1/sys/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stock client: %v", err)
	}
	resp.Body.Close()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command("openssl", "s_client", "-connect", addr, "-brief", "-ign_eof")
	cmd.Stdin = strings.NewReader("GET /v1/sys/health HTTP/1.0\r\n\r\n")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "Protocol version: TLSv1.3") || !strings.Contains(string(out), `"initialized":true`) {
		t.Errorf("openssl s_client:\n%s", out)
	}
}

func TestKMSDFlagErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "kmsd.toml")
	os.WriteFile(cfg, []byte("simulation = true\nroot = \"/etc/hostname\"\n"), 0o644)
	unknown := filepath.Join(t.TempDir(), "kmsd.toml")
	os.WriteFile(unknown, []byte("lisen = \":1\"\n"), 0o644)
	for _, args := range [][]string{{"--listen", "x"}, {"--seal-policy", "none"}, {"--max-body", "1"}, {"stray"},
		{"--config", cfg}, {"--config", unknown}, {"--listen", ":70000"}, {"--simulation", "--collateral", "/nonexistent"}} {
		var b syncBuf
		if code := run(context.Background(), args, noEnv, strings.NewReader(""), io.Discard, &b, nil); code != 2 || b.String() == "" {
			t.Errorf("%q: exit %d %q", args, code, b.String())
		}
	}
	var b syncBuf
	if code := run(context.Background(), []string{"--listen", "127.0.0.1:0"}, noEnv, strings.NewReader(""), io.Discard, &b, nil); code != 1 || !strings.Contains(b.String(), "--simulation") {
		t.Errorf("SGX mode outside Gramine: %d %q", code, b.String())
	}
}

// startKMSDChild runs kmsd as a child process (this test binary,
// re-executed) with --log-format json among args, and returns it once it
// listens, with its address.
func startKMSDChild(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KMSD_TEST_CHILD=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "kmsd listening" {
			go io.Copy(io.Discard, stderr)
			return cmd, rec.Addr
		}
	}
	cmd.Wait()
	t.Fatal("kmsd child did not start")
	return nil, ""
}

// TestKMSDCrash creates keys while kmsd is killed with SIGKILL at random
// moments; every key whose creation was acknowledged is there afterwards.
func TestKMSDCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	tmp := t.TempDir()
	sim, data, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data"), filepath.Join(tmp, "root.token")
	args := []string{"--simulation", "--sim-dir", sim, "--data-dir", data, "--root-token-file", tokFile, "--listen", "127.0.0.1:0", "--log-format", "json", "--audit-log", filepath.Join(tmp, "audit.log")}
	start := func() (*exec.Cmd, string) { return startKMSDChild(t, args...) }
	cmd, addr := start()
	tok := readToken(t, tokFile)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	n := 0
	for round := 0; round < 4; round++ {
		if round > 0 {
			cmd, addr = start()
		}
		c := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
		stopAt := time.Now().Add(time.Duration(100+round*70) * time.Millisecond)
		var killed sync.WaitGroup
		killed.Add(1)
		go func() {
			defer killed.Done()
			time.Sleep(time.Until(stopAt))
			cmd.Process.Signal(syscall.SIGKILL)
		}()
		for {
			name := fmt.Sprintf("key-%d", n)
			n++
			if _, err := c.Logical().Write("transit/keys/"+name, map[string]any{"type": "ecdsa-p256"}); err != nil {
				break
			}
			created = append(created, name)
		}
		killed.Wait()
		cmd.Wait()
	}
	cmd, addr = start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	list, err := c.Logical().List("transit/keys")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, k := range list.Data["keys"].([]any) {
		have[k.(string)] = true
	}
	for _, name := range created {
		if !have[name] {
			t.Errorf("acknowledged key %s lost in a crash", name)
		}
	}
	if len(created) < 4 {
		t.Fatalf("only %d keys created: the test proves little", len(created))
	}
	t.Logf("%d keys created across 4 SIGKILLs; all present", len(created))
}

func noEnv(string) string { return "" }

func TestKMSDMetrics(t *testing.T) {
	tmp := t.TempDir()
	ml, _ := net.Listen("tcp", "127.0.0.1:0")
	maddr := ml.Addr().String()
	ml.Close()
	tok := filepath.Join(tmp, "tok")
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", filepath.Join(tmp, "sim"), "--listen", "127.0.0.1:0", "--metrics-listen", maddr, "--root-token-file", tok)
	defer stop()
	be, _ := backend.Open(backend.Options{Simulation: true, SimDir: filepath.Join(tmp, "sim")})
	c := vaultOverRATLS(t, addr, readToken(t, tok), be, be.DefaultPolicy)
	c.Logical().Write("transit/keys/secret-key-name-q9", nil)
	c.Logical().Write("transit/encrypt/secret-key-name-q9", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("metric-plaintext"))})
	c.Logical().Write("transit/decrypt/missing", map[string]any{"ciphertext": "vault:v1:AAAA"})
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, want := range []string{`kms_requests_total{operation="transit/encrypt",status="200"} 1`, `kms_requests_total{operation="transit/decrypt",status="400"} 1`,
		`kms_keys 1`, `kms_request_duration_seconds_count{operation="transit/keys"} 1`, `shared_enclave_simulated{service="kmsd"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, "secret-key-name-q9") || strings.Contains(m, "missing") {
		t.Error("a key name leaked into a metric label")
	}
}

// kmsd speaks HTTP/2 to clients that offer it, over the same RA-TLS
// handshake.
func TestKMSDHTTP2(t *testing.T) {
	tmp := t.TempDir()
	sim := filepath.Join(tmp, "sim")
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--print-root-token")
	defer stop()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy), ForceAttemptHTTP2: true}
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("negotiated %s, want HTTP/2", resp.Proto)
	}
}

// TestKMSDAuditDevFull is the reproduction: with --audit-log
// /dev/full, creating a key answers 500, and after a restart with a
// working log the key does not exist.
func TestKMSDAuditDevFull(t *testing.T) {
	if f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0); err != nil {
		t.Skip("no /dev/full on this system")
	} else {
		f.Close()
	}
	tmp := t.TempDir()
	sim, data, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data"), filepath.Join(tmp, "root.token")
	args := []string{"--simulation", "--sim-dir", sim, "--data-dir", data, "--root-token-file", tokFile, "--listen", "127.0.0.1:0"}
	_, _, _, stop := startKMSD(t, args...)
	stop()
	tok := readToken(t, tokFile)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
	if err != nil {
		t.Fatal(err)
	}

	addr, _, _, stop := startKMSD(t, append(args, "--audit-log", "/dev/full")...)
	c := vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	_, err = c.Logical().Write("transit/keys/unaudited", nil)
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 500 {
		t.Fatalf("creating a key with --audit-log /dev/full: %v, want a 500", err)
	}
	stop()

	addr, _, audit, stop := startKMSD(t, args...)
	defer stop()
	c = vaultOverRATLS(t, addr, tok, be, be.DefaultPolicy)
	if s, err := c.Logical().Read("transit/keys/unaudited"); err != nil || s != nil {
		t.Fatalf("after a restart the unaudited key exists: %v %v", s, err)
	}
	if !strings.Contains(audit.String(), `"path":"/v1/transit/keys/unaudited"`) {
		t.Error("the read after the restart was not audited")
	}
}

// TestKMSDSeedEndpoints: the seed endpoints need a token by default;
// --open-seed-endpoints (here from the environment, as every flag can be)
// opens them, with RSA generation rate-limited.
func TestKMSDSeedEndpoints(t *testing.T) {
	tmp := t.TempDir()
	sim, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "root.token")
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy)}, Timeout: 10 * time.Second}
	get := func(addr, path, token string) int {
		req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
		if token != "" {
			req.Header.Set("X-Vault-Token", token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--root-token-file", tokFile)
	if code := get(addr, "/generate-rsa-key-pair", ""); code != 403 {
		t.Errorf("default, no token: %d, want 403", code)
	}
	if code := get(addr, "/generate-rsa-key-pair", readToken(t, tokFile)); code != 200 {
		t.Errorf("default, root token: %d, want 200", code)
	}
	stop()

	env := map[string]string{"KMSD_OPEN_SEED_ENDPOINTS": "true", "KMSD_SEED_RSA_RATE": "0.001"}
	addr, logs, _, stop := startKMSDEnv(t, func(k string) string { return env[k] },
		"--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--root-token-file", filepath.Join(tmp, "root2.token"))
	defer stop()
	if code := get(addr, "/generate-aes-key", ""); code != 200 {
		t.Errorf("open, aes without a token: %d, want 200", code)
	}
	if code := get(addr, "/generate-rsa-key-pair", ""); code != 200 {
		t.Errorf("open, first rsa without a token: %d, want 200", code)
	}
	if code := get(addr, "/generate-rsa-key-pair", ""); code != 429 {
		t.Errorf("open, second rsa without a token at 0.001/s: %d, want 429", code)
	}
	if !strings.Contains(logs.String(), "open-seed-endpoints") {
		t.Error("no warning that the seed endpoints are open")
	}

	for _, bad := range []string{"0", "-1", "NaN", "+Inf"} {
		var b syncBuf
		if code := run(context.Background(), []string{"--seed-rsa-rate", bad}, noEnv, strings.NewReader(""), io.Discard, &b, nil); code != 2 || !strings.Contains(b.String(), "--seed-rsa-rate") {
			t.Errorf("--seed-rsa-rate %s: exit %d %q", bad, code, b.String())
		}
	}
}

// A second kmsd on the data dir a running one holds says so, and what to
// do, instead of "resource temporarily unavailable" alone.
func TestSecondKMSDOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--simulation", "--sim-dir", filepath.Join(dir, "sim"), "--data-dir", filepath.Join(dir, "data"),
		"--listen", "127.0.0.1:0", "--root-token-file", filepath.Join(dir, "root.token"), "--audit-log", filepath.Join(dir, "audit")}
	_, _, _, stop := startKMSD(t, args...)
	defer stop()
	cmd := exec.Command(os.Args[0], append(args[:len(args)-4], "--log-level", "error")...)
	cmd.Env = append(os.Environ(), "KMSD_TEST_CHILD=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("second kmsd: exit %d, want 1: %s", code, errb.String())
	}
	for _, want := range []string{"another kmsd or relayd holds its lock", "hint: stop the process using it", "another --data-dir"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("second kmsd's error lacks %q: %s", want, errb.String())
		}
	}
}
