package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/kms/kmstest"
	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSimInitQuoteVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	if code, _, stderr := runCmd(t, "sim", "init", dir); code != 0 {
		t.Fatalf("sim init: %d %s", code, stderr)
	}
	for _, f := range []string{"root_ca.pem", "collateral/tcb_info.json", "collateral/tcb_info_issuer_chain.pem",
		"collateral/qe_identity.json", "collateral/qe_identity_issuer_chain.pem", "collateral/pck_crl.der",
		"collateral/pck_crl_issuer_chain.pem", "collateral/root_ca_crl.der"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("sim init did not write %s", f)
		}
	}
	if code, _, _ := runCmd(t, "sim", "init", dir); code != 1 {
		t.Errorf("second sim init into the same directory: exit %d, want 1", code)
	}

	code, hexQuote, stderr := runCmd(t, "sim", "quote", "--sim-dir", dir, "--report-data", "cafe", "--mrenclave", strings.Repeat("ab", 32), "--isvsvn", "5")
	if code != 0 {
		t.Fatalf("sim quote: %d %s", code, stderr)
	}
	qfile := filepath.Join(t.TempDir(), "q.hex")
	os.WriteFile(qfile, []byte(hexQuote), 0o644)

	code, out, stderr := runCmd(t, "quote", "verify", "--quote", qfile, "--collateral", filepath.Join(dir, "collateral"), "--root", filepath.Join(dir, "root_ca.pem"))
	if code != 0 {
		t.Fatalf("quote verify: %d %s %s", code, out, stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep["genuine"] != true || rep["simulated"] != true || rep["mrenclave"] != strings.Repeat("ab", 32) ||
		rep["isvsvn"] != 5.0 || !strings.HasPrefix(rep["report_data"].(string), "cafe00") || rep["tcb_status"] != "UpToDate" {
		t.Errorf("report %v", rep)
	}

	// Without --root the Intel root is trusted, and the simulated quote is refused.
	code, out, _ = runCmd(t, "quote", "verify", "--quote", qfile, "--collateral", filepath.Join(dir, "collateral"))
	if code != 1 || !strings.Contains(out, `"genuine": false`) || !strings.Contains(out, `"failed_step": "pck-chain"`) {
		t.Errorf("simulated quote under Intel's root: exit %d, %s", code, out)
	}
}

func TestQuoteVerifyRealQuote(t *testing.T) {
	real := "../../testdata/dcap-real-quote-a"
	code, out, stderr := runCmd(t, "quote", "verify", "--quote", real+"/quote.bin", "--collateral", real, "--at", "2022-12-20T00:50:04Z")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	for _, want := range []string{`"tcb_status": "SWHardeningNeeded"`, `"simulated": false`, `"mrenclave": "68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	code, out, _ = runCmd(t, "quote", "verify", "--quote", real+"/quote.bin", "--collateral", real, "--at", "2023-01-15T12:45:37Z")
	if code != 1 || !strings.Contains(out, "qe-identity") {
		t.Errorf("expired QE identity: exit %d %s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"sim", "init"},
		{"sim", "init", "a", "b"},
		{"sim", "quote", "--report-data", "00"},
		{"sim", "quote", "--sim-dir", "x", "--report-data", "zz"},
		{"sim", "quote", "--sim-dir", "x", "--report-data", strings.Repeat("00", 65)},
		{"quote", "verify"},
		{"quote", "verify", "--quote", "q"},
		{"quote", "verify", "--quote", "q", "--collateral", "d", "--pccs", "http://x"},
		{"quote", "verify", "--quote", "q", "--collateral", "d", "--at", "yesterday"},
	} {
		if code, _, stderr := runCmd(t, args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 with a message", args, code, stderr)
		}
	}
	if code, out, _ := runCmd(t, "help"); code != 0 || !strings.Contains(out, "quote verify") {
		t.Errorf("help: %d", code)
	}
	if code, stdout, stderr := runCmd(t, "sim", "init", "--help"); code != 0 || !strings.Contains(stdout, "-out-of-date") || stderr != "" {
		t.Errorf("sim init --help: %d %q %q", code, stdout, stderr)
	}
}

func TestSimQuoteMissingPlatform(t *testing.T) {
	code, _, stderr := runCmd(t, "sim", "quote", "--sim-dir", t.TempDir(), "--report-data", "00", "--mrenclave", strings.Repeat("00", 32))
	if code != 1 || !strings.Contains(stderr, "enclavectl sim init") {
		t.Errorf("exit %d, stderr %q: want a hint to run sim init", code, stderr)
	}
}

func TestRelayCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	common := []string{"--addr", addr, "--simulation", "--sim-dir", dir}
	if code, out, stderr := runCmd(t, append([]string{"relay", "register", "--id", "bob"}, common...)...); code != 0 || !strings.Contains(out, "registered bob") {
		t.Fatalf("register: %d %q %q", code, out, stderr)
	}
	if code, out, stderr := runCmd(t, append([]string{"relay", "send", "--id", "alice", "--to", "bob", "hello", "there"}, common...)...); code != 0 || !strings.Contains(out, "sent to bob") {
		t.Fatalf("send: %d %q %q", code, out, stderr)
	}
	runCmd(t, append([]string{"relay", "send", "--id", "alice", "--to", "bob", "again"}, common...)...)
	if code, out, _ := runCmd(t, append([]string{"relay", "poll", "--id", "bob", "--all"}, common...)...); code != 0 || out != "from alice: hello there\nfrom alice: again\n" {
		t.Fatalf("poll --all: %d %q", code, out)
	}
	if code, out, _ := runCmd(t, append([]string{"relay", "poll", "--id", "bob"}, common...)...); code != 0 || out != "no data available\n" {
		t.Fatalf("poll empty: %d %q", code, out)
	}
	if code, _, stderr := runCmd(t, append([]string{"relay", "send", "--id", "alice", "--to", "nobody", "x"}, common...)...); code != 1 || !strings.Contains(stderr, "recipient not found") {
		t.Fatalf("send to unknown: %d %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "relay", "send", "--id", "a"); code != 2 {
		t.Errorf("send without --to: exit %d", code)
	}
	if code, _, _ := runCmd(t, "relay", "bogus"); code != 2 {
		t.Errorf("relay bogus: exit %d", code)
	}
}

func TestKMSCommands(t *testing.T) {
	tmp := t.TempDir()
	sim := filepath.Join(tmp, "sim")
	addr, tok := kmstest.StartSim(t, sim)
	tokFile := filepath.Join(tmp, "tok")
	os.WriteFile(tokFile, []byte(tok+"\n"), 0o600)
	common := []string{"--addr", addr, "--simulation", "--sim-dir", sim, "--token-file", tokFile}
	kms := func(args ...string) (int, string, string) {
		return runCmd(t, append(append([]string{"kms"}, args...), common...)...)
	}
	if code, out, stderr := kms("key", "create", "app", "--type", "chacha20-poly1305"); code != 0 || !strings.Contains(out, "created app") {
		t.Fatalf("key create: %d %q %q", code, out, stderr)
	}
	code, ct, stderr := kms("encrypt", "app", "hello world")
	if code != 0 || !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("encrypt: %d %q %q", code, ct, stderr)
	}
	if code, out, _ := kms("decrypt", "app", strings.TrimSpace(ct)); code != 0 || out != "hello world\n" {
		t.Fatalf("decrypt: %d %q", code, out)
	}
	if code, out, _ := kms("key", "read", "app"); code != 0 || !strings.Contains(out, `"type": "chacha20-poly1305"`) {
		t.Fatalf("key read: %d %q", code, out)
	}
	pol := filepath.Join(tmp, "p.hcl")
	os.WriteFile(pol, []byte(`path "transit/encrypt/app" { capabilities = ["update"] }`), 0o644)
	if code, _, stderr := kms("policy", "write", "enc", pol); code != 0 {
		t.Fatalf("policy write: %q", stderr)
	}
	code, newTok, stderr := kms("token", "create", "--policies", "enc")
	if code != 0 || !strings.HasPrefix(newTok, "se.") {
		t.Fatalf("token create: %d %q %q", code, newTok, stderr)
	}
	os.WriteFile(tokFile, []byte(newTok), 0o600)
	if code, _, _ := kms("encrypt", "app", "x"); code != 0 {
		t.Fatal("limited token cannot encrypt")
	}
	if code, _, stderr := kms("decrypt", "app", strings.TrimSpace(ct)); code != 1 || !strings.Contains(stderr, "permission denied") {
		t.Fatalf("limited token decrypted: %d %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "kms", "bogus"); code != 2 {
		t.Error("kms bogus")
	}
	if code, _, _ := runCmd(t, append([]string{"kms", "encrypt", "app"}, common...)...); code != 2 {
		t.Error("encrypt without plaintext")
	}
}

// Every error a user can cause in the relay and kms commands ends with a
// hint saying what to do next.
func TestRelayAndKMSHints(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "sim")
	addr := relaytest.StartSim(t, dir)
	other := filepath.Join(tmp, "other")
	if code, _, stderr := runCmd(t, "sim", "init", other); code != 0 {
		t.Fatal(stderr)
	}
	common := []string{"--addr", addr, "--simulation", "--sim-dir", dir}
	kaddr, tok := kmstest.StartSim(t, filepath.Join(tmp, "kmssim"))
	bad := filepath.Join(tmp, "bad.token")
	os.WriteFile(bad, []byte("not-a-token"), 0o600)
	kcommon := []string{"--addr", kaddr, "--simulation", "--sim-dir", filepath.Join(tmp, "kmssim")}
	good := filepath.Join(tmp, "root.token")
	os.WriteFile(good, []byte(tok), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		hint string
	}{
		{"recipient unknown", append([]string{"relay", "send", "--id", "a", "--to", "nobody", "x"}, common...), 1, "never registered at this relay"},
		{"relay's platform differs", []string{"relay", "register", "--id", "a", "--addr", addr, "--simulation", "--sim-dir", other}, 1, "--sim-dir must be the simulated platform the relay runs on"},
		{"nothing listening", []string{"relay", "register", "--id", "a", "--addr", "127.0.0.1:1", "--simulation", "--sim-dir", dir}, 1, "nothing is listening at 127.0.0.1:1"},
		{"relay without id", append([]string{"relay", "poll"}, common...), 2, "--id is required"},
		{"relay under SGX without policy", []string{"relay", "poll", "--id", "a", "--addr", addr}, 1, "gramine-sgx, or pass --simulation"},
		{"kms without token", append([]string{"kms", "key", "list"}, kcommon...), 2, "give --token-file FILE or set SHARED_ENCLAVE_TOKEN"},
		{"kms with a bad token", append([]string{"kms", "key", "list", "--token-file", bad}, kcommon...), 1, "hint: the token is not valid, or its policies do not grant this path"},
		{"kms key unknown", append([]string{"kms", "key", "read", "nope", "--token-file", good}, kcommon...), 1, "hint: `enclavectl kms key list` shows the keys"},
		{"kms platform differs", []string{"kms", "key", "list", "--addr", kaddr, "--simulation", "--sim-dir", other, "--token-file", good}, 1, "hint: kmsd's certificate did not pass attestation"},
		{"kms under SGX without policy", []string{"kms", "key", "list", "--addr", kaddr, "--token-file", good}, 1, "hint: under SGX, --policy FILE says which kmsd enclaves to trust"},
		{"kms token create without policies", append([]string{"kms", "token", "create", "--token-file", good}, kcommon...), 2, "--policies is required"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.hint) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", tc.name, code, stderr, tc.code, tc.hint)
		}
	}
}

// The sim, measure and ratls commands' errors carry a hint too.
func TestSimMeasureRatlsHints(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "sim")
	if code, _, stderr := runCmd(t, "sim", "init", dir); code != 0 {
		t.Fatal(stderr)
	}
	exe, _ := os.Executable()
	for _, tc := range []struct {
		name string
		args []string
		hint string
	}{
		{"sim refresh of no platform", []string{"sim", "refresh", tmp}, "hint: "},
		{"sim quote to an unwritable path", []string{"sim", "quote", "--sim-dir", dir, "--report-data", "00", "--mrenclave", strings.Repeat("00", 32), "--out", filepath.Join(tmp, "no", "q.bin")}, "hint: --out must be a path you can write"},
		{"sim serve on a bad address", []string{"sim", "serve", "--sim-dir", dir, "--listen", "256.0.0.1:1"}, "hint: --listen ADDR could not be bound"},
		{"measure a missing binary", []string{"measure", filepath.Join(tmp, "nope")}, "hint: give the path of a binary"},
		{"measure with no platform", []string{"measure", exe, "--sim-dir", tmp}, "hint: "},
		{"ratls cert outside an enclave", []string{"ratls", "cert", "--out", filepath.Join(tmp, "c.pem"), "--key-out", filepath.Join(tmp, "k.pem")}, "hint: this command attests itself to its peer, so it needs an enclave"},
		{"ratls inspect a missing file", []string{"ratls", "inspect", filepath.Join(tmp, "nope.pem")}, "hint: CERT must be a readable PEM or DER certificate"},
		{"quote verify of a missing file", []string{"quote", "verify", "--quote", filepath.Join(tmp, "nope"), "--collateral", filepath.Join(dir, "collateral")}, "hint: --quote must be a readable file"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.hint) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", tc.name, code, stderr, tc.hint)
		}
	}
}
