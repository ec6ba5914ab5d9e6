package kms

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// handlerWithKey starts a KMS without an audit sink, creates the
// aes256-gcm96 key "b", and returns its handler and root token.
func handlerWithKey(tb testing.TB) (http.Handler, string) {
	k := startKMS(tb, tb.TempDir(), func(c *Config) { c.Audit = io.Discard })
	h := k.svc.Handler()
	create := httptest.NewRequest("POST", "/v1/transit/keys/b", nil)
	create.Header.Set("X-Vault-Token", k.root)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, create)
	if w.Code/100 != 2 {
		tb.Fatalf("creating key b: %d %s", w.Code, w.Body.String())
	}
	return h, k.root
}

// BenchmarkEncryptHandler measures the server side of one encrypt request
// (no TLS, no network): JSON in, AES-GCM, JSON out, audit line.
func BenchmarkEncryptHandler(b *testing.B) {
	h, root := handlerWithKey(b)
	body := fmt.Sprintf(`{"plaintext":%q}`, base64.StdEncoding.EncodeToString(make([]byte, 128)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/transit/encrypt/b", strings.NewReader(body))
		req.Header.Set("X-Vault-Token", root)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkEncryptBatchItem is the server-side cost per item of a
// 1000-item batch.
func BenchmarkEncryptBatchItem(b *testing.B) {
	h, root := handlerWithKey(b)
	items := make([]map[string]string, 1000)
	for i := range items {
		items[i] = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(make([]byte, 128))}
	}
	body, _ := json.Marshal(map[string]any{"batch_input": items})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/transit/encrypt/b", bytes.NewReader(body))
		req.Header.Set("X-Vault-Token", root)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/item")
}

// FuzzParseVersioned: ciphertext, signature and HMAC strings from clients
// never panic the parser, and what parses formats back to an equivalent
// string.
func FuzzParseVersioned(f *testing.F) {
	f.Add("vault:v1:AAAA")
	f.Add("vault:v12:" + base64.StdEncoding.EncodeToString([]byte("x")))
	f.Add("vault:v0:")
	f.Fuzz(func(t *testing.T, s string) {
		n, b, err := parseVersioned(s, "ciphertext")
		if err != nil {
			return
		}
		if n < 1 {
			t.Fatalf("version %d accepted", n)
		}
		n2, b2, err := parseVersioned(formatVersioned(n, b), "ciphertext")
		if err != nil || n2 != n || string(b2) != string(b) {
			t.Fatal("format/parse round trip")
		}
	})
}

// BenchmarkEncryptHTTPS is single encrypt requests over keep-alive TLS
// (httptest server, net/http client), 16 goroutines: client and server in
// one process, so ns/op is their joint cost per request.
func BenchmarkEncryptHTTPS(b *testing.B) {
	body := fmt.Sprintf(`{"plaintext":%q}`, base64.StdEncoding.EncodeToString(make([]byte, 128)))
	encryptOverTLS(b, 8, []byte(body), 1)
}

// BenchmarkEncryptBatchHTTPS is 1000-item encrypt batches over keep-alive
// TLS, two connections (client and server in one process: ns/item is
// their joint cost, as in `go run ./bench kms`).
func BenchmarkEncryptBatchHTTPS(b *testing.B) {
	items := make([]map[string]string, 1000)
	for i := range items {
		items[i] = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(make([]byte, 128))}
	}
	body, _ := json.Marshal(map[string]any{"batch_input": items})
	encryptOverTLS(b, 1, body, len(items))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(items)), "ns/item")
}

// encryptOverTLS posts body to transit/encrypt on parallelism×GOMAXPROCS
// keep-alive connections and checks that each answer has items
// ciphertexts.
func encryptOverTLS(b *testing.B, parallelism int, body []byte, items int) {
	k := startKMS(b, b.TempDir(), func(c *Config) { c.Audit = io.Discard })
	create, _ := http.NewRequest("POST", k.srv.URL+"/v1/transit/keys/b", nil)
	create.Header.Set("X-Vault-Token", k.root)
	if resp, err := k.srv.Client().Do(create); err == nil {
		resp.Body.Close()
	}
	client := k.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf bytes.Buffer
		for pb.Next() {
			req, _ := http.NewRequest("POST", k.srv.URL+"/v1/transit/encrypt/b", bytes.NewReader(body))
			req.Header.Set("X-Vault-Token", k.root)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			buf.Reset()
			buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || bytes.Count(buf.Bytes(), []byte(`"ciphertext":"vault:v1:`)) != items {
				b.Error(resp.Status)
				return
			}
		}
	})
}
