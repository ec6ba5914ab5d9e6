package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/explorer"
)

// One code path: for the same quote, collateral and time, the report the
// explorer offers for download is byte for byte what `enclavectl quote
// verify` prints — for a genuine quote and for a tampered one.
func TestExploreReportIsQuoteVerifyOutput(t *testing.T) {
	real, err := filepath.Abs("../../testdata/dcap-real-quote-a")
	if err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile(filepath.Join(real, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(q)
	tampered[112] ^= 1
	tamperedPath := filepath.Join(t.TempDir(), "tampered.bin")
	os.WriteFile(tamperedPath, tampered, 0o600)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		var out, errb bytes.Buffer
		done <- run(ctx, []string{"explore", "--listen", addr}, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	}()
	t.Cleanup(func() { cancel(); <-done })

	for path, quote := range map[string][]byte{filepath.Join(real, "quote.bin"): q, tamperedPath: tampered} {
		_, cli, _ := runCmd(t, "quote", "verify", "--quote", path, "--collateral", real, "--at", "2022-12-20T00:50:04Z")
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("source", "dir")
		mw.WriteField("location", real)
		mw.WriteField("at", "2022-12-20T00:50:04Z")
		w, _ := mw.CreateFormFile("quote_file", "quote.bin")
		w.Write(quote)
		mw.Close()
		var resp *http.Response
		for i := 0; i < 50; i++ {
			req, _ := http.NewRequest("POST", "http://"+addr+"/api/analyze", bytes.NewReader(body.Bytes()))
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set(explorer.APIHeader, "1")
			if resp, err = http.DefaultClient.Do(req); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r explorer.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
		if r.VerdictJSON != cli {
			t.Errorf("%s: explorer report\n%s\nquote verify prints\n%s", filepath.Base(path), r.VerdictJSON, cli)
		}
	}
}

func TestExploreRefusesNonLoopback(t *testing.T) {
	code, _, stderr := runCmd(t, "explore", "--listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "not a loopback address") || !strings.Contains(stderr, "--allow-remote") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
	code, _, stderr = runCmd(t, "explore", "--listen", ":0")
	if code != 2 || !strings.Contains(stderr, "not a loopback address") {
		t.Errorf(":0: exit %d, stderr %s", code, stderr)
	}
}
