package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// verifyOutput is what `quote verify` prints.
type verifyOutput struct {
	Genuine bool   `json:"genuine"`
	Error   string `json:"error,omitempty"`
	Step    string `json:"failed_step,omitempty"`
	*attest.Report
}

func quoteVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("quote verify", "quote verify --quote FILE [--collateral DIR | --pccs URL] [flags]", stderr)
	quotePath := fs.String("quote", "", "quote file, binary or hex ('-' for standard input)")
	colDir := fs.String("collateral", "", "collateral directory (tcb_info.json, qe_identity.json, issuer chains, CRLs)")
	pccs := fs.String("pccs", "", "PCCS or PCS v4 base URL, e.g. https://pccs.example:8081/sgx/certification/v4/")
	rootPath := fs.String("root", "", "trusted root CA, PEM (default: Intel SGX Root CA, pinned)")
	at := fs.String("at", "", "verification time, RFC 3339 (default: now)")
	requireCRLs := fs.Bool("require-crls", false, "fail when the collateral lacks the root CA CRL or the PCK CRL")
	ego := fs.Bool("ego", false, "the quote carries EGo's 16-byte report header")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, "unexpected argument %q", pos[0])
	}
	if *quotePath == "" {
		return usageErr(stderr, fs, "--quote is required")
	}
	if (*colDir == "") == (*pccs == "") {
		return usageErr(stderr, fs, "give exactly one of --collateral and --pccs")
	}
	now := time.Now
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usageErr(stderr, fs, "--at: %v", err)
		}
		now = func() time.Time { return t }
	}
	root := dcap.IntelRoot()
	if *rootPath != "" {
		b, err := os.ReadFile(*rootPath)
		if err != nil {
			return fail(stderr, "quote verify", err, "")
		}
		certs, err := dcap.ParsePEMChain(b)
		if err != nil || len(certs) != 1 {
			return fail(stderr, "quote verify", errors.New("--root must hold exactly one PEM certificate"), "")
		}
		root = certs[0]
	}
	var getter dcap.Getter = pcs.Dir(*colDir)
	if *pccs != "" {
		getter = &pcs.Client{BaseURL: *pccs, RootCACRL: true}
	}
	q, err := readQuote(*quotePath)
	if err != nil {
		return fail(stderr, "quote verify", err, "")
	}
	if *ego {
		if q, err = sgxquote.StripEGoHeader(q); err != nil {
			return fail(stderr, "quote verify", err, "")
		}
	}
	v, err := dcap.New(dcap.Options{Roots: []*x509.Certificate{root}, Collateral: getter, Now: now, RequireCRLs: *requireCRLs})
	if err != nil {
		return fail(stderr, "quote verify", err, "")
	}
	out := verifyOutput{}
	r, err := v.Verify(ctx, q)
	if err != nil {
		out.Error = err.Error()
		var de *dcap.Error
		if errors.As(err, &de) {
			out.Step = string(de.Step)
		}
	} else {
		out.Genuine, out.Report = true, r
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fail(stderr, "quote verify", err, "")
	}
	if !out.Genuine {
		return 1
	}
	return 0
}

// readQuote reads a quote file, accepting raw bytes or hex text.
func readQuote(path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 2*sgxquote.MaxSize+2))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && len(t)%2 == 0 && isHex(t) {
		return hex.DecodeString(string(t))
	}
	return b, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
