// Package verdict answers the question a person asks of a quote — may I
// trust it? — in the two parts that must not be confused: is it genuine
// (a dcap.Verifier's job) and is it acceptable (an attest.Policy's job),
// with the reason and a hint that says what to do next. `enclavectl quote
// verify` prints a Verdict as JSON; anything else that shows a quote's
// verdict uses the same function, so there is one code path.
package verdict

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// Exit statuses of a verdict, as `enclavectl quote verify` returns them.
const (
	ExitAcceptable = 0 // genuine and acceptable
	ExitNotGenuine = 1 // not genuine, or verification could not finish
	ExitRefused    = 3 // genuine, but refused by the policy
)

// Verdict is the answer for one quote. Report is set when the quote is
// genuine, whether or not it is acceptable.
type Verdict struct {
	Genuine    bool   `json:"genuine"`
	Acceptable bool   `json:"acceptable"`
	Error      string `json:"error,omitempty"`
	FailedStep string `json:"failed_step,omitempty"`
	PolicyRule string `json:"policy_rule,omitempty"`
	Hint       string `json:"hint,omitempty"`
	*attest.Report
}

// ExitCode maps the verdict to ExitAcceptable, ExitNotGenuine or
// ExitRefused.
func (v *Verdict) ExitCode() int {
	switch {
	case !v.Genuine:
		return ExitNotGenuine
	case !v.Acceptable:
		return ExitRefused
	}
	return ExitAcceptable
}

// Check is the policy applied to a genuine report: attest.Policy.Check,
// attest.Policy.CheckPlatform, or anything returning an
// *attest.PolicyError.
type Check func(*attest.Report) error

// Judge verifies quote with v and, if it is genuine, applies check. A nil
// check accepts nothing.
func Judge(ctx context.Context, v attest.Verifier, check Check, quote []byte) *Verdict {
	out := &Verdict{}
	r, err := v.Verify(ctx, quote)
	if err != nil {
		out.Error = err.Error()
		var de *dcap.Error
		if errors.As(err, &de) {
			out.FailedStep = string(de.Step)
		}
		out.Hint = genuineHint(err)
		return out
	}
	out.Genuine, out.Report = true, r
	if check == nil {
		out.Error, out.PolicyRule = "no policy: nothing is acceptable", "empty"
		return out
	}
	if err := check(r); err != nil {
		out.Error = err.Error()
		var pe *attest.PolicyError
		if errors.As(err, &pe) {
			out.PolicyRule = pe.Rule
		}
		out.Hint = policyHint(out.PolicyRule, r)
		return out
	}
	out.Acceptable = true
	return out
}

// genuineHint says what to do about a verification failure.
func genuineHint(err error) string {
	var ce *dcap.ChainError
	var de *dcap.Error
	errors.As(err, &de)
	switch {
	case errors.Is(err, dcap.ErrUntrustedRoot) && errors.As(err, &ce) && strings.Contains(ce.RootSubject(), dcap.SimulatedMarker):
		return fmt.Sprintf("the quote looks simulated: its chain ends in %q. Check it against its simulated platform: --root SIMDIR/root_ca.pem --collateral SIMDIR/collateral", ce.RootSubject())
	case errors.Is(err, dcap.ErrUntrustedRoot) && errors.As(err, &ce) && strings.Contains(ce.RootSubject(), "Intel SGX Root CA"):
		return "the quote's chain ends in Intel's SGX Root CA, which is not the root you gave: leave out --root to use the pinned Intel root"
	case errors.Is(err, dcap.ErrUntrustedRoot):
		return "the certificate chain does not end in a root you trust: real quotes chain to Intel's SGX Root CA (the default), simulated ones to their platform's root (--root)"
	case errors.Is(err, dcap.ErrRevoked):
		return "Intel has revoked this platform's certificate or TCB: no policy accepts it; the platform must be replaced or updated"
	case errors.Is(err, dcap.ErrExpired):
		return "a certificate or collateral item is not valid at the verification time (the error names it and its dates): to check an old quote, set the time with --at inside that window; otherwise refresh the collateral (from Intel PCS or your PCCS; `enclavectl sim refresh DIR` for a simulated platform)"
	case errors.Is(err, dcap.ErrPEMFraming), errors.Is(err, dcap.ErrChainShape):
		return "a certificate chain is not the exact chain Intel writes ([PCK leaf, PCK CA, root] in the quote, [signer, root] in collateral): the quote or the collateral was altered"
	case errors.Is(err, sgxquote.ErrFormat):
		return "this is not an SGX ECDSA quote v3 as Intel's quoting enclave writes it: check the file (binary, or hex only), and use --ego for an EGo report with its 16-byte header"
	case de != nil && de.Step == dcap.StepCollateral:
		return "the collateral could not be read: --collateral DIR must hold tcb_info.json, qe_identity.json and their issuer chains (the layout `enclavectl sim init` writes), or --pccs must answer"
	case de != nil && (de.Step == dcap.StepQESignature || de.Step == dcap.StepQEReportData || de.Step == dcap.StepISVSignature):
		return "a signature inside the quote does not verify: the quote was altered or forged"
	case de != nil && (de.Step == dcap.StepTCBInfo || de.Step == dcap.StepQEIdentity):
		return "the collateral does not fit this quote or does not verify: fetch the TCB info for the quote's FMSPC and the current QE identity again"
	}
	return ""
}

// policyHint says what to do about a policy refusal.
func policyHint(rule string, r *attest.Report) string {
	switch rule {
	case "debug":
		return "a DEBUG enclave's memory is readable by its host: never trust one in production. To accept it for development, pass --allow-debug (allow_debug = true in a policy file)"
	case "tcb-status":
		if r.TCBStatus == attest.Revoked {
			return "Revoked is never accepted"
		}
		return fmt.Sprintf("the platform's TCB is %s (advisories %v): update the platform (BIOS, microcode), or, if those advisories do not matter to you, accept the status with --accept-status %s (tcb_statuses in a policy file)", r.TCBStatus, r.AdvisoryIDs, r.TCBStatus)
	case "simulated":
		return "the quote comes from a simulated platform: it proves nothing about SGX hardware. Accept it only for testing: give its root with --root, or allow_simulated = true in a policy file"
	case "mrenclave", "mrsigner", "isvprodid", "isvsvn":
		return "this is not an enclave the policy names: compare the report's mrenclave, mrsigner, isvprodid and isvsvn with the policy file"
	case "empty":
		return "the policy names no enclave: add mrenclave or mrsigner to its [peers] table"
	}
	return ""
}
