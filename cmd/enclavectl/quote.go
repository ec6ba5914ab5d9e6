package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/verdict"
)

const quoteVerifySynopsis = `quote verify --quote FILE [--collateral DIR | --pccs URL] [flags]

Verifies a quote (binary or hex) in two steps and prints the verdict as JSON:
is it genuine (signed by a real SGX platform, or by the simulated platform
whose --root you give), and is it acceptable. Without --policy, acceptable
means: not a DEBUG enclave, TCB status UpToDate or SWHardeningNeeded (never
Revoked), and not simulated unless you gave its root with --root. With
--policy FILE, the file's [peers] table decides, measurements included.

Exit status:
  0  genuine and acceptable
  1  not genuine, or the verification could not finish (the JSON says why)
  2  usage error
  3  genuine, but refused by the policy (the JSON says which rule)`

func quoteVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("quote verify", quoteVerifySynopsis, args, stdout, stderr)
	quotePath := fs.String("quote", "", "quote file, binary or hex ('-' for standard input)")
	vf := addVerifyFlags(fs)
	ego := fs.Bool("ego", false, "the quote carries EGo's 16-byte report header")
	policyPath := fs.String("policy", "", "policy file whose [peers] table decides what is acceptable (measurements too)")
	allowDebug := fs.Bool("allow-debug", false, "accept a DEBUG enclave (its host can read its memory: development only)")
	accept := fs.String("accept-status", "", "comma-separated TCB statuses to accept instead of UpToDate,SWHardeningNeeded (Revoked never is)")
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
	if *policyPath != "" && (*allowDebug || *accept != "") {
		return usageErr(stderr, fs, "--policy decides debug and TCB statuses itself: put allow_debug and tcb_statuses in the file instead of --allow-debug and --accept-status")
	}
	var check verdict.Check
	if *policyPath != "" {
		p, err := policyfile.PeerPolicy(*policyPath, nil)
		if err != nil {
			return fail(stderr, "quote verify", err, "a policy file is TOML with a [peers] table naming mrenclave or mrsigner (docs/DEPLOY.md, step 5)")
		}
		check = p.Check
	} else {
		p := &attest.Policy{AllowDebug: *allowDebug, AllowSimulated: *vf.root != ""}
		if *accept != "" {
			for _, s := range strings.Split(*accept, ",") {
				st := attest.TCBStatus(strings.TrimSpace(s))
				if !st.Known() {
					return usageErr(stderr, fs, "--accept-status: unknown TCB status %q", s)
				}
				if st == attest.Revoked {
					return usageErr(stderr, fs, "--accept-status: Revoked is never accepted")
				}
				p.TCBStatuses = append(p.TCBStatuses, st)
			}
		}
		check = p.CheckPlatform
	}
	v, err := vf.verifier()
	if err != nil {
		return fail(stderr, "quote verify", err, "--root must be a readable PEM file holding one certificate (a simulated platform's is DIR/root_ca.pem)")
	}
	q, err := readQuote(*quotePath)
	if err != nil {
		return fail(stderr, "quote verify", err, "--quote must be a readable file holding a quote, binary or hex ('-' reads standard input); `enclavectl sim quote --out FILE` makes one")
	}
	if *ego {
		if q, err = sgxquote.StripEGoHeader(q); err != nil {
			return fail(stderr, "quote verify", err, "the file does not start with EGo's 16-byte header: leave out --ego for a plain quote")
		}
	}
	out := verdict.Judge(ctx, v, check, q)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fail(stderr, "quote verify", err, "standard output could not be written")
	}
	if out.Error != "" {
		fmt.Fprintf(stderr, "enclavectl quote verify: %s\n", out.Error)
		if out.Hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", out.Hint)
		}
	}
	return out.ExitCode()
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
