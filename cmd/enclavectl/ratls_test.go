package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// inspectResult is the part of `ratls inspect` output the tests read.
type inspectResult struct {
	PublicKey    string `json:"public_key"`
	Preferred    string `json:"preferred"`
	BindingHolds bool   `json:"binding_holds"`
	Genuine      *bool  `json:"genuine"`
	Formats      []struct {
		Format       string `json:"format"`
		OIDDER       string `json:"oid_der"`
		OIDEncoding  string `json:"oid_encoding"`
		BindingHolds bool   `json:"binding_holds"`
		Genuine      *bool  `json:"genuine"`
		FailedStep   string `json:"failed_step"`
		Identity     *struct {
			MREnclave string `json:"mrenclave"`
			MRSigner  string `json:"mrsigner"`
		} `json:"identity"`
	} `json:"formats"`
}

func inspect(t *testing.T, args ...string) (int, inspectResult, string) {
	t.Helper()
	code, out, stderr := runCmd(t, append([]string{"ratls", "inspect"}, args...)...)
	var r inspectResult
	if out != "" {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("inspect output is not JSON: %v\n%s", err, out)
		}
	}
	return code, r, stderr
}

func TestRATLSCertAndInspect(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "sim")
	if code, _, stderr := runCmd(t, "sim", "init", dir); code != 0 {
		t.Fatalf("sim init: %s", stderr)
	}
	p, err := sim.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	self, err := sim.ExecutableMeasurement()
	if err != nil {
		t.Fatal(err)
	}
	verify := []string{"--collateral", filepath.Join(dir, "collateral"), "--root", filepath.Join(dir, "root_ca.pem")}

	for _, tc := range []struct {
		format string
		want   []string // formats inspect finds, preferred first
	}{
		{"gramine", []string{"gramine-standard", "gramine-legacy"}},
		{"gramine-legacy", []string{"gramine-legacy"}},
		{"ego", []string{"ego"}},
	} {
		cert, key := filepath.Join(tmp, tc.format+".pem"), filepath.Join(tmp, tc.format+".key")
		code, out, stderr := runCmd(t, "ratls", "cert", "--format", tc.format, "--simulation", "--sim-dir", dir, "--out", cert, "--key-out", key)
		if code != 0 || !strings.Contains(out, "SIMULATED") || !strings.Contains(out, "ECDSA P-384") {
			t.Fatalf("%s: cert: %d %q %q", tc.format, code, out, stderr)
		}
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file %v, mode %v; want 0600", tc.format, err, fi.Mode())
		}
		pemBytes, _ := os.ReadFile(cert)
		blk, _ := pem.Decode(pemBytes)
		if blk == nil || blk.Type != "CERTIFICATE" {
			t.Fatalf("%s: %s is not a PEM certificate", tc.format, cert)
		}
		if tc.format != "ego" && !bytes.Contains(blk.Bytes, []byte{0x06, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x8A, 0x39, 0x06}) {
			t.Errorf("%s: the certificate lacks Gramine's legacy OID bytes", tc.format)
		}

		// Without collateral: structure, identity and binding, nothing verified.
		code, r, stderr := inspect(t, cert)
		if code != 0 || r.Genuine != nil || !r.BindingHolds || r.Preferred != tc.want[0] || r.PublicKey != "ECDSA P-384" {
			t.Fatalf("%s: inspect: %d %+v %s", tc.format, code, r, stderr)
		}
		if len(r.Formats) != len(tc.want) {
			t.Fatalf("%s: found %d formats, want %v", tc.format, len(r.Formats), tc.want)
		}
		for i, f := range r.Formats {
			if f.Format != tc.want[i] || !f.BindingHolds || f.Identity == nil || f.Identity.MREnclave != self.String() || f.Identity.MRSigner != p.MRSigner().String() {
				t.Errorf("%s: format %d: %+v", tc.format, i, f)
			}
			if f.Format == "gramine-legacy" && (f.OIDEncoding != "gramine" || f.OIDDER != "060b06092a864886f84d8a3906") {
				t.Errorf("%s: legacy OID %s (%s)", tc.format, f.OIDDER, f.OIDEncoding)
			}
		}
		// With the simulated platform's collateral and root: genuine.
		code, r, _ = inspect(t, append([]string{cert}, verify...)...)
		if code != 0 || r.Genuine == nil || !*r.Genuine {
			t.Fatalf("%s: inspect with collateral: %d %+v", tc.format, code, r)
		}
		// Under Intel's root a simulated quote is not genuine: exit 1.
		code, r, _ = inspect(t, cert, "--collateral", filepath.Join(dir, "collateral"))
		if code != 1 || r.Genuine == nil || *r.Genuine || r.Formats[0].FailedStep != "pck-chain" {
			t.Fatalf("%s: inspect under Intel's root: %d %+v", tc.format, code, r)
		}
	}

	// A certificate for a key given by the user, P-256.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(k)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	keyFile, certFile := filepath.Join(tmp, "given.key"), filepath.Join(tmp, "given.pem")
	os.WriteFile(keyFile, keyPEM, 0o600)
	if code, out, stderr := runCmd(t, "ratls", "cert", "--simulation", "--sim-dir", dir, "--key", keyFile, "--out", certFile); code != 0 || !strings.Contains(out, "ECDSA P-256") || strings.Contains(out, "private key") {
		t.Fatalf("cert --key: %d %q %q", code, out, stderr)
	}
	if code, r, _ := inspect(t, append([]string{certFile}, verify...)...); code != 0 || r.PublicKey != "ECDSA P-256" || !*r.Genuine {
		t.Fatalf("inspect of the P-256 certificate: %d %+v", code, r)
	}
	// Files are never overwritten.
	if code, _, stderr := runCmd(t, "ratls", "cert", "--simulation", "--sim-dir", dir, "--key", keyFile, "--out", certFile); code != 1 || !strings.Contains(stderr, "hint:") {
		t.Errorf("overwriting %s: exit %d %q", certFile, code, stderr)
	}
}

// A quote transplanted into a certificate for another key: inspect says the
// binding does not hold, even though the quote itself is genuine.
func TestRATLSInspectBrokenBinding(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "sim")
	runCmd(t, "sim", "init", dir)
	a, b := filepath.Join(tmp, "a.pem"), filepath.Join(tmp, "b.pem")
	for _, c := range []string{a, b} {
		if code, _, stderr := runCmd(t, "ratls", "cert", "--format", "gramine-legacy", "--simulation", "--sim-dir", dir, "--out", c, "--key-out", c+".key"); code != 0 {
			t.Fatal(stderr)
		}
	}
	// Splice a's legacy extension (quote) into b: same length, b's key.
	da, db := pemDER(t, a), pemDER(t, b)
	oid := []byte{0x06, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x8A, 0x39, 0x06, 0x04, 0x82}
	ia, ib := bytes.Index(da, oid), bytes.Index(db, oid)
	if ia < 0 || ib < 0 {
		t.Fatal("no legacy extension in Gramine's encoding")
	}
	if !bytes.Equal(da[ia:ia+len(oid)+2], db[ib:ib+len(oid)+2]) {
		t.Fatal("simulated quotes of different lengths; cannot splice")
	}
	n := int(da[ia+len(oid)])<<8 | int(da[ia+len(oid)+1])
	start := len(oid) + 2
	copy(db[ib+start:ib+start+n], da[ia+start:ia+start+n])
	spliced := filepath.Join(tmp, "spliced.der")
	os.WriteFile(spliced, db, 0o644)
	code, r, _ := inspect(t, spliced, "--collateral", filepath.Join(dir, "collateral"), "--root", filepath.Join(dir, "root_ca.pem"))
	if code != 1 || r.BindingHolds || r.Genuine == nil || !*r.Genuine || r.Preferred != "gramine-legacy" {
		t.Fatalf("spliced certificate: exit %d, %+v; want a genuine quote that does not bind the key", code, r)
	}
}

func pemDER(t *testing.T, path string) []byte {
	b, _ := os.ReadFile(path)
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	return blk.Bytes
}

func TestRATLSUsage(t *testing.T) {
	for _, args := range [][]string{
		{"ratls"},
		{"ratls", "bogus"},
		{"ratls", "cert"},
		{"ratls", "cert", "--out", "c.pem"},
		{"ratls", "cert", "--out", "c.pem", "--key", "k", "--key-out", "k2"},
		{"ratls", "cert", "--out", "c.pem", "--key-out", "k", "--format", "openenclave"},
		{"ratls", "cert", "--out", "c.pem", "--key-out", "k", "--curve", "p521"},
		{"ratls", "cert", "--out", "c.pem", "--key", "k", "--curve", "p256"},
		{"ratls", "inspect"},
		{"ratls", "inspect", "a.pem", "b.pem"},
		{"ratls", "inspect", "a.pem", "--collateral", "d", "--pccs", "http://x"},
		{"ratls", "inspect", "a.pem", "--root", "r.pem"},
		{"ratls", "inspect", "a.pem", "--collateral", "d", "--at", "yesterday"},
	} {
		if code, out, stderr := runCmd(t, args...); code != 2 || stderr == "" || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 with a message on stderr", args, code, out, stderr)
		}
	}
	for _, args := range [][]string{{"ratls", "help"}, {"ratls", "--help"}, {"ratls", "cert", "--help"}, {"ratls", "inspect", "-h"}} {
		if code, out, stderr := runCmd(t, args...); code != 0 || !strings.Contains(out, "Usage:") || stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want usage on stdout, exit 0", args, code, out, stderr)
		}
	}
	if code, out, _ := runCmd(t, "help"); code != 0 || !strings.Contains(out, "ratls inspect") {
		t.Error("enclavectl help does not list ratls")
	}
	// A file that is no certificate, or one without RA-TLS evidence: exit 1.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not a certificate"), 0o644)
	if code, _, stderr := runCmd(t, "ratls", "inspect", junk); code != 1 || !strings.Contains(stderr, "not a PEM or DER certificate") {
		t.Errorf("junk: exit %d %q", code, stderr)
	}
}
