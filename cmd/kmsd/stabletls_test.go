package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// --stable-tls-ca: the CA that issues kmsd's certificate is the same after
// a restart, the certificate is new (new key, fresh quote), a client that
// pinned the CA accepts both, and sys/attestation names the CA.
func TestStableTLSCA(t *testing.T) {
	tmp := t.TempDir()
	sim := filepath.Join(tmp, "sim")
	args := []string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, "data"),
		"--root-token-file", filepath.Join(tmp, "tok"), "--stable-tls-ca", "--listen", "127.0.0.1:0"}
	type start struct {
		leaf, ca *x509.Certificate
		attCA    string
	}
	var starts []start
	var pinned *x509.CertPool
	for i := range 2 {
		addr, logs, _, stop := startKMSD(t, args...)
		be, err := backend.Open(backend.Options{Simulation: true, SimDir: sim})
		if err != nil {
			t.Fatal(err)
		}
		cfg := atls.RATLSClientConfig(be.Verifier, be.DefaultPolicy)
		if i == 1 {
			// The second time: a stock client that pinned the CA, and
			// checks the evidence of the new certificate as well.
			cfg = &tls.Config{RootCAs: pinned, ServerName: "127.0.0.1", VerifyConnection: atls.VerifyConnection(be.Verifier, be.DefaultPolicy)}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, err := client.Get("https://" + addr + "/v1/sys/attestation")
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		var att struct {
			Data struct {
				CA string `json:"ca_certificate"`
			}
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		json.Unmarshal(body, &att)
		chain := resp.TLS.PeerCertificates
		if len(chain) != 2 {
			t.Fatalf("start %d: %d certificates served, want 2", i, len(chain))
		}
		starts = append(starts, start{chain[0], chain[1], att.Data.CA})
		if pinned == nil {
			pinned = x509.NewCertPool()
			pinned.AddCert(chain[1])
		}
		if !strings.Contains(logs.String(), "ca_sha256") {
			t.Errorf("start %d: the log does not name the CA", i)
		}
		stop()
	}
	a, b := starts[0], starts[1]
	if !a.ca.Equal(b.ca) || !a.ca.IsCA || a.ca.NotAfter.Before(time.Now().Add(5*365*24*time.Hour)) {
		t.Errorf("the CA changed across a restart, or is not a long-lived CA: %v %v", a.ca.Subject, b.ca.Subject)
	}
	if a.leaf.Equal(b.leaf) || string(a.leaf.RawSubjectPublicKeyInfo) == string(b.leaf.RawSubjectPublicKeyInfo) {
		t.Error("the certificate (or its key) was reused across a restart")
	}
	block, _ := pem.Decode([]byte(a.attCA))
	if block == nil || string(block.Bytes) != string(a.ca.Raw) {
		t.Errorf("sys/attestation ca_certificate is not the CA in the chain: %q", a.attCA)
	}

	// Without --stable-tls-ca: one self-signed certificate, no CA.
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0", "--print-root-token")
	defer stop()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(conn.ConnectionState().PeerCertificates); n != 1 {
		t.Errorf("without --stable-tls-ca: %d certificates", n)
	}
	conn.Close()
	if _, err := parseFlags([]string{"--stable-tls-ca"}, noEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("--stable-tls-ca without --data-dir: %v", err)
	}
}

// A data dir moved to another machine starts sealed, with a self-signed
// certificate (the CA is in the sealed store); once the operators unseal
// it, kmsd serves certificates issued by the same CA as before the move.
func TestStableTLSCAAfterUnseal(t *testing.T) {
	tmp := t.TempDir()
	simA, simB := filepath.Join(tmp, "simA"), filepath.Join(tmp, "simB")
	dataA, dataB := filepath.Join(tmp, "dataA"), filepath.Join(tmp, "dataB")
	_, tok, shares := firstStart(t, tmp, simA, dataA)
	chainOf := func(addr string) []*x509.Certificate {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates
	}
	addr, _, _, stop := startKMSD(t, "--simulation", "--sim-dir", simA, "--data-dir", dataA, "--stable-tls-ca", "--listen", "127.0.0.1:0")
	caA := chainOf(addr)[1]
	stop()

	if _, err := sim.Init(simB, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, dataA, dataB)
	addr, _, _, stop = startKMSD(t, "--simulation", "--sim-dir", simB, "--data-dir", dataB, "--stable-tls-ca", "--listen", "127.0.0.1:0")
	defer stop()
	if n := len(chainOf(addr)); n != 1 {
		t.Fatalf("sealed: %d certificates, want the self-signed one", n)
	}
	beB, err := backend.Open(backend.Options{Simulation: true, SimDir: simB})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultOverRATLS(t, addr, tok, beB, beB.DefaultPolicy)
	c.Sys().Unseal(shares[0])
	if st, err := c.Sys().Unseal(shares[1]); err != nil || st.Sealed {
		t.Fatalf("unseal: %+v %v", st, err)
	}
	chain := chainOf(addr)
	if len(chain) != 2 || !chain[1].Equal(caA) || chain[0].CheckSignatureFrom(caA) != nil {
		t.Fatalf("unsealed: %d certificates; want a new one issued by the CA of the first machine", len(chain))
	}
	if _, _, err := atls.VerifyCertificate(context.Background(), chain[0], beB.Verifier, beB.DefaultPolicy); err != nil {
		t.Errorf("the certificate served after unsealing: %v", err)
	}
}
