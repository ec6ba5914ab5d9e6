package kms

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSnapshotEndpoint: sys/storage/raft/snapshot answers with what the
// service can do — the archive the Snapshot hook writes; 500 with nothing
// sent when taking it fails; 400 naming the reason without a hook; 400
// for a restore; 403 without sudo — and each is audited.
func TestSnapshotEndpoint(t *testing.T) {
	fail := false
	k := startKMS(t, t.TempDir(), func(c *Config) {
		c.Snapshot = func() (func(io.Writer) error, error) {
			if fail {
				return nil, errors.New("disk full")
			}
			return func(w io.Writer) error { _, err := io.WriteString(w, "ARCHIVE"); return err }, nil
		}
	})
	get := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", k.srv.URL+"/v1/sys/storage/raft/snapshot", nil)
		req.Header.Set("X-Vault-Token", token)
		resp, err := k.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(k.root); code != 200 || body != "ARCHIVE" {
		t.Fatalf("snapshot: %d %q", code, body)
	}
	fail = true
	if code, body := get(k.root); code != 500 || !strings.Contains(body, "taking the snapshot failed") || strings.Contains(body, "disk full") {
		t.Fatalf("a failed snapshot: %d %q", code, body)
	}
	if code, _ := get("not-a-token"); code != 403 {
		t.Fatalf("without a token: %d", code)
	}
	if code, body := k.raw(t, "POST", "/v1/sys/storage/raft/snapshot", k.root, "ARCHIVE"); code != 400 || !strings.Contains(strings.Join(toStrings(body["errors"]), " "), "enclavectl backup restore") {
		t.Fatalf("restore: %d %v", code, body)
	}
	if !strings.Contains(k.audit.String(), "/v1/sys/storage/raft/snapshot") {
		t.Fatal("snapshots are not audited")
	}

	m := startKMS(t, t.TempDir(), func(c *Config) { c.SnapshotRefusal = "kmsd --cluster keeps its records in JetStream" })
	req, _ := http.NewRequest("GET", m.srv.URL+"/v1/sys/storage/raft/snapshot", nil)
	req.Header.Set("X-Vault-Token", m.root)
	resp, err := m.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "JetStream") {
		t.Fatalf("without a hook: %d %s", resp.StatusCode, b)
	}
}
