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

// benchKMS runs kmsd as a child (simulation, memory-only) and measures
// encrypt requests/s (128-byte plaintexts) over keep-alive HTTPS with 1 and
// 16 connections, batched encryption items/s, and, in the same run, the
// machine's raw AES-256-GCM rate on the same 128-byte messages.
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
	tok := strings.TrimSpace(string(tokB))
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		return err
	}
	newClient := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy), MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	}
	base := "https://" + addr + "/v1/"
	call := func(c *http.Client, path string, body any) (map[string]any, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
		req.Header.Set("X-Vault-Token", tok)
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
			return nil, fmt.Errorf("%s: %d %v", path, resp.StatusCode, out)
		}
		return out, nil
	}
	if _, err := call(newClient(), "transit/keys/bench", map[string]any{"type": "aes256-gcm96"}); err != nil {
		return err
	}
	pt := base64.StdEncoding.EncodeToString(make([]byte, 128))

	fmt.Fprintf(out, "KMS benchmark: %d CPUs, %s, %s per cell, kmsd in simulation mode (memory-only, audit to a file), TLS 1.3 keep-alive over loopback, 128-byte plaintexts\n\n", runtime.NumCPU(), runtime.Version(), o.duration)
	fmt.Fprintln(out, "| measurement | rate |")
	fmt.Fprintln(out, "|---|---|")
	health, err := loop(o.duration, 1, func(c *http.Client) error {
		resp, err := c.Get(base + "sys/health")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}, newClient)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| baseline: GET /v1/sys/health, 1 connection | %.0f requests/s |\n", health)
	for _, conns := range []int{1, 16} {
		cpu0, _ := procCPU(cmd.Process.Pid)
		var calls atomic.Int64
		rate, err := loop(o.duration, conns, func(c *http.Client) error {
			calls.Add(1)
			_, err := call(c, "transit/encrypt/bench", map[string]any{"plaintext": pt})
			return err
		}, newClient)
		if err != nil {
			return err
		}
		cpu1, _ := procCPU(cmd.Process.Pid)
		perReq := float64((cpu1 - cpu0).Nanoseconds()) / float64(calls.Load()) / 1e3
		fmt.Fprintf(out, "| encrypt, %d connection(s) | %.0f requests/s (kmsd CPU %.0f µs/request) |\n", conns, rate, perReq)
	}
	// HTTP/2: one connection, 16 concurrent streams.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy), ForceAttemptHTTP2: true}}
	rate, err := loop(o.duration, 16, func(c *http.Client) error {
		_, err := call(c, "transit/encrypt/bench", map[string]any{"plaintext": pt})
		return err
	}, func() *http.Client { return h2 })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| encrypt, HTTP/2, 1 connection × 16 streams | %.0f requests/s |\n", rate)
	if _, err := call(newClient(), "transit/keys/bench-sign", map[string]any{"type": "ecdsa-p256"}); err != nil {
		return err
	}
	for _, conns := range []int{1, 16} {
		rate, err := loop(o.duration, conns, func(c *http.Client) error {
			_, err := call(c, "transit/sign/bench-sign", map[string]any{"input": pt})
			return err
		}, newClient)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| sign (ECDSA P-256, SHA-256), %d connection(s) | %.0f requests/s |\n", conns, rate)
	}
	const batch = 1000
	items := make([]map[string]any, batch)
	for i := range items {
		items[i] = map[string]any{"plaintext": pt}
	}
	rate, err = loop(o.duration, 2, func(c *http.Client) error {
		_, err := call(c, "transit/encrypt/bench", map[string]any{"batch_input": items})
		return err
	}, newClient)
	if err != nil {
		return err
	}
	batchRate := rate * batch
	fmt.Fprintf(out, "| batch encrypt (1000 items/request, 2 connections) | %.0f items/s |\n", batchRate)

	fmt.Fprintf(out, "| raw ECDSA P-256 sign, %d goroutines (same machine, same run) | %.0f ops/s |\n", runtime.NumCPU(), rawECDSA(o.duration))
	raw := rawAESGCM(o.duration)
	fmt.Fprintf(out, "| raw AES-256-GCM seal, 128 B, %d goroutines (same machine, same run) | %.0f ops/s |\n", runtime.NumCPU(), raw)
	fmt.Fprintf(out, "\nbatched KMS encryption is %.1f× below the raw AES-GCM rate\n", raw/batchRate)
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
