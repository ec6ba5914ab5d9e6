package gramine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// fakeDir lays out /dev/attestation as Gramine does, with a quote file
// whose content the test chooses.
func fakeDir(t *testing.T, typ string) string {
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "keys"), 0o700)
	os.WriteFile(filepath.Join(d, "attestation_type"), []byte(typ), 0o644)
	os.WriteFile(filepath.Join(d, "user_report_data"), nil, 0o644)
	os.WriteFile(filepath.Join(d, "quote"), []byte("QUOTE"), 0o644)
	return d
}

func TestQuoteWritesReportDataThenReadsQuote(t *testing.T) {
	d := fakeDir(t, "dcap\n")
	a := &Attester{Dir: d}
	var rd [64]byte
	copy(rd[:], "bind me")
	q, err := a.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if string(q) != "QUOTE" {
		t.Errorf("quote %q", q)
	}
	got, _ := os.ReadFile(filepath.Join(d, "user_report_data"))
	if !bytes.Equal(got, rd[:]) {
		t.Errorf("user_report_data %q", got)
	}
}

func TestQuoteRefusedWithoutDCAP(t *testing.T) {
	for _, typ := range []string{"none", "epid", ""} {
		a := &Attester{Dir: fakeDir(t, typ)}
		if _, err := a.Quote(context.Background(), [64]byte{}); !errors.Is(err, ErrNotDCAP) {
			t.Errorf("attestation_type %q: %v", typ, err)
		}
	}
	if _, err := (&Attester{Dir: t.TempDir()}).Quote(context.Background(), [64]byte{}); !errors.Is(err, ErrNotDCAP) {
		t.Errorf("missing directory: %v", err)
	}
}

func TestQuoteEmptyOrOversize(t *testing.T) {
	d := fakeDir(t, "dcap")
	a := &Attester{Dir: d}
	os.WriteFile(filepath.Join(d, "quote"), nil, 0o644)
	if _, err := a.Quote(context.Background(), [64]byte{}); err == nil {
		t.Error("empty quote accepted")
	}
	os.WriteFile(filepath.Join(d, "quote"), make([]byte, maxQuote+1), 0o644)
	if _, err := a.Quote(context.Background(), [64]byte{}); err == nil {
		t.Error("oversize quote accepted")
	}
}

func TestConcurrentQuotesSerialized(t *testing.T) {
	a := &Attester{Dir: fakeDir(t, "dcap")}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Quote(context.Background(), [64]byte{byte(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestSealKey(t *testing.T) {
	d := fakeDir(t, "dcap")
	a := &Attester{Dir: d}
	key := bytes.Repeat([]byte{7}, 16)
	os.WriteFile(filepath.Join(d, "keys", "_sgx_mrenclave"), key, 0o600)
	got, err := a.SealKey(SealMREnclave)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("seal key %x, %v", got, err)
	}
	for name, content := range map[string][]byte{
		"all zero": make([]byte, 16),
		"short":    key[:15],
		"long":     append(key, 1),
	} {
		os.WriteFile(filepath.Join(d, "keys", "_sgx_mrsigner"), content, 0o600)
		if _, err := a.SealKey(SealMRSigner); err == nil {
			t.Errorf("%s seal key accepted", name)
		}
	}
	os.Remove(filepath.Join(d, "keys", "_sgx_mrsigner"))
	if _, err := a.SealKey(SealMRSigner); err == nil {
		t.Error("missing seal key accepted")
	}
	if _, err := a.SealKey("_sgx_other"); err == nil {
		t.Error("unknown kind accepted")
	}
}
