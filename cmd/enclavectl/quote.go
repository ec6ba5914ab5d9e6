package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
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
	vf := addVerifyFlags(fs)
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
	if !vf.given() {
		return usageErr(stderr, fs, "give exactly one of --collateral and --pccs")
	}
	if msg := vf.usage(); msg != "" {
		return usageErr(stderr, fs, "%s", msg)
	}
	v, err := vf.verifier()
	if err != nil {
		return fail(stderr, "quote verify", err, "")
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
