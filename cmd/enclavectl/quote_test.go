package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// simPlatform makes a simulated platform and returns its directory.
func simPlatform(t *testing.T, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sim")
	if code, _, stderr := runCmd(t, append([]string{"sim", "init", dir}, extra...)...); code != 0 {
		t.Fatalf("sim init: %d %s", code, stderr)
	}
	return dir
}

// simQuoteFile writes a simulated quote and returns its path.
func simQuoteFile(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	args := append([]string{"sim", "quote", "--sim-dir", dir, "--report-data", "cafe", "--mrenclave", strings.Repeat("ab", 32)}, extra...)
	code, hexQuote, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("sim quote: %d %s", code, stderr)
	}
	q := filepath.Join(t.TempDir(), "q.hex")
	if err := os.WriteFile(q, []byte(hexQuote), 0o644); err != nil {
		t.Fatal(err)
	}
	return q
}

type verdictJSON struct {
	Genuine    bool   `json:"genuine"`
	Acceptable bool   `json:"acceptable"`
	Error      string `json:"error"`
	FailedStep string `json:"failed_step"`
	PolicyRule string `json:"policy_rule"`
	Hint       string `json:"hint"`
	Debug      bool   `json:"debug"`
	TCBStatus  string `json:"tcb_status"`
	Simulated  bool   `json:"simulated"`
}

func verifyJSON(t *testing.T, args ...string) (int, verdictJSON, string) {
	t.Helper()
	code, out, stderr := runCmd(t, append([]string{"quote", "verify"}, args...)...)
	var v verdictJSON
	if code != 2 {
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("exit %d, output is not JSON: %v\n%s\n%s", code, err, out, stderr)
		}
	}
	return code, v, stderr
}

// A script that runs `enclavectl quote verify && trust-it` must not trust
// a debug enclave: refused by default with its own exit status, accepted
// only when asked, and the JSON says debug either way.
func TestQuoteVerifyRefusesDebugByDefault(t *testing.T) {
	dir := simPlatform(t)
	q := simQuoteFile(t, dir, "--debug")
	base := []string{"--quote", q, "--collateral", filepath.Join(dir, "collateral"), "--root", filepath.Join(dir, "root_ca.pem")}

	code, v, stderr := verifyJSON(t, base...)
	if code != 3 || !v.Genuine || v.Acceptable || !v.Debug || v.PolicyRule != "debug" {
		t.Errorf("debug quote by default: exit %d %+v; want 3, genuine, not acceptable, debug", code, v)
	}
	if !strings.Contains(v.Hint, "--allow-debug") || !strings.Contains(stderr, "hint:") {
		t.Errorf("no hint towards --allow-debug: %q / %q", v.Hint, stderr)
	}
	code, v, _ = verifyJSON(t, append(base, "--allow-debug")...)
	if code != 0 || !v.Genuine || !v.Acceptable || !v.Debug {
		t.Errorf("debug quote with --allow-debug: exit %d %+v", code, v)
	}

	// A policy file decides the same way, and refuses the mixture of both.
	pol := filepath.Join(t.TempDir(), "p.toml")
	os.WriteFile(pol, []byte("[peers]\nmrenclave = [\""+strings.Repeat("ab", 32)+"\"]\nallow_simulated = true\n"), 0o644)
	if code, v, _ = verifyJSON(t, append(base, "--policy", pol)...); code != 3 || v.PolicyRule != "debug" {
		t.Errorf("debug quote under a policy file: exit %d %+v", code, v)
	}
	if code, _, _ = verifyJSON(t, append(base, "--policy", pol, "--allow-debug")...); code != 2 {
		t.Errorf("--policy with --allow-debug: exit %d, want 2", code)
	}
}

func TestQuoteVerifyPolicyFile(t *testing.T) {
	dir := simPlatform(t)
	q := simQuoteFile(t, dir)
	base := []string{"--quote", q, "--collateral", filepath.Join(dir, "collateral"), "--root", filepath.Join(dir, "root_ca.pem")}
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "p.toml")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	right := write("[peers]\nmrenclave = [\"" + strings.Repeat("ab", 32) + "\"]\nallow_simulated = true\n")
	wrong := write("[peers]\nmrenclave = [\"" + strings.Repeat("cd", 32) + "\"]\nallow_simulated = true\n")
	sgxOnly := write("[peers]\nmrenclave = [\"" + strings.Repeat("ab", 32) + "\"]\n")
	if code, v, _ := verifyJSON(t, append(base, "--policy", right)...); code != 0 || !v.Acceptable {
		t.Errorf("matching policy: exit %d %+v", code, v)
	}
	if code, v, _ := verifyJSON(t, append(base, "--policy", wrong)...); code != 3 || v.PolicyRule != "mrenclave" || !v.Genuine {
		t.Errorf("other MRENCLAVE: exit %d %+v", code, v)
	}
	if code, v, _ := verifyJSON(t, append(base, "--policy", sgxOnly)...); code != 3 || v.PolicyRule != "simulated" {
		t.Errorf("SGX-only policy, simulated quote: exit %d %+v", code, v)
	}
	if code, _, stderr := runCmd(t, append([]string{"quote", "verify"}, append(base, "--policy", write("[peers]\n"))...)...); code != 1 || !strings.Contains(stderr, "hint:") {
		t.Errorf("policy naming nothing: exit %d %s", code, stderr)
	}
}

func TestQuoteVerifyAcceptStatus(t *testing.T) {
	dir := simPlatform(t, "--out-of-date")
	q := simQuoteFile(t, dir)
	base := []string{"--quote", q, "--collateral", filepath.Join(dir, "collateral"), "--root", filepath.Join(dir, "root_ca.pem")}
	code, v, _ := verifyJSON(t, base...)
	if code != 3 || v.PolicyRule != "tcb-status" || v.TCBStatus != "OutOfDate" || !strings.Contains(v.Hint, "--accept-status OutOfDate") {
		t.Errorf("out-of-date platform by default: exit %d %+v", code, v)
	}
	if code, v, _ = verifyJSON(t, append(base, "--accept-status", "UpToDate,OutOfDate")...); code != 0 || !v.Acceptable {
		t.Errorf("--accept-status OutOfDate: exit %d %+v", code, v)
	}
	for _, bad := range []string{"Revoked", "Fine", "UpToDate,"} {
		if code, _, _ := verifyJSON(t, append(base, "--accept-status", bad)...); code != 2 {
			t.Errorf("--accept-status %q: exit %d, want 2", bad, code)
		}
	}
}

// Errors a user can cause carry a hint that says what to do.
func TestQuoteVerifyHints(t *testing.T) {
	dir := simPlatform(t)
	q := simQuoteFile(t, dir)

	// A simulated quote checked against Intel's root: it says so and
	// points at --root.
	code, v, _ := verifyJSON(t, "--quote", q, "--collateral", filepath.Join(dir, "collateral"))
	if code != 1 || v.Genuine || v.FailedStep != "pck-chain" || !strings.Contains(v.Hint, "simulated") || !strings.Contains(v.Hint, "--root") {
		t.Errorf("simulated quote under Intel's root: exit %d %+v", code, v)
	}

	// The real quote today: a certificate or the collateral has expired;
	// the error names the item and its dates, the hint points at --at.
	real := "../../testdata/dcap-real-quote-a"
	code, v, _ = verifyJSON(t, "--quote", real+"/quote.bin", "--collateral", real)
	if code != 1 || !strings.Contains(v.Error, "valid from") && !strings.Contains(v.Error, "next update") || !strings.Contains(v.Hint, "--at") {
		t.Errorf("real quote now: exit %d %+v", code, v)
	}
	// Collateral issued after the verification time.
	code, v, _ = verifyJSON(t, "--quote", real+"/quote.bin", "--collateral", real, "--at", "2022-12-16T12:45:35Z")
	if code != 1 || !strings.Contains(v.Error, "issued") || !strings.Contains(v.Hint, "--at") {
		t.Errorf("real quote before its collateral: exit %d %+v", code, v)
	}
	// A missing collateral directory.
	code, v, _ = verifyJSON(t, "--quote", q, "--collateral", t.TempDir(), "--root", filepath.Join(dir, "root_ca.pem"))
	if code != 1 || v.FailedStep != "collateral" || !strings.Contains(v.Hint, "tcb_info.json") {
		t.Errorf("empty collateral directory: exit %d %+v", code, v)
	}
	// Not a quote.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("hello"), 0o644)
	code, v, _ = verifyJSON(t, "--quote", junk, "--collateral", filepath.Join(dir, "collateral"))
	if code != 1 || v.FailedStep != "parse" || v.Hint == "" {
		t.Errorf("junk: exit %d %+v", code, v)
	}
}
