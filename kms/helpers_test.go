package kms

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
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

type testKMS struct {
	svc   *Service
	st    *store.Store
	srv   *httptest.Server
	root  string
	audit *syncBuf
}

func testRoot(t testing.TB) *seal.Root {
	r, err := seal.NewRoot(bytes.Repeat([]byte{0x42}, 16))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startKMS runs the service over TLS (httptest) with a sealed store in dir.
func startKMS(t testing.TB, dir string, tweak func(*Config)) *testKMS {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t), Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	audit := &syncBuf{}
	cfg := Config{Store: st, Audit: audit}
	if tweak != nil {
		tweak(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var root string
	if _, err := svc.Bootstrap(func(tok, _ string) error { root = tok; return nil }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(svc.Handler())
	k := &testKMS{svc: svc, st: st, srv: srv, root: root, audit: audit}
	t.Cleanup(k.stop)
	return k
}

func (k *testKMS) stop() {
	if k.srv != nil {
		k.srv.Close()
		k.st.Close()
		k.srv = nil
	}
}

// vaultClient is HashiCorp Vault's own Go client, pointed at our server.
func (k *testKMS) vaultClient(t testing.TB, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = k.srv.URL
	cfg.HttpClient = k.srv.Client()
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func slogTo(w *syncBuf) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
