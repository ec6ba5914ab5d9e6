package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
	"github.com/sharedenclave/sharedenclave/store/snapshot"
)

// TestRelaydOnlineBackupRestoredElsewhere: POST /backup on the metrics
// listener of a running relay writes a snapshot into --backup-dir; the
// relay keeps serving. Unpacked on another simulated CPU and opened
// through the operators' shares, it delivers every message queued before
// the backup, in order, and none sent after it.
func TestRelaydOnlineBackupRestoredElsewhere(t *testing.T) {
	tmp := t.TempDir()
	simA := filepath.Join(tmp, "simA")
	data, sharesDir, backups := filepath.Join(tmp, "data"), filepath.Join(tmp, "shares"), filepath.Join(tmp, "backups")
	ops := custodytest.NewOperators(t, tmp, 2)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	addr, _, stop := startRun(t, "--simulation", "--sim-dir", simA, "--data-dir", data, "--log-format", "json", "--listen", "127.0.0.1:0",
		"--metrics-listen", metricsAddr, "--backup-dir", backups,
		"--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", sharesDir)
	defer stop()
	beA, err := backend.Open(backend.Options{Simulation: true, SimDir: simA})
	if err != nil {
		t.Fatal(err)
	}
	dialAs(t, beA, addr, "bob").Close()
	a := dialAs(t, beA, addr, "alice")
	defer a.Close()
	var want []string
	for i := 0; i < 20; i++ {
		m := fmt.Sprint("queued before the backup ", i)
		if err := a.Send("bob", []byte(m)); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	post := func() (int, map[string]any) {
		resp, err := http.Post("http://"+metricsAddr+"/backup", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := post()
	if code != http.StatusOK {
		t.Fatalf("POST /backup: %d %v", code, body)
	}
	file, _ := body["file"].(string)
	if filepath.Dir(file) != backups || !strings.HasPrefix(filepath.Base(file), "relay-") || !strings.HasSuffix(file, ".snap") {
		t.Fatalf("backup file %q", file)
	}
	// The relay goes on serving.
	if err := a.Send("bob", []byte("sent after the backup")); err != nil {
		t.Fatal(err)
	}
	// GET is not a backup; the metrics are still there.
	if resp, err := http.Get("http://" + metricsAddr + "/backup"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /backup: %v %v", resp, err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", resp, err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), "shared_enclave_store_sequence 1\n") {
		t.Errorf("/metrics lacks the store's sequence (1 for a new data dir)")
	}
	shares := ops.Shares(t, sharesDir, "relay-")
	custodytest.Scan(t, append(custodytest.Secrets(shares), []byte("queued before")), backups)
	if left, _ := filepath.Glob(filepath.Join(data, ".snapshot-*")); len(left) != 0 {
		t.Fatalf("temporary copies left: %v", left)
	}

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(tmp, "restored")
	if _, err := snapshot.Extract(bytes.NewReader(b), restored, snapshot.Limits{}); err != nil {
		t.Fatal(err)
	}
	receiveOnAnotherCPU(t, tmp, restored, shares, want)
}

// TestRelaydBackupDirFlags: --backup-dir is refused wherever it could not
// work, with the reason.
func TestRelaydBackupDirFlags(t *testing.T) {
	for args, want := range map[string]string{
		"--simulation --backup-dir x --metrics-listen 127.0.0.1:0":                            "needs --data-dir",
		"--simulation --data-dir d --backup-dir x":                                            "--metrics-listen",
		"--simulation --data-dir d --backup-dir x --metrics-listen 127.0.0.1:0 --backup-to y": "--backup-to",
	} {
		var out syncBuf
		if code := run(t.Context(), strings.Fields(args), noEnv, &out, &out, nil); code != 2 || !strings.Contains(out.String(), want) {
			t.Errorf("%s: exit %d, %q (want %q)", args, code, out.String(), want)
		}
	}
}
