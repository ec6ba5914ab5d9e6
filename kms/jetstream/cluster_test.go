package jetstream_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
	"github.com/sharedenclave/sharedenclave/kms"
	kmsjs "github.com/sharedenclave/sharedenclave/kms/jetstream"
)

// replica is one kms.Service on the shared bucket, served over TLS.
type replica struct {
	svc *kms.Service
	st  *kmsjs.Store
	srv *httptest.Server
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

// connect connects to the cluster, trying url first.
func connect(t testing.TB, c *natstest.Cluster, first int) *nats.Conn {
	urls := c.URLs()
	urls = append(urls[first:], urls[:first]...)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func startReplica(t testing.TB, c *natstest.Cluster, node int, dk *custody.DataKey) *replica {
	t.Helper()
	root, err := dk.Root()
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, c, node)
	var st *kmsjs.Store
	// Open itself waits out "no suitable peers" for its timeout; a loaded
	// machine has once needed longer, so the test gives it a minute and,
	// if that is not enough, shows what the servers said.
	for start := time.Now(); ; time.Sleep(250 * time.Millisecond) {
		if st, err = kmsjs.Open(t.Context(), kmsjs.Options{Conn: nc, Root: root, Replicas: 3}); err == nil {
			break
		}
		if time.Since(start) > time.Minute {
			for _, n := range c.Nodes {
				t.Logf("%s's log:\n%s", n.Name, n.Logs())
			}
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { st.Close() })
	svc, err := kms.New(kms.Config{Storage: st, Audit: &syncBuf{}, StorageTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &replica{svc: svc, st: st, srv: srv}
}

// startPair starts a three-node nats-server cluster and two replicas on
// it (A on node 0, B on node 1) sharing one data key; A bootstraps.
func startPair(t *testing.T) (c *natstest.Cluster, a, b *replica, rootToken string) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c = natstest.Start(t, 3)
	dk, err := custody.NewDataKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a = startReplica(t, c, 0, dk)
	if _, err := a.svc.Bootstrap(func(tok, _ string) error { rootToken = tok; return nil }); err != nil {
		t.Fatal(err)
	}
	b = startReplica(t, c, 1, dk)
	if created, err := b.svc.Bootstrap(func(string, string) error { t.Fatal("B bootstrapped a second root token"); return nil }); err != nil || created {
		t.Fatalf("B: %v %v", created, err)
	}
	return c, a, b, rootToken
}

func (r *replica) call(t testing.TB, tok, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, r.srv.URL+"/v1/"+path, rd)
	req.Header.Set("X-Vault-Token", tok)
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (r *replica) must(t testing.TB, tok, method, path string, body any) map[string]any {
	t.Helper()
	st, out := r.call(t, tok, method, path, body)
	if st != 200 && st != 204 {
		t.Fatalf("%s %s: %d %v", method, path, st, out)
	}
	if d, ok := out["data"].(map[string]any); ok {
		return d
	}
	return out
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestKeyCreatedOnOneReplicaUsedOnTheOther(t *testing.T) {
	_, a, b, root := startPair(t)
	a.must(t, root, "POST", "transit/keys/shared", map[string]any{})
	ct := b.must(t, root, "POST", "transit/encrypt/shared", map[string]any{"plaintext": b64("hello")})["ciphertext"].(string)
	if pt := a.must(t, root, "POST", "transit/decrypt/shared", map[string]any{"ciphertext": ct})["plaintext"]; pt != b64("hello") {
		t.Fatalf("A decrypted %v", pt)
	}
	// Rotated on B, the next request on A encrypts with version 2.
	b.must(t, root, "POST", "transit/keys/shared/rotate", nil)
	ct2 := a.must(t, root, "POST", "transit/encrypt/shared", map[string]any{"plaintext": b64("again")})["ciphertext"].(string)
	if !strings.HasPrefix(ct2, "vault:v2:") {
		t.Fatalf("A encrypted with %q after B rotated", ct2[:9])
	}
	if pt := b.must(t, root, "POST", "transit/decrypt/shared", map[string]any{"ciphertext": ct2})["plaintext"]; pt != b64("again") {
		t.Fatalf("B decrypted %v", pt)
	}
	// Scan (not used by the service, which watches) reads it too.
	n := 0
	if err := a.st.Scan("kms/key", func(key, value []byte, rev uint64, err error) error {
		if err != nil || !bytes.Contains(value, []byte(`"shared"`)) || rev == 0 {
			t.Errorf("scan: %v %d", err, rev)
		}
		n++
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("scan found %d keys: %v", n, err)
	}
	// Listed and deleted across replicas.
	if keys := b.must(t, root, "LIST", "transit/keys", nil)["keys"].([]any); len(keys) != 1 || keys[0] != "shared" {
		t.Fatalf("B lists %v", keys)
	}
	a.must(t, root, "POST", "transit/keys/shared/config", map[string]any{"deletion_allowed": true})
	b.must(t, root, "DELETE", "transit/keys/shared", nil)
	if st, _ := a.call(t, root, "POST", "transit/encrypt/shared", map[string]any{"plaintext": b64("x")}); st != 200 {
		// Vault's upsert: encrypt to a missing key creates it anew.
		t.Fatalf("encrypt after delete: %d", st)
	}
	ct3 := b.must(t, root, "POST", "transit/encrypt/shared", map[string]any{"plaintext": b64("new")})["ciphertext"].(string)
	if !strings.HasPrefix(ct3, "vault:v1:") {
		t.Fatalf("re-created key at %q", ct3[:9])
	}
	if st, _ := a.call(t, root, "POST", "transit/decrypt/shared", map[string]any{"ciphertext": ct}); st == 200 {
		t.Fatal("a ciphertext of the deleted key decrypts under the new one")
	}
}

// TestConcurrentRotationsNeverShareAVersion rotates one key from both
// replicas at once, many rounds: every rotation gets its own version,
// none is lost, and both replicas agree.
func TestConcurrentRotationsNeverShareAVersion(t *testing.T) {
	_, a, b, root := startPair(t)
	a.must(t, root, "POST", "transit/keys/rot", map[string]any{})
	const rounds, perReplica = 15, 3
	seen := map[float64]bool{}
	for round := 0; round < rounds; round++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, r := range []*replica{a, b} {
			for i := 0; i < perReplica; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, out := r.call(t, root, "POST", "transit/keys/rot/rotate", nil)
					if st != 200 {
						t.Errorf("rotate: %d %v", st, out)
						return
					}
					v := out["data"].(map[string]any)["latest_version"].(float64)
					mu.Lock()
					defer mu.Unlock()
					if seen[v] {
						t.Errorf("version %v made twice", v)
					}
					seen[v] = true
				}()
			}
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		// Each replica encrypts with the newest version; the other
		// decrypts it.
		want := fmt.Sprintf("vault:v%d:", 1+(round+1)*2*perReplica)
		for _, p := range [][2]*replica{{a, b}, {b, a}} {
			ct := p[0].must(t, root, "POST", "transit/encrypt/rot", map[string]any{"plaintext": b64("r")})["ciphertext"].(string)
			if !strings.HasPrefix(ct, want) {
				t.Fatalf("round %d: encrypted with %s, want %s", round, ct[:10], want)
			}
			p[1].must(t, root, "POST", "transit/decrypt/rot", map[string]any{"ciphertext": ct})
		}
	}
	total := 1 + rounds*2*perReplica
	for _, r := range []*replica{a, b} {
		d := r.must(t, root, "GET", "transit/keys/rot", nil)
		if d["latest_version"].(float64) != float64(total) || len(d["keys"].(map[string]any)) != total {
			t.Fatalf("latest_version %v with %d versions, want %d", d["latest_version"], len(d["keys"].(map[string]any)), total)
		}
	}
}

// TestRevokedTokenRefusedEverywhere: once a revocation through one
// replica has returned, the other refuses the token on the very next
// request (no sleep, no retry).
func TestRevokedTokenRefusedEverywhere(t *testing.T) {
	_, a, b, root := startPair(t)
	for i := 0; i < 20; i++ {
		on, other := a, b
		if i%2 == 1 {
			on, other = b, a
		}
		auth := on.must(t, root, "POST", "auth/token/create", map[string]any{"ttl": "1h"})["auth"].(map[string]any)
		tok := auth["client_token"].(string)
		other.must(t, tok, "GET", "auth/token/lookup-self", nil)
		// A child made on the other replica goes with it.
		child := other.must(t, tok, "POST", "auth/token/create", map[string]any{})["auth"].(map[string]any)["client_token"].(string)
		switch i % 3 {
		case 0:
			on.must(t, tok, "POST", "auth/token/revoke-self", nil)
		case 1:
			on.must(t, root, "POST", "auth/token/revoke", map[string]any{"token": tok})
		case 2:
			on.must(t, root, "POST", "auth/token/revoke-accessor", map[string]any{"accessor": auth["accessor"]})
		}
		for _, r := range []*replica{other, on} {
			for _, x := range []string{tok, child} {
				if st, _ := r.call(t, x, "GET", "auth/token/lookup-self", nil); st != http.StatusForbidden {
					t.Fatalf("round %d: a revoked token answered %d", i, st)
				}
			}
		}
	}
	// num_uses is spent across replicas: a 2-use token works once on
	// each, then nowhere.
	tok := a.must(t, root, "POST", "auth/token/create", map[string]any{"num_uses": 2})["auth"].(map[string]any)["client_token"].(string)
	a.must(t, tok, "GET", "auth/token/lookup-self", nil)
	b.must(t, tok, "GET", "auth/token/lookup-self", nil)
	for _, r := range []*replica{a, b} {
		if st, _ := r.call(t, tok, "GET", "auth/token/lookup-self", nil); st != http.StatusForbidden {
			t.Fatalf("an exhausted token answered %d", st)
		}
	}
}

// TestPolicyWrittenOnOneReplicaAppliesOnTheOther.
func TestPolicyWrittenOnOneReplicaAppliesOnTheOther(t *testing.T) {
	_, a, b, root := startPair(t)
	a.must(t, root, "PUT", "sys/policies/acl/enc", map[string]any{"policy": `path "transit/encrypt/*" { capabilities = ["update"] }`})
	tok := b.must(t, root, "POST", "auth/token/create", map[string]any{"policies": []string{"enc"}})["auth"].(map[string]any)["client_token"].(string)
	a.must(t, root, "POST", "transit/keys/k", map[string]any{})
	b.must(t, tok, "POST", "transit/encrypt/k", map[string]any{"plaintext": b64("p")})
	b.must(t, root, "PUT", "sys/policies/acl/enc", map[string]any{"policy": `path "transit/decrypt/*" { capabilities = ["update"] }`})
	if st, _ := a.call(t, tok, "POST", "transit/encrypt/k", map[string]any{"plaintext": b64("p")}); st != http.StatusForbidden {
		t.Fatalf("a narrowed policy still allows encrypt on the other replica: %d", st)
	}
}

// TestNATSNodeKilled: kill -9 of one nats-server node (the one replica
// A is connected to) while both replicas rotate a key and encrypt with
// it. Requests during JetStream's leader election may answer 503; after
// it both replicas serve again, every acknowledged rotation has its own
// version and none is lost, and ciphertexts made before the kill decrypt.
func TestNATSNodeKilled(t *testing.T) {
	c, a, b, root := startPair(t)
	a.must(t, root, "POST", "transit/keys/k", map[string]any{})
	before := a.must(t, root, "POST", "transit/encrypt/k", map[string]any{"plaintext": b64("before")})["ciphertext"].(string)

	var mu sync.Mutex
	acked := map[float64]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, out := r.call(t, root, "POST", "transit/keys/k/rotate", nil)
				if st == 200 {
					mu.Lock()
					acked[out["data"].(map[string]any)["latest_version"].(float64)]++
					mu.Unlock()
				} else if st != http.StatusServiceUnavailable && st != http.StatusInternalServerError {
					t.Errorf("rotate during the kill: %d %v", st, out)
				}
				r.call(t, root, "POST", "transit/encrypt/k", map[string]any{"plaintext": b64("during")})
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	c.Nodes[0].Kill()
	time.Sleep(2 * time.Second)
	// Both replicas serve again within a generous bound.
	deadline := time.Now().Add(60 * time.Second)
	for _, r := range []*replica{a, b} {
		for {
			st, out := r.call(t, root, "POST", "transit/encrypt/k", map[string]any{"plaintext": b64("after")})
			if st == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no encrypt after a node was killed: %d %v", st, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 2 {
		t.Fatalf("only %d rotations acknowledged", len(acked))
	}
	var latest float64
	for _, r := range []*replica{a, b} {
		d := r.must(t, root, "GET", "transit/keys/k", nil)
		if latest != 0 && d["latest_version"].(float64) != latest {
			t.Fatalf("replicas disagree on the latest version: %v and %v", latest, d["latest_version"])
		}
		latest = d["latest_version"].(float64)
		versions := d["keys"].(map[string]any)
		for v, n := range acked {
			if n != 1 {
				t.Fatalf("version %v acknowledged %d times", v, n)
			}
			if versions[fmt.Sprint(v)] == nil {
				t.Fatalf("acknowledged version %v lost", v)
			}
		}
		if pt := r.must(t, root, "POST", "transit/decrypt/k", map[string]any{"ciphertext": before})["plaintext"]; pt != b64("before") {
			t.Fatal("a ciphertext from before the kill does not decrypt")
		}
	}
	t.Logf("%d rotations acknowledged, latest version %v", len(acked), latest)
}

// TestNothingInPlaintextInJetStreamFiles imports a key whose bytes we
// know (BYOK, with the wrapping key of the other replica: one wrapping
// key for the cluster), makes tokens, keys and policies with recognisable
// names, and scans every file of every nats-server store directory.
func TestNothingInPlaintextInJetStreamFiles(t *testing.T) {
	c, a, b, root := startPair(t)
	const keyName, policyName = "conspicuous-key-name-41", "conspicuous-policy-name-42"
	keyBytes := bytes.Repeat([]byte{0x5a, 0xa5, 0x3c, 0xc3}, 8)
	pemKey := b.must(t, root, "GET", "transit/wrapping_key", nil)["public_key"].(string)
	blk, _ := pem.Decode([]byte(pemKey))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	a.must(t, root, "POST", "transit/keys/"+keyName+"/import", map[string]any{"ciphertext": wrapImport(t, pub.(*rsa.PublicKey), keyBytes), "type": "aes256-gcm96"})
	b.must(t, root, "POST", "transit/encrypt/"+keyName, map[string]any{"plaintext": b64("x")})
	a.must(t, root, "PUT", "sys/policies/acl/"+policyName, map[string]any{"policy": `path "transit/*" { capabilities = ["read"] }`})
	tok := b.must(t, root, "POST", "auth/token/create", map[string]any{"policies": []string{policyName}})["auth"].(map[string]any)["client_token"].(string)
	th := sha256.Sum256([]byte(tok))
	needles := map[string][]byte{
		"key name": []byte(keyName), "policy name": []byte(policyName), "root token": []byte(root), "token": []byte(tok),
		"token hash": th[:], "token hash (hex)": []byte(hex.EncodeToString(th[:])), "key bytes": keyBytes,
		"key bytes (base64)":           []byte(base64.StdEncoding.EncodeToString(keyBytes)),
		"key bytes (base64, unpadded)": []byte(base64.RawStdEncoding.EncodeToString(keyBytes)),
		"policy rules":                 []byte(`capabilities = ["read"]`), "record kind": []byte("kms/token"),
	}
	files := 0
	for _, dir := range c.StoreDirs() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files++
			for what, n := range needles {
				if bytes.Contains(data, n) {
					t.Errorf("%s in plaintext in %s", what, p)
				}
			}
			return nil
		})
	}
	if files == 0 {
		t.Fatal("no JetStream files found to scan")
	}
}

// TestOtherDataKeyRefused: a replica whose data key is not the
// cluster's cannot open the bucket, and a record moved to another name
// or replayed is refused.
func TestOtherDataKeyRefused(t *testing.T) {
	c, _, _, _ := startPair(t)
	other, _ := custody.NewDataKey(rand.Reader)
	root, _ := other.Root()
	_, err := kmsjs.Open(t.Context(), kmsjs.Options{Conn: connect(t, c, 2), Root: root, Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "another data key") {
		t.Fatalf("a replica with another data key opened the bucket: %v", err)
	}
}

// wrapImport builds a BYOK import ciphertext: RSA-OAEP(SHA-256) of an
// ephemeral AES key, then the key wrapped with it (RFC 5649).
func wrapImport(t *testing.T, pub *rsa.PublicKey, key []byte) string {
	eph := make([]byte, 32)
	rand.Read(eph)
	w, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, eph, nil)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(append(w, kwp(t, eph, key)...))
}

// kwp is AES key wrap with padding (RFC 5649) for a key whose length is
// a multiple of 8 (no padding needed), at least 16 bytes.
func kwp(t *testing.T, kek, key []byte) []byte {
	blk, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	n := len(key) / 8
	a := make([]byte, 8)
	copy(a, []byte{0xa6, 0x59, 0x59, 0xa6})
	binary.BigEndian.PutUint32(a[4:], uint32(len(key)))
	r := make([][]byte, n)
	for i := range r {
		r[i] = bytes.Clone(key[8*i : 8*i+8])
	}
	buf := make([]byte, 16)
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf, a)
			copy(buf[8:], r[i])
			blk.Encrypt(buf, buf)
			tt := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^tt)
			copy(r[i], buf[8:])
		}
	}
	out := append([]byte{}, a...)
	for _, x := range r {
		out = append(out, x...)
	}
	return out
}

// TestReplayedValuesRefused plays the JetStream operator: it copies every
// message of the bucket's stream, revokes a token and rotates a key, then
// publishes every old message again (a rollback of the whole bucket).
// The running replicas refuse every replayed value: the revoked token
// stays refused, the key stays at its newest version.
func TestReplayedValuesRefused(t *testing.T) {
	c, a, b, root := startPair(t)
	a.must(t, root, "POST", "transit/keys/k", map[string]any{})
	tok := a.must(t, root, "POST", "auth/token/create", map[string]any{})["auth"].(map[string]any)["client_token"].(string)
	b.must(t, tok, "GET", "auth/token/lookup-self", nil)

	nc := connect(t, c, 2)
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := j.Stream(t.Context(), "KV_"+kmsjs.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var old []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		if m, err := stream.GetMsg(t.Context(), seq); err == nil {
			old = append(old, m)
		}
	}
	if len(old) < 3 {
		t.Fatalf("only %d messages in the bucket", len(old))
	}
	a.must(t, root, "POST", "auth/token/revoke", map[string]any{"token": tok})
	b.must(t, root, "POST", "transit/keys/k/rotate", nil)
	for _, m := range old {
		h := nats.Header{} // the operator drops the original's expectation
		if op := m.Header.Get("KV-Operation"); op != "" {
			h.Set("KV-Operation", op)
		}
		if _, err := j.PublishMsg(t.Context(), &nats.Msg{Subject: m.Subject, Data: m.Data, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*replica{a, b} {
		if st, _ := r.call(t, tok, "GET", "auth/token/lookup-self", nil); st != http.StatusForbidden {
			t.Fatalf("a revoked token works again after a replay: %d", st)
		}
		ct := r.must(t, root, "POST", "transit/encrypt/k", map[string]any{"plaintext": b64("x")})["ciphertext"].(string)
		if !strings.HasPrefix(ct, "vault:v2:") {
			t.Fatalf("the key went back to %s after a replay", ct[:9])
		}
	}
	// Each replica refused every replayed value (the requests above
	// waited for their watches to reach the end of the stream).
	if refused := a.st.Refused() + b.st.Refused(); refused != int64(2*len(old)) {
		t.Fatalf("refused %d replayed values, want %d", refused, 2*len(old))
	}
}

// BenchmarkClusterEncrypt is one encrypt request (the handler, no TLS)
// on a replica of a three-node cluster: the barrier's round trip to the
// stream leader included. BenchmarkClusterBarrier is the barrier alone.
func BenchmarkClusterEncrypt(b *testing.B) {
	c := natstest.Start(b, 3)
	dk, _ := custody.NewDataKey(rand.Reader)
	r := startReplica(b, c, 0, dk)
	var root string
	if _, err := r.svc.Bootstrap(func(tok, _ string) error { root = tok; return nil }); err != nil {
		b.Fatal(err)
	}
	r.must(b, root, "POST", "transit/keys/bench", map[string]any{})
	body, _ := json.Marshal(map[string]any{"plaintext": b64("benchmark")})
	h := r.svc.Handler()
	b.Run("encrypt", func(b *testing.B) {
		for b.Loop() {
			req := httptest.NewRequest("POST", "/v1/transit/encrypt/bench", bytes.NewReader(body))
			req.Header.Set("X-Vault-Token", root)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
	b.Run("encrypt-parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest("POST", "/v1/transit/encrypt/bench", bytes.NewReader(body))
				req.Header.Set("X-Vault-Token", root)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Error(w.Code)
					return
				}
			}
		})
	})
	b.Run("barrier", func(b *testing.B) {
		for b.Loop() {
			if err := r.st.Barrier(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestWholeNATSClusterDown: with every nats-server killed, requests are
// not served from the replica's copy (which could hold a token revoked
// meanwhile): they wait for the barrier and answer 503 (here the client
// gives up first). Once the servers are back, both replicas serve again:
// their watches resume.
func TestWholeNATSClusterDown(t *testing.T) {
	c, a, b, root := startPair(t)
	a.must(t, root, "POST", "transit/keys/k", map[string]any{})
	for _, n := range c.Nodes {
		n.Kill()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", b.srv.URL+"/v1/transit/encrypt/k", strings.NewReader(`{"plaintext":"eA=="}`))
	req.Header.Set("X-Vault-Token", root)
	resp, err := b.srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("served with the NATS cluster down: %d", resp.StatusCode)
		}
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		n.Restart()
	}
	c.WaitReady(t, 60*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for _, r := range []*replica{a, b} {
		for {
			st, out := r.call(t, root, "POST", "transit/keys/k/rotate", nil)
			if st == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not serving after the NATS cluster came back: %d %v", st, out)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if d := b.must(t, root, "GET", "transit/keys/k", nil); d["latest_version"].(float64) != 3 {
		t.Fatalf("latest version %v after two rotations", d["latest_version"])
	}
}
