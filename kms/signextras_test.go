package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/hkdf"
)

// A derived ed25519 key signs with the key Vault derives for the context:
// the seed is HKDF-SHA256(the 64-byte private key, info = context). The
// expectation is computed here with golang.org/x/crypto's HKDF from the
// key material, not with kmsd's code; the read answer shows the derived
// public key only for a context, never the base key's.
func TestDerivedEd25519(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/dk", map[string]any{"type": "ed25519", "derived": true})
	key := k.svc.keys["dk"]
	base, err := key.Versions[1].signer()
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, base.(ed25519.PrivateKey), nil, []byte("tenant-7")), seed); err != nil {
		t.Fatal(err)
	}
	wantPub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)

	s := mustWrite(t, c, "transit/sign/dk", map[string]any{"input": b64("msg"), "context": b64("tenant-7")})
	if s.Data["public_key"] != base64.StdEncoding.EncodeToString(wantPub) {
		t.Fatalf("public_key %v, want the HKDF-derived key", s.Data["public_key"])
	}
	_, sig, err := parseVersioned(s.Data["signature"].(string), "signature")
	if err != nil || !ed25519.Verify(wantPub, []byte("msg"), sig) {
		t.Fatalf("signature does not verify under the derived key: %v", err)
	}
	// Read: no public key without a context, the derived one with it.
	_, o := k.raw(t, "GET", "/v1/transit/keys/dk", k.root, "")
	d := o["data"].(map[string]any)
	if v1 := d["keys"].(map[string]any)["1"].(map[string]any); v1["public_key"] != "" || d["derived"] != true || d["supports_derivation"] != true {
		t.Errorf("read without context: %v", d)
	}
	_, o = k.raw(t, "GET", "/v1/transit/keys/dk?context="+b64("tenant-7"), k.root, "")
	if v1 := o["data"].(map[string]any)["keys"].(map[string]any)["1"].(map[string]any); v1["public_key"] != base64.StdEncoding.EncodeToString(wantPub) {
		t.Errorf("read with context: %v", v1)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/v1/transit/keys/dk?context=%25%25", "", "context"},
		{"GET", "/v1/transit/keys/dk?bogus=1", "", "bogus"},
		{"GET", "/v1/transit/keys/plain?context=" + b64("x"), "", "context"},
		{"GET", "/v1/transit/export/public-key/dk", "", "context"},
		{"POST", "/v1/transit/keys/dk/csr", "{}", "derived"},
		{"POST", "/v1/transit/keys/dconv", `{"type":"ed25519","derived":true,"convergent_encryption":true}`, "convergent_encryption"},
		{"POST", "/v1/transit/keys/decdsa", `{"type":"ecdsa-p256","derived":true}`, "derivation"},
	} {
		if tc.path == "/v1/transit/keys/plain?context="+b64("x") {
			mustWrite(t, c, "transit/keys/plain", map[string]any{"type": "ed25519"})
		}
		status, o := k.raw(t, tc.method, tc.path, k.root, tc.body)
		if status != 400 || !strings.Contains(errorsOf(o), tc.want) {
			t.Errorf("%s %s: %d %v, want 400 naming %s", tc.method, tc.path, status, o, tc.want)
		}
	}
}

// keys/:name/csr: a CSR for the key's public key, signed inside the
// enclave, with the template's subject and extensions.
func TestKeyCSR(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	for _, typ := range []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"} {
		mustWrite(t, c, "transit/keys/csr-"+typ, map[string]any{"type": typ})
	}
	mustWrite(t, c, "transit/keys/csr-ecdsa-p256/rotate", nil)
	tmplKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmplDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "svc.example.internal", Organization: []string{"Example"}},
		DNSNames:    []string{"svc.example.internal"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
	}, tmplKey)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tmplDER}))
	for _, typ := range []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"} {
		for _, version := range []int{0, 1} {
			name := "csr-" + typ
			s := mustWrite(t, c, "transit/keys/"+name+"/csr", map[string]any{"csr": tmpl, "version": version})
			block, _ := pem.Decode([]byte(s.Data["csr"].(string)))
			csr, err := x509.ParseCertificateRequest(block.Bytes)
			if err != nil || csr.CheckSignature() != nil {
				t.Fatalf("%s: CSR %v %v", typ, err, csr.CheckSignature())
			}
			want := version
			if want == 0 {
				want = key(t, k, name).LatestVersion
			}
			pub, _ := key(t, k, name).Versions[want].public()
			if !pub.(interface{ Equal(x crypto.PublicKey) bool }).Equal(csr.PublicKey) {
				t.Errorf("%s v%d: the CSR is not for the key's public key", typ, version)
			}
			if csr.Subject.CommonName != "svc.example.internal" || len(csr.DNSNames) != 1 || len(csr.IPAddresses) != 1 || s.Data["name"] != name || s.Data["type"] != typ {
				t.Errorf("%s: CSR %+v, answer %v", typ, csr.Subject, s.Data)
			}
		}
	}
	// Without a template: an empty subject, the key's public key.
	s := mustWrite(t, c, "transit/keys/csr-ed25519/csr", nil)
	block, _ := pem.Decode([]byte(s.Data["csr"].(string)))
	if csr, err := x509.ParseCertificateRequest(block.Bytes); err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "" {
		t.Errorf("CSR without a template: %v", err)
	}
	mustWrite(t, c, "transit/keys/csr-aes", nil)
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/transit/keys/csr-aes/csr", `{}`, "does not support signing"},
		{"/v1/transit/keys/csr-ed25519/csr", `{"csr":"not pem"}`, `"csr"`},
		{"/v1/transit/keys/csr-ed25519/csr", `{"csr":"` + strings.ReplaceAll(tmpl, "\n", `\n`) + `x"}`, `"csr"`},
		{"/v1/transit/keys/csr-ed25519/csr", `{"version":7}`, "version 7"},
		{"/v1/transit/keys/csr-ed25519/csr", `{"version":-1}`, `"version"`},
		{"/v1/transit/keys/csr-ed25519/csr", `{"subject":"x"}`, `"subject"`},
		{"/v1/transit/keys/missing/csr", `{}`, "not found"},
	} {
		status, o := k.raw(t, "POST", tc.path, k.root, tc.body)
		if status != 400 || !strings.Contains(errorsOf(o), tc.want) {
			t.Errorf("%s %s: %d %v, want 400 with %s", tc.path, tc.body, status, o, tc.want)
		}
	}
	if status, _ := k.raw(t, "GET", "/v1/transit/keys/csr-ed25519/csr", k.root, ""); status != 405 {
		t.Errorf("GET csr: %d", status)
	}
}

func key(t *testing.T, k *testKMS, name string) *Key {
	t.Helper()
	key, err := k.svc.key(name)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// RSA encryption with PKCS#1 v1.5 padding is refused, saying why.
func TestPKCS1v15EncryptionRefused(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	mustWrite(t, k.vaultClient(t, k.root), "transit/keys/r", map[string]any{"type": "rsa-2048"})
	for _, path := range []string{"encrypt/r", "datakey/plaintext/r"} {
		status, o := k.raw(t, "POST", "/v1/transit/"+path, k.root, `{"plaintext":"eA==","padding_scheme":"pkcs1v15"}`)
		if path == "datakey/plaintext/r" {
			status, o = k.raw(t, "POST", "/v1/transit/"+path, k.root, `{"padding_scheme":"pkcs1v15"}`)
		}
		if status != 400 || !strings.Contains(errorsOf(o), `"padding_scheme"`) || !strings.Contains(errorsOf(o), "padding-oracle") {
			t.Errorf("%s: %d %v", path, status, o)
		}
	}
}

// FuzzParseSaltLength: salt_length is "auto", "hash" or a length of 0 or
// more bytes; nothing else is accepted, and nothing panics.
func FuzzParseSaltLength(f *testing.F) {
	for _, s := range []string{`"auto"`, `"hash"`, `"HASH"`, `20`, `"20"`, `-1`, `"-2"`, `1.5`, `""`, `null`, `"0x10"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, given, err := parseSaltLength(json.RawMessage(in))
		if err != nil {
			return
		}
		if n < rsa.PSSSaltLengthEqualsHash || n > 0 && !strings.Contains(in, strconv.Itoa(n)) || !given && n != rsa.PSSSaltLengthAuto {
			t.Fatalf("%q gave %d (given %v)", in, n, given)
		}
	})
}
