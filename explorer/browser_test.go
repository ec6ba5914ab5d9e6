package explorer_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/explorer"
	"github.com/sharedenclave/sharedenclave/kms/kmstest"
)

// findChromium returns the browser to drive, or skips the test — unless
// SHARED_ENCLAVE_REQUIRE_BROWSER=1 (set by .ci/run), where a missing
// browser fails it.
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SHARED_ENCLAVE_REQUIRE_BROWSER") == "1" {
		t.Fatal("SHARED_ENCLAVE_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install -y chromium)")
	}
	t.Skip("browser test skipped: no chromium on PATH (apt-get install -y chromium; .ci/run installs it and sets SHARED_ENCLAVE_REQUIRE_BROWSER=1)")
	return ""
}

// tab is one browser tab under test.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func (b tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// js evaluates a JavaScript expression in the page and returns its value
// as a string (DevTools evaluation, which the page's CSP does not govern).
func (b tab) js(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func (b tab) text(id string) string {
	b.t.Helper()
	return strings.TrimSpace(b.js(fmt.Sprintf(`document.getElementById(%q).textContent`, id)))
}

// waitFor polls a JavaScript condition until it holds.
func (b tab) waitFor(cond string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond))
		if err == nil && v {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %s for %s (last error %v); page error box: %q", d, cond, err, b.js(`(document.getElementById("error")||{}).textContent||""`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the top of the page, width × height, as PNG in
// $SHARED_ENCLAVE_SCREENSHOTS, if set.
func (b tab) screenshot(name string, width, height int64) {
	dir := os.Getenv("SHARED_ENCLAVE_SCREENSHOTS")
	if dir == "" {
		return
	}
	b.js(`window.scrollTo(0, 0); ""`)
	b.do(chromedp.EmulateViewport(width, height))
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// submit presses Verify and waits for a new result or error.
func (b tab) submit() {
	b.t.Helper()
	b.js(`document.getElementById("report").hidden = true; document.getElementById("error").hidden = true; ""`)
	b.do(chromedp.Click(chromedp.ID("verify")))
	b.waitFor(`!document.getElementById("report").hidden || !document.getElementById("error").hidden`, 20*time.Second)
}

// TestBrowser drives the explorer in headless Chromium: one browser, the
// explorer in one tab and the status page in another.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	ts := startExplorer(t, explorer.Config{})
	tmp := t.TempDir()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(tmp, "profile")),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()
	b := tab{t, bctx}

	// 1. The real Intel quote, uploaded, with its collateral at its time.
	quotePath, err := filepath.Abs(filepath.Join(realDir, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.Navigate(ts.URL + "/"))
	b.do(
		chromedp.Click(chromedp.CSS(`button.tab[data-tab="upload"]`)),
		chromedp.SetUploadFiles(chromedp.ID("quote_file"), []string{quotePath}),
		chromedp.SetValue(chromedp.ID("location"), absRealDir(t)),
		chromedp.SetValue(chromedp.ID("at"), realAt),
	)
	b.submit()
	if got := b.text("verdict-status"); got != "GENUINE · ACCEPTABLE" {
		t.Errorf("status %q; error box %q", got, b.text("error"))
	}
	if got := b.text("mrenclave"); got != realMREnclave {
		t.Errorf("MRENCLAVE %q", got)
	}
	if got := b.text("tcb-status"); got != "SWHardeningNeeded" {
		t.Errorf("TCB status %q", got)
	}
	if got := b.text("advisories"); got != "INTEL-SA-00615 INTEL-SA-00657" {
		t.Errorf("advisories %q", got)
	}
	matched := b.js(`Array.from(document.querySelectorAll("#tcb-table tbody tr.matched")).map(r => r.textContent).join("|")`)
	if !strings.Contains(matched, "SWHardeningNeeded") || !strings.Contains(matched, "2022-08-10") || !strings.Contains(matched, "INTEL-SA-00615") || strings.Contains(matched, "|") {
		t.Errorf("highlighted TCB level %q", matched)
	}
	if n := b.js(`String(document.querySelectorAll("#steps li.step.passed").length)`); n != "11" {
		t.Errorf("%s steps passed, want 11", n)
	}
	if !b.js2bool(`document.getElementById("sim-banner").hidden`) {
		t.Error("the simulation banner shows for a real quote")
	}
	b.do(chromedp.Click(chromedp.ID("make-policy")))
	if lines := b.text("policy-lines"); !strings.Contains(lines, `mrenclave = ["`+realMREnclave+`"]`) {
		t.Errorf("policy lines %q", lines)
	}
	if j := b.text("verdict-json"); !strings.Contains(j, `"tcb_status": "SWHardeningNeeded"`) {
		t.Errorf("verdict JSON %q", j)
	}
	b.screenshot("explorer.png", 1440, 1560)

	// 2. A tampered quote: the failing step and its reason.
	q := realQuote(t)
	q[112] ^= 1
	tampered := filepath.Join(tmp, "tampered.bin")
	os.WriteFile(tampered, q, 0o600)
	b.do(chromedp.SetUploadFiles(chromedp.ID("quote_file"), []string{tampered}))
	b.submit()
	if got := b.text("verdict-status"); got != "NOT GENUINE" {
		t.Errorf("tampered: status %q", got)
	}
	failed := b.js(`Array.from(document.querySelectorAll("#steps li.step.failed")).map(li => li.dataset.step + ": " + li.querySelector(".reason").textContent).join("|")`)
	if failed != "isv-report-signature: ISV report signature does not verify with the attestation key" {
		t.Errorf("failed steps %q", failed)
	}
	if n := b.js(`String(document.querySelectorAll("#steps li.step.not-run").length)`); n != "4" {
		t.Errorf("%s steps not run after the failure, want 4 (tcb-info, qe-identity, tcb-status, policy)", n)
	}

	// 3. Bad input: garbage pasted, an oversized upload, an unreachable server.
	b.do(chromedp.Click(chromedp.CSS(`button.tab[data-tab="paste"]`)), chromedp.SetValue(chromedp.ID("quote_text"), "hello, not a quote"))
	b.submit()
	if got := b.text("verdict-status"); got != "NOT GENUINE" || !strings.Contains(b.text("steps"), "shorter than the minimum") {
		t.Errorf("garbage: status %q, steps %q", got, b.text("steps"))
	}
	big := filepath.Join(tmp, "big.bin")
	os.WriteFile(big, make([]byte, 1<<20), 0o600)
	b.do(chromedp.Click(chromedp.CSS(`button.tab[data-tab="upload"]`)), chromedp.SetUploadFiles(chromedp.ID("quote_file"), []string{big}))
	b.submit()
	if got := b.text("error"); !strings.Contains(got, "over the") || !strings.Contains(got, "limit") {
		t.Errorf("oversized upload: error box %q", got)
	}
	truncated := filepath.Join(tmp, "truncated.bin")
	os.WriteFile(truncated, realQuote(t)[:len(realQuote(t))-100], 0o600)
	b.do(chromedp.SetUploadFiles(chromedp.ID("quote_file"), []string{truncated}))
	b.submit()
	if got := b.text("verdict-status"); got != "NOT GENUINE" || !strings.Contains(b.text("steps"), "signature data length 4294, but 4194 bytes follow") || !strings.Contains(b.text("fields"), "does not parse") {
		t.Errorf("truncated quote: status %q, steps %q", got, b.text("steps"))
	}
	b.do(chromedp.Click(chromedp.CSS(`button.tab[data-tab="live"]`)), chromedp.SetValue(chromedp.ID("address"), "127.0.0.1:1"))
	b.submit()
	if got := b.text("error"); !strings.Contains(got, "cannot reach 127.0.0.1:1") {
		t.Errorf("unreachable server: error box %q", got)
	}

	// 4. A simulated quote: the banner.
	simDir := filepath.Join(tmp, "sim")
	p, err := sim.Init(simDir, sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sq, err := p.Quote(sim.Identity{MREnclave: attest.Hash32{0xab, 0xcd}, ISVProdID: 1, ISVSVN: 2}, [64]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.Click(chromedp.CSS(`button.tab[data-tab="paste"]`)))
	b.set(map[string]string{"quote_text": hex.EncodeToString(sq), "source": "sim", "location": simDir, "at": ""})
	b.submit()
	if b.js2bool(`document.getElementById("sim-banner").hidden`) || !strings.HasPrefix(b.text("sim-banner"), "SIMULATED") {
		t.Errorf("simulated quote: banner hidden or wrong: %q", b.text("sim-banner"))
	}
	if got := b.text("verdict-status"); got != "GENUINE · ACCEPTABLE" {
		t.Errorf("simulated quote under its platform: %q", got)
	}
	b.screenshot("explorer-simulated.png", 1440, 900)

	// A live kmsd of that platform: its RA-TLS certificate from the handshake.
	kmsAddr, _ := kmstest.StartSim(t, simDir)
	b.do(chromedp.Click(chromedp.CSS(`button.tab[data-tab="live"]`)))
	b.set(map[string]string{"address": kmsAddr, "kind": "kmsd"})
	b.submit()
	if got := b.text("verdict-status"); got != "GENUINE · ACCEPTABLE" || !strings.HasPrefix(b.text("live"), "address"+kmsAddr) || !strings.Contains(b.text("cert"), "binds this certificate's key") || b.js2bool(`document.getElementById("sim-banner").hidden`) {
		t.Errorf("live kmsd: status %q, live %q, cert %q", got, b.text("live"), b.text("cert"))
	}

	// 5. The status page, in a second tab, while traffic goes through a relayd.
	relayDir := filepath.Join(tmp, "relay-sim")
	relayAddr, metricsAddr := startRelay(t, relayDir)
	sctx, cancel := chromedp.NewContext(bctx)
	defer cancel()
	s := tab{t, sctx}
	s.do(chromedp.Navigate(ts.URL + "/status"))
	s.waitFor(`document.readyState === "complete"`, 10*time.Second)
	s.set(map[string]string{"addr": metricsAddr, "interval": "1000"})
	s.do(chromedp.Click(chromedp.ID("watch")))
	s.waitFor(`!document.getElementById("dash").hidden`, 10*time.Second)
	s.waitFor(`Number(document.getElementById("state").dataset.polls) >= 2`, 10*time.Second)
	if got := s.text("m-delivered"); got != "0" {
		t.Errorf("delivered before traffic: %q", got)
	}
	if s.js2bool(`document.getElementById("sim-banner").hidden`) {
		t.Error("status page of a simulated relayd: no banner")
	}
	relayTraffic(t, relayDir, relayAddr, "alice", 6)
	s.waitFor(`document.getElementById("m-delivered").textContent === "3"`, 10*time.Second)
	if got := s.text("m-mailbox-messages"); got != "3" {
		t.Errorf("mailbox depth %q, want 3", got)
	}
	if got := s.text("m-attest"); got != "1 / 0" {
		t.Errorf("attestations %q, want 1 / 0", got)
	}
	relayTraffic(t, relayDir, relayAddr, "bob", 4)
	s.waitFor(`document.getElementById("m-delivered").textContent === "5" && document.getElementById("m-connections-total").textContent === "2"`, 10*time.Second)
	if got := s.text("m-mailbox-messages"); got != "5" {
		t.Errorf("mailbox depth after more traffic %q, want 5", got)
	}
	s.waitFor(`Number(document.getElementById("state").dataset.polls) >= 7`, 15*time.Second)
	s.screenshot("status.png", 1440, 900)
}

// set gives form fields their values, as a user would (input and change
// events included).
func (b tab) set(values map[string]string) {
	b.t.Helper()
	for id, v := range values {
		b.js(fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; e.dispatchEvent(new Event("input")); e.dispatchEvent(new Event("change")); return ""; })()`, id, v))
	}
}

func (b tab) js2bool(expr string) bool {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}
