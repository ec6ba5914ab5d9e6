package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
)

// kmsTarget is one server under test: kmsd, or Vault when --vault is
// given. Both are driven by the same requests over keep-alive HTTPS.
type kmsTarget struct {
	name      string
	base      string // https://HOST:PORT/v1/
	tok       string
	pid       int
	newClient func() *http.Client
}

func (t *kmsTarget) call(ctx context.Context, c *http.Client, path string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", t.base+path, bytes.NewReader(b))
	req.Header.Set("X-Vault-Token", t.tok)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// Read to EOF, or net/http will not reuse the connection.
	defer io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s %s: %d %v", t.name, path, resp.StatusCode, out)
	}
	return out, nil
}

// post is the load generator's request: a body encoded once, and an
// answer checked without decoding it (status 200 and, with want > 0, one
// field `"ciphertext":"vault:v` or `"signature":"vault:v` per item). The
// generator shares the machine's cores with the server it measures, so it
// does no more work than that, the same for kmsd and Vault.
func (t *kmsTarget) post(ctx context.Context, c *http.Client, path string, body []byte, marker string, want int) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", t.base+path, bytes.NewReader(body))
	req.Header.Set("X-Vault-Token", t.tok)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %.200s", t.name, path, resp.StatusCode, buf.Bytes())
	}
	if got := bytes.Count(buf.Bytes(), []byte(marker)); got != want {
		return fmt.Errorf("%s %s: %d results in the answer, want %d: %.200s", t.name, path, got, want, buf.Bytes())
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const (
	ciphertextMarker = `"ciphertext":"vault:v`
	signatureMarker  = `"signature":"vault:v`
)

// health sends GET sys/health and reads the answer.
func (t *kmsTarget) health(c *http.Client) error {
	resp, err := c.Get(t.base + "sys/health")
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: GET sys/health: %s", t.name, resp.Status)
	}
	return err
}

// measured is one cell: calls per second, and the CPU per call of the
// server process and of this process (the load generator).
type measured struct {
	rate           float64
	server, client time.Duration
}

// measure runs fn on conns connections for d.
func (t *kmsTarget) measure(d time.Duration, conns int, fn func(c *http.Client) error) (m measured, err error) {
	cpu0, _ := procCPU(t.pid)
	own0, _ := procCPU(os.Getpid())
	var calls atomic.Int64
	m.rate, err = loop(d, conns, func(c *http.Client) error {
		calls.Add(1)
		return fn(c)
	}, t.newClient)
	cpu1, _ := procCPU(t.pid)
	own1, _ := procCPU(os.Getpid())
	if n := calls.Load(); n > 0 {
		m.server = (cpu1 - cpu0) / time.Duration(n)
		m.client = (own1 - own0) / time.Duration(n)
	}
	return m, err
}

// benchKMS runs kmsd as a child (simulation, memory-only, audit log to a
// file) and measures encrypt requests/s (128-byte plaintexts) over
// keep-alive HTTPS with 1 and 16 connections, batched encryption items/s,
// and, in the same run, the machine's raw AES-256-GCM rate on the same
// 128-byte messages. With --vault PATH, Vault's dev server (in memory,
// TLS, the file audit device on) runs the same requests in the same run,
// each cell alternating between the two, with server CPU per request.
func benchKMS(ctx context.Context, o relayOptions, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "se-bench-kms-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := buildBinary(ctx, "", tmp, "kmsd")
	if err != nil {
		return err
	}
	simDir, tokFile := filepath.Join(tmp, "sim"), filepath.Join(tmp, "root.token")
	cmd := exec.CommandContext(ctx, bin, "--simulation", "--sim-dir", simDir, "--listen", "127.0.0.1:0",
		"--root-token-file", tokFile, "--audit-log", filepath.Join(tmp, "audit.log"), "--log-format", "json")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	addr, err := waitListening(stderr, "kmsd listening")
	if err != nil {
		return err
	}
	tokB, err := os.ReadFile(tokFile)
	if err != nil {
		return err
	}
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		return err
	}
	kmsd := &kmsTarget{name: "kmsd", base: "https://" + addr + "/v1/", tok: strings.TrimSpace(string(tokB)), pid: cmd.Process.Pid,
		newClient: func() *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy), MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
		}}
	targets := []*kmsTarget{kmsd}
	if o.vault != "" {
		v, stop, err := startVault(ctx, o.vault, tmp)
		if err != nil {
			return fmt.Errorf("--vault: %w", err)
		}
		defer stop()
		targets = append(targets, v)
	}
	for _, t := range targets {
		if _, err := t.call(ctx, t.newClient(), "transit/keys/bench", map[string]any{"type": "aes256-gcm96"}); err != nil {
			return err
		}
	}
	pt := base64.StdEncoding.EncodeToString(make([]byte, 128))
	const batch = 1000
	items := make([]map[string]any, batch)
	for i := range items {
		items[i] = map[string]any{"plaintext": pt}
	}
	single, _ := json.Marshal(map[string]any{"plaintext": pt})
	batchBody, _ := json.Marshal(map[string]any{"batch_input": items})
	signBody, _ := json.Marshal(map[string]any{"input": pt})

	fmt.Fprintf(out, "KMS benchmark: %d CPUs, %s, %s per cell, kmsd in simulation mode (memory-only, audit to a file), TLS 1.3 keep-alive over loopback, 128-byte plaintexts\n\n", runtime.NumCPU(), runtime.Version(), o.duration)
	if len(targets) > 1 {
		if err := kmsSideBySide(ctx, o.duration, targets, single, batchBody, batch, out); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "| measurement | rate |")
	fmt.Fprintln(out, "|---|---|")
	health, err := loop(o.duration, 1, kmsd.health, kmsd.newClient)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| baseline: GET /v1/sys/health, 1 connection | %.0f requests/s |\n", health)
	for _, conns := range []int{1, 16} {
		m, err := kmsd.measure(o.duration, conns, func(c *http.Client) error {
			return kmsd.post(ctx, c, "transit/encrypt/bench", single, ciphertextMarker, 1)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| encrypt, %d connection(s) | %.0f requests/s (kmsd CPU %s, load generator CPU %s per request) |\n", conns, m.rate, micros(m.server, 1), micros(m.client, 1))
	}
	// HTTP/2: one connection, 16 concurrent streams.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy), ForceAttemptHTTP2: true}}
	rate, err := loop(o.duration, 16, func(c *http.Client) error {
		return kmsd.post(ctx, c, "transit/encrypt/bench", single, ciphertextMarker, 1)
	}, func() *http.Client { return h2 })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| encrypt, HTTP/2, 1 connection × 16 streams | %.0f requests/s |\n", rate)
	if _, err := kmsd.call(ctx, kmsd.newClient(), "transit/keys/bench-sign", map[string]any{"type": "ecdsa-p256"}); err != nil {
		return err
	}
	for _, conns := range []int{1, 16} {
		rate, err := loop(o.duration, conns, func(c *http.Client) error {
			return kmsd.post(ctx, c, "transit/sign/bench-sign", signBody, signatureMarker, 1)
		}, kmsd.newClient)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| sign (ECDSA P-256, SHA-256), %d connection(s) | %.0f requests/s |\n", conns, rate)
	}
	m, err := kmsd.measure(o.duration, 2, func(c *http.Client) error {
		return kmsd.post(ctx, c, "transit/encrypt/bench", batchBody, ciphertextMarker, batch)
	})
	if err != nil {
		return err
	}
	batchRate := m.rate * batch
	fmt.Fprintf(out, "| batch encrypt (%d items/request, 2 connections) | %.0f items/s (kmsd CPU %s, load generator CPU %s per item) |\n", batch, batchRate, micros(m.server, batch), micros(m.client, batch))

	fmt.Fprintf(out, "| raw ECDSA P-256 sign, %d goroutines (same machine, same run) | %.0f ops/s |\n", runtime.NumCPU(), rawECDSA(o.duration))
	raw := rawAESGCM(o.duration)
	fmt.Fprintf(out, "| raw AES-256-GCM seal, 128 B, %d goroutines (same machine, same run) | %.0f ops/s |\n", runtime.NumCPU(), raw)
	fmt.Fprintf(out, "\nbatched KMS encryption is %.1f× below the raw AES-GCM rate\n", raw/batchRate)
	// The load generator shares the cores: even a server that cost
	// nothing could not be measured faster than the client alone allows.
	if per := m.client.Seconds() / batch; per > 0 {
		ceiling := float64(runtime.NumCPU()) / per
		fmt.Fprintf(out, "the load generator alone spends %s per item on the same %d cores: a server costing nothing would measure at most %.0f items/s here, %.1f× below raw\n",
			micros(m.client, batch), runtime.NumCPU(), ceiling, raw/ceiling)
	}
	return nil
}

// micros formats d/n in microseconds.
func micros(d time.Duration, n int) string {
	return fmt.Sprintf("%.2f µs", float64(d.Nanoseconds())/1e3/float64(n))
}

// kmsSideBySide prints kmsd against Vault: the same encrypt requests at 1
// and 16 connections and the same 1000-item batch, one cell after the
// other for each measurement, with each server's CPU per request.
func kmsSideBySide(ctx context.Context, d time.Duration, targets []*kmsTarget, single, batchBody []byte, batch int, out io.Writer) error {
	kmsd, vault := targets[0], targets[1]
	fmt.Fprintln(out, "| measurement | kmsd | Vault | kmsd / Vault | kmsd CPU / request | Vault CPU / request |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	type cell struct {
		name  string
		conns int
		body  []byte // nil: GET sys/health
		items int
	}
	for _, c := range []cell{
		{"baseline: GET sys/health (no token, no audit, no crypto), 1 connection", 1, nil, 1},
		{"baseline: GET sys/health, 16 connections", 16, nil, 1},
		{"encrypt 128 B, 1 connection", 1, single, 1},
		{"encrypt 128 B, 16 connections", 16, single, 1},
		{fmt.Sprintf("batch encrypt, %d items/request, 2 connections (items/s)", batch), 2, batchBody, batch},
	} {
		var rates [2]float64
		var cpus [2]time.Duration
		for i, t := range []*kmsTarget{kmsd, vault} {
			m, err := t.measure(d, c.conns, func(hc *http.Client) error {
				if c.body == nil {
					return t.health(hc)
				}
				return t.post(ctx, hc, "transit/encrypt/bench", c.body, ciphertextMarker, c.items)
			})
			if err != nil {
				return err
			}
			rates[i], cpus[i] = m.rate*float64(c.items), m.server/time.Duration(c.items)
		}
		fmt.Fprintf(out, "| %s | %.0f | %.0f | %.2f× | %.1f µs | %.1f µs |\n", c.name, rates[0], rates[1], rates[0]/rates[1],
			float64(cpus[0].Nanoseconds())/1e3, float64(cpus[1].Nanoseconds())/1e3)
	}
	fmt.Fprintln(out)
	return nil
}

func waitListening(r io.Reader, msg string) (string, error) {
	dec := json.NewDecoder(r)
	for {
		var rec struct{ Msg, Addr string }
		if err := dec.Decode(&rec); err != nil {
			return "", fmt.Errorf("server exited before listening: %v", err)
		}
		if rec.Msg == msg {
			go io.Copy(io.Discard, r)
			return rec.Addr, nil
		}
	}
}

// loop runs fn on conns clients for d and returns calls per second.
func loop(d time.Duration, conns int, fn func(*http.Client) error, newClient func() *http.Client) (float64, error) {
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	start := time.Now()
	for i := 0; i < conns; i++ {
		c := newClient()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := fn(c); err != nil {
					errc <- err
					return
				}
				n.Add(1)
			}
		}()
	}
	time.Sleep(d)
	count := n.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	return float64(count) / elapsed.Seconds(), nil
}

func rawAESGCM(d time.Duration) float64 {
	key := make([]byte, 32)
	rand.Read(key)
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < runtime.NumCPU(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			block, _ := aes.NewCipher(key)
			gcm, _ := cipher.NewGCM(block)
			nonce := make([]byte, 12)
			msg := make([]byte, 128)
			dst := make([]byte, 0, 256)
			for !stop.Load() {
				for j := 0; j < 1000; j++ {
					rand.Read(nonce)
					dst = gcm.Seal(dst[:0], nonce, msg, nil)
				}
				n.Add(1000)
			}
		}()
	}
	time.Sleep(d)
	count := n.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	return float64(count) / elapsed.Seconds()
}

func rawECDSA(d time.Duration) float64 {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("bench"))
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < runtime.NumCPU(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				ecdsa.SignASN1(rand.Reader, key, digest[:])
				n.Add(1)
			}
		}()
	}
	time.Sleep(d)
	count := n.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	return float64(count) / elapsed.Seconds()
}
