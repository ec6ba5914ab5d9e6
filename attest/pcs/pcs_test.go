package pcs_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

const realDir = "../../testdata/dcap-real-quote-a"

var realFMSPC = [6]byte{0x00, 0x60, 0x6A, 0x00, 0x00, 0x00}

func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// The real Intel collateral survives the PCS header encoding byte for
// byte: what Handler sends, Client's decoding gives back.
func TestRealCollateralOverHTTP(t *testing.T) {
	srv, _ := countingServer(t, pcs.Handler(realDir))
	for _, tc := range []struct{ path, header, body, chain string }{
		{"tcb?fmspc=00606a000000", pcs.HeaderTCBInfoIssuerChain, "tcb_info.json", "tcb_info_issuer_chain.pem"},
		{"qe/identity", pcs.HeaderQEIdentityIssuerChain, "qe_identity.json", "qe_identity_issuer_chain.pem"},
	} {
		resp, err := srv.Client().Get(srv.URL + "/sgx/certification/v4/" + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantBody, _ := os.ReadFile(filepath.Join(realDir, tc.body))
		wantChain, _ := os.ReadFile(filepath.Join(realDir, tc.chain))
		chain, err := url.PathUnescape(resp.Header.Get(tc.header))
		if err != nil || chain != string(wantChain) || string(body) != string(wantBody) {
			t.Errorf("%s: body or chain changed in transit (%v)", tc.path, err)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/sgx/certification/v4/tcb?fmspc=000000000000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown FMSPC: %s", resp.Status)
	}
}

func TestClientSimulatedPlatformCached(t *testing.T) {
	p, err := sim.Init(filepath.Join(t.TempDir(), "sim"), sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, hits := countingServer(t, pcs.Handler(filepath.Join(p.Dir(), sim.DirCollateral)))
	c := &pcs.Cache{Getter: &pcs.Client{BaseURL: srv.URL + "/sgx/certification/v4", HTTP: srv.Client(), RootCACRL: true}}
	v, err := dcap.New(dcap.Options{Roots: p.Roots(), Collateral: c, RequireCRLs: true})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.Quote(sim.Identity{}, [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(context.Background(), q); err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
	}
	if got := hits.Load(); got != 4 {
		t.Errorf("%d requests for three verifications, want 4 (one fetch, then cache)", got)
	}
}

func TestClientCacheExpires(t *testing.T) {
	p, err := sim.Init(filepath.Join(t.TempDir(), "sim"), sim.InitOptions{CollateralValidity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv, hits := countingServer(t, pcs.Handler(filepath.Join(p.Dir(), sim.DirCollateral)))
	now := time.Now()
	c := &pcs.Cache{Getter: &pcs.Client{BaseURL: srv.URL + "/sgx/certification/v4/", HTTP: srv.Client()}, Now: func() time.Time { return now }, MaxAge: 24 * time.Hour}
	if _, err := c.GetCollateral(context.Background(), sim.FMSPC, dcap.CAProcessor); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := c.GetCollateral(context.Background(), sim.FMSPC, dcap.CAProcessor); err != nil {
		t.Fatal(err)
	}
	if got := hits.Load(); got != 6 {
		t.Errorf("%d requests, want 6: expired collateral must be fetched again", got)
	}
}

func TestClientErrors(t *testing.T) {
	p, err := sim.Init(filepath.Join(t.TempDir(), "sim"), sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := pcs.Handler(filepath.Join(p.Dir(), sim.DirCollateral))
	for name, handler := range map[string]http.HandlerFunc{
		"unknown FMSPC": func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
		},
		"no chain header": func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			w.Write(rec.Body.Bytes())
		},
		"oversize body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(pcs.HeaderTCBInfoIssuerChain, "x")
			w.Write(make([]byte, 2<<20))
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewTLSServer(handler)
			defer srv.Close()
			c := &pcs.Client{BaseURL: srv.URL + "/sgx/certification/v4/", HTTP: srv.Client()}
			fmspc := sim.FMSPC
			if name == "unknown FMSPC" {
				fmspc = [6]byte{1, 2, 3, 4, 5, 6}
			}
			if _, err := c.GetCollateral(context.Background(), fmspc, dcap.CAProcessor); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestDirWrongFMSPC(t *testing.T) {
	if _, err := pcs.Dir(realDir).GetCollateral(context.Background(), [6]byte{1}, dcap.CAPlatform); err == nil {
		t.Fatal("collateral for another FMSPC served")
	}
	if _, err := pcs.Dir(realDir).GetCollateral(context.Background(), realFMSPC, dcap.CAPlatform); err != nil {
		t.Fatal(err)
	}
	if _, err := pcs.Dir(t.TempDir()).GetCollateral(context.Background(), realFMSPC, dcap.CAPlatform); err == nil {
		t.Fatal("empty directory served collateral")
	}
}

func TestEscapeChainRoundTrip(t *testing.T) {
	in := "-----BEGIN CERTIFICATE-----\nab+/=\n-----END CERTIFICATE-----\n"
	esc := pcs.EscapeChain([]byte(in))
	if strings.ContainsAny(esc, "+ \n") {
		t.Fatalf("escaped chain %q has raw characters", esc)
	}
}
