package kms

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// raw sends a request with net/http and returns status and decoded body.
func (k *testKMS) raw(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, k.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := k.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func errorsOf(m map[string]any) string {
	var parts []string
	for _, e := range m["errors"].([]any) {
		parts = append(parts, e.(string))
	}
	return strings.Join(parts, "; ")
}

func TestBadInput(t *testing.T) {
	k := startKMS(t, t.TempDir(), func(c *Config) { c.MaxBody = 4096 })
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/a", nil)
	mustWrite(t, c, "transit/keys/b", nil)
	mustWrite(t, c, "transit/keys/sig", map[string]any{"type": "ed25519"})
	ctA := mustWrite(t, c, "transit/encrypt/a", map[string]any{"plaintext": b64("secret")}).Data["ciphertext"].(string)
	_, body, _ := strings.Cut(strings.TrimPrefix(ctA, "vault:"), ":")
	raw, _ := base64.StdEncoding.DecodeString(body)
	raw[len(raw)-1] ^= 1
	tampered := "vault:v1:" + base64.StdEncoding.EncodeToString(raw)

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		msg                             string
	}{
		{"malformed JSON", "POST", "/v1/transit/encrypt/a", k.root, `{"plaintext": `, 400, "JSON"},
		{"two JSON values", "POST", "/v1/transit/encrypt/a", k.root, `{} {}`, 400, "JSON"},
		{"wrong base64", "POST", "/v1/transit/encrypt/a", k.root, `{"plaintext": "%%%"}`, 400, "base64"},
		{"plaintext not a string", "POST", "/v1/transit/encrypt/a", k.root, `{"plaintext": 5}`, 400, "string"},
		{"unknown key", "POST", "/v1/transit/decrypt/nope", k.root, `{"ciphertext": "vault:v1:AAAA"}`, 400, "encryption key not found"},
		{"unknown key, read", "GET", "/v1/transit/keys/nope", k.root, ``, 404, ""},
		{"sign with an AES key", "POST", "/v1/transit/sign/a", k.root, `{"input": "YQ=="}`, 400, "does not support signing"},
		{"encrypt with ed25519", "POST", "/v1/transit/encrypt/sig", k.root, `{"plaintext": "YQ=="}`, 400, "does not support encryption"},
		{"oversize body", "POST", "/v1/transit/encrypt/a", k.root, `{"plaintext": "` + strings.Repeat("A", 5000) + `"}`, 413, "limit"},
		{"missing token", "POST", "/v1/transit/encrypt/a", "", `{"plaintext": "YQ=="}`, 403, "permission denied"},
		{"tampered ciphertext", "POST", "/v1/transit/decrypt/a", k.root, `{"ciphertext": "` + tampered + `"}`, 400, "authentication failed"},
		{"ciphertext of another key", "POST", "/v1/transit/decrypt/b", k.root, `{"ciphertext": "` + ctA + `"}`, 400, "authentication failed"},
		{"ciphertext of a version that does not exist", "POST", "/v1/transit/decrypt/a", k.root, `{"ciphertext": "` + strings.Replace(ctA, "vault:v1:", "vault:v7:", 1) + `"}`, 400, "invalid key version"},
		{"not a vault ciphertext", "POST", "/v1/transit/decrypt/a", k.root, `{"ciphertext": "hello"}`, 400, "vault:v"},
		{"unknown key type", "POST", "/v1/transit/keys/x", k.root, `{"type": "des"}`, 400, "unknown key type"},
		{"bad key name", "POST", "/v1/transit/keys/a%20b", k.root, `{}`, 400, "key name"},
		{"delete without deletion_allowed", "DELETE", "/v1/transit/keys/a", k.root, ``, 400, "deletion is not allowed"},
		{"min_decryption_version beyond latest", "POST", "/v1/transit/keys/a/config", k.root, `{"min_decryption_version": 9}`, 400, "between"},
		{"unknown path", "GET", "/v1/transit/nothing/here", k.root, ``, 404, "unsupported"},
		{"unknown top-level path", "GET", "/elsewhere", "", ``, 404, "no handler"},
		{"seed endpoint, wrong method", "POST", "/generate-aes-key", "", ``, 405, "GET"},
		{"batch too large", "POST", "/v1/transit/encrypt/a", k.root, `{"batch_input": []}`, 400, "empty"},
	} {
		status, out := k.raw(t, tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || out["errors"] == nil || !strings.Contains(errorsOf(out), tc.msg) {
			t.Errorf("%s: %d %v; want %d with %q", tc.name, status, out, tc.status, tc.msg)
		}
	}
	// Nothing half-written: a failed config change leaves the key as it was.
	s, _ := c.Logical().Read("transit/keys/a")
	if s.Data["min_decryption_version"].(json.Number) != "1" {
		t.Errorf("failed config changed the key: %v", s.Data)
	}
	// The secret is in no error message and no audit line.
	if strings.Contains(k.audit.String(), "secret") || strings.Contains(k.audit.String(), b64("secret")) {
		t.Error("audit log holds request data")
	}
}

func TestSeedEndpoints(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	status, out := k.raw(t, "GET", "/generate-aes-key", k.root, "")
	key, _ := base64.StdEncoding.DecodeString(fmt.Sprint(out["aes_key"]))
	if status != 200 || len(key) != 32 || out["encoding"] != "base64" {
		t.Fatalf("aes: %d %v", status, out)
	}
	status, out = k.raw(t, "GET", "/generate-rsa-key-pair", k.root, "")
	block, _ := pem.Decode([]byte(fmt.Sprint(out["private_key"])))
	if status != 200 || block == nil || out["encoding"] != "plaintext" {
		t.Fatalf("rsa: %d %v", status, out)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pubBlock, _ := pem.Decode([]byte(fmt.Sprint(out["public_key"])))
	pub, err := x509.ParsePKIXPublicKey(pubBlock.Bytes)
	if err != nil || !pub.(*rsa.PublicKey).Equal(priv.(*rsa.PrivateKey).Public()) {
		t.Fatal("public key does not match the private key")
	}
}

func TestKeysSurviveRestartAndNoKeyBytesOnDisk(t *testing.T) {
	dir := t.TempDir()
	k := startKMS(t, dir, nil)
	c := k.vaultClient(t, k.root)
	for _, typ := range allTypes {
		mustWrite(t, c, "transit/keys/p-"+string(typ), map[string]any{"type": string(typ)})
	}
	ct := mustWrite(t, c, "transit/encrypt/p-aes256-gcm96", map[string]any{"plaintext": b64("persist me")}).Data["ciphertext"]
	if err := c.Sys().PutPolicy("keep", `path "transit/keys/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	k.svc.mu.RLock()
	for _, key := range k.svc.keys {
		for _, v := range key.Versions {
			secrets = append(secrets, v.Secret, v.HMACKey)
		}
	}
	k.svc.mu.RUnlock()
	k.stop()

	// The store's files hold none of the key bytes, nor the root token.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, s := range secrets {
			if bytes.Contains(b, s[:16]) {
				t.Errorf("%s contains key material", p)
			}
		}
		if bytes.Contains(b, []byte(k.root)) {
			t.Errorf("%s contains the root token", p)
		}
		return nil
	})

	k2 := startKMS(t, dir, nil)
	c2 := k2.vaultClient(t, k.root) // the old root token still works
	if s := mustWrite(t, c2, "transit/decrypt/p-aes256-gcm96", map[string]any{"ciphertext": ct}); s.Data["plaintext"] != b64("persist me") {
		t.Fatal("key did not survive the restart")
	}
	if list, _ := c2.Logical().List("transit/keys"); len(list.Data["keys"].([]any)) != len(allTypes) {
		t.Fatal("keys lost")
	}
	if k2.root != "" {
		t.Fatal("a second root token was minted on restart")
	}
	if rules, err := c2.Sys().GetPolicy("keep"); err != nil || !strings.Contains(rules, "transit/keys/*") {
		t.Fatalf("policy lost across the restart: %q %v", rules, err)
	}
}

func TestTamperedStoreRefused(t *testing.T) {
	dir := t.TempDir()
	k := startKMS(t, dir, nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/victim", nil)
	mustWrite(t, c, "transit/keys/other", nil)
	k.stop()
	// Swap the two key records on disk, as the host could.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte(kindKey + "\x00"), UpperBound: []byte(kindKey + "\x01")})
	var keys, vals [][]byte
	for it.First(); it.Valid(); it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
		vals = append(vals, bytes.Clone(it.Value()))
	}
	it.Close()
	db.Set(keys[0], vals[1], pebble.Sync)
	db.Set(keys[1], vals[0], pebble.Sync)
	db.Close()

	logs := &syncBuf{}
	k2 := startKMS(t, dir, func(cfg *Config) { cfg.Logger = slogTo(logs) })
	c2 := k2.vaultClient(t, k.root)
	if s, _ := c2.Logical().Read("transit/keys/victim"); s != nil {
		t.Fatal("a swapped key record was served")
	}
	if !strings.Contains(logs.String(), "refusing") {
		t.Errorf("tampering not reported: %s", logs.String())
	}
}

func TestConcurrentRequests(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/conc", nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				msg := b64(fmt.Sprint(g, "/", i))
				s, err := c.Logical().Write("transit/encrypt/conc", map[string]any{"plaintext": msg})
				if err != nil {
					t.Error(err)
					return
				}
				if i == 10 && g == 0 {
					c.Logical().Write("transit/keys/conc/rotate", nil)
				}
				d, err := c.Logical().Write("transit/decrypt/conc", map[string]any{"ciphertext": s.Data["ciphertext"]})
				if err != nil || d.Data["plaintext"] != msg {
					t.Errorf("round trip under concurrency: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

type failWriter struct{ fail bool }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestAuditFailsClosed(t *testing.T) {
	fw := &failWriter{}
	k := startKMS(t, t.TempDir(), func(c *Config) { c.Audit = fw })
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/aud", nil)
	fw.fail = true
	if status, _ := k.raw(t, "POST", "/v1/transit/encrypt/aud", k.root, `{"plaintext":"YQ=="}`); status != 500 {
		t.Fatalf("request whose audit line failed: %d", status)
	}
	fw.fail = false
	if status, _ := k.raw(t, "POST", "/v1/transit/encrypt/aud", k.root, `{"plaintext":"YQ=="}`); status != 503 {
		t.Fatalf("request after a failed audit write: %d, want 503 until repaired", status)
	}
}

func TestAuditLines(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/aud", nil)
	mustWrite(t, c, "transit/encrypt/aud", map[string]any{"plaintext": b64("top secret plaintext")})
	k.raw(t, "POST", "/v1/transit/encrypt/aud", "", `{}`)
	lines := strings.Split(strings.TrimSpace(k.audit.String()), "\n")
	var boot auditLine
	if json.Unmarshal([]byte(lines[0]), &boot); boot.Type != "event" || boot.Path != "root-token/bootstrap" {
		t.Errorf("first audit entry %+v, want the bootstrap event", boot)
	}
	lines = lines[1:]
	if len(lines) != 6 {
		t.Fatalf("%d audit lines for 3 requests, want a request and a response entry for each", len(lines))
	}
	var req, resp auditLine
	json.Unmarshal([]byte(lines[2]), &req)
	json.Unmarshal([]byte(lines[3]), &resp)
	if req.Type != "request" || req.Path != "/v1/transit/encrypt/aud" || req.Status != 0 || req.Accessor == "" || req.Method != "PUT" {
		t.Errorf("request entry %+v", req)
	}
	if resp.Type != "response" || resp.RequestID != req.RequestID || resp.Status != 200 || resp.Accessor != req.Accessor {
		t.Errorf("response entry %+v", resp)
	}
	resp = auditLine{}
	json.Unmarshal([]byte(lines[5]), &resp)
	if resp.Type != "response" || resp.Status != 403 || resp.Error == "" || resp.Accessor != "" {
		t.Errorf("denied request audited as %+v", resp)
	}
	all := k.audit.String()
	for _, secret := range []string{"top secret", b64("top secret plaintext"), k.root} {
		if strings.Contains(all, secret) {
			t.Errorf("audit log contains %q", secret)
		}
	}
}

func TestAttestationGatedRelease(t *testing.T) {
	p, err := sim.Init(filepath.Join(t.TempDir(), "sim"), sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := dcap.New(dcap.Options{Roots: p.Roots(), Collateral: &pcs.Cache{Getter: p.Collateral()}, RequireCRLs: true})
	if err != nil {
		t.Fatal(err)
	}
	k := startKMS(t, t.TempDir(), func(c *Config) { c.Verifier = v })
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/rel", nil)
	good := sim.Identity{MREnclave: attest.Hash32{0x77}}
	bad := sim.Identity{MREnclave: attest.Hash32{0x66}}

	request := func(id sim.Identity, bindOther bool, kind string) (int, map[string]any, *ecdh.PrivateKey) {
		priv, _ := ecdh.P256().GenerateKey(rand.Reader)
		rd, der, _ := ReleaseReportData(priv.PublicKey())
		if bindOther {
			other, _ := ecdh.P256().GenerateKey(rand.Reader)
			rd, _, _ = ReleaseReportData(other.PublicKey())
		}
		q, err := p.Quote(id, rd)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"quote": base64.StdEncoding.EncodeToString(q), "kind": kind,
			"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
		status, out := k.raw(t, "POST", "/v1/transit/release/rel", k.root, string(body))
		return status, out, priv
	}
	// Not releasable until a release policy is set.
	if status, _, _ := request(good, false, "key"); status != 403 {
		t.Fatalf("release without a policy: %d", status)
	}
	mustWrite(t, c, "transit/keys/rel/config", map[string]any{"release_policy": map[string]any{
		"mrenclave": []string{good.MREnclave.String()}, "allow_simulated": true}})
	status, out, priv := request(good, false, "datakey")
	if status != 200 {
		t.Fatalf("release to a matching enclave: %d %v", status, out)
	}
	d := out["data"].(map[string]any)
	rk, err := OpenRelease(priv, d["ephemeral_public_key"].(string), d["nonce"].(string), d["ciphertext"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// The released data key is the plaintext of its own ciphertext.
	dec := mustWrite(t, c, "transit/decrypt/rel", map[string]any{"ciphertext": rk.Ciphertext})
	if dec.Data["plaintext"] != base64.StdEncoding.EncodeToString(rk.Key) || len(rk.Key) != 32 {
		t.Fatal("released data key does not match its ciphertext")
	}
	if status, _, _ := request(bad, false, "key"); status != 403 {
		t.Errorf("release to another enclave: %d", status)
	}
	if status, _, _ := request(good, true, "key"); status != 403 {
		t.Errorf("release whose quote binds another public key: %d", status)
	}
	// Someone else's private key cannot open the answer.
	_, out, _ = request(good, false, "key")
	d = out["data"].(map[string]any)
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	if _, err := OpenRelease(other, d["ephemeral_public_key"].(string), d["nonce"].(string), d["ciphertext"].(string)); err == nil {
		t.Error("release answer opened with another key")
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
