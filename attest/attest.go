package attest

import (
	"context"
	"errors"
	"fmt"
)

// Attester produces evidence (an SGX quote) binding 64 bytes of report data
// chosen by the caller.
type Attester interface {
	Quote(ctx context.Context, reportData [64]byte) ([]byte, error)
}

// Verifier checks that a quote is genuine: produced by a real (or, with a
// simulated root, a simulated) SGX platform whose TCB is known. It returns
// what the quote says; whether that is acceptable is a [Policy] decision.
type Verifier interface {
	Verify(ctx context.Context, quote []byte) (*Report, error)
}

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotGenuine is wrapped by every error a Verifier returns when the
	// quote or its collateral does not check out.
	ErrNotGenuine = errors.New("attest: evidence is not genuine")
	// ErrPolicy is wrapped by every error Policy.Check returns.
	ErrPolicy = errors.New("attest: evidence rejected by policy")
)

// PolicyError says which policy rule a report broke.
type PolicyError struct {
	Rule   string // e.g. "mrenclave", "debug", "tcb-status"
	Reason string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("attest: policy: %s: %s", e.Rule, e.Reason)
}

// Unwrap makes errors.Is(err, ErrPolicy) true.
func (e *PolicyError) Unwrap() error { return ErrPolicy }

// VerifyAndCheck verifies quote with v and then applies p. Both steps must
// pass.
func VerifyAndCheck(ctx context.Context, v Verifier, p *Policy, quote []byte) (*Report, error) {
	r, err := v.Verify(ctx, quote)
	if err != nil {
		return nil, err
	}
	if err := p.Check(r); err != nil {
		return r, err
	}
	return r, nil
}
