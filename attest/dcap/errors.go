package dcap

import (
	"errors"
	"fmt"

	"github.com/sharedenclave/sharedenclave/attest"
)

// Step names a verification step. Every error Verify returns is a *Error
// carrying the step that failed.
type Step string

// The verification steps, in the order Verify runs them.
const (
	StepParse        Step = "parse"
	StepPCKChain     Step = "pck-chain"
	StepCollateral   Step = "collateral"
	StepCRL          Step = "crl"
	StepQESignature  Step = "qe-report-signature"
	StepQEReportData Step = "qe-report-data"
	StepISVSignature Step = "isv-report-signature"
	StepTCBInfo      Step = "tcb-info"
	StepQEIdentity   Step = "qe-identity"
	StepTCBStatus    Step = "tcb-status"
)

// Sentinels for the failures callers most often branch on. They are
// wrapped by *Error together with attest.ErrNotGenuine.
var (
	ErrRevoked = errors.New("dcap: certificate revoked")
	ErrExpired = errors.New("dcap: not valid at the verification time")
	ErrNoRoots = errors.New("dcap: no trusted roots configured")
)

// Error reports the step at which verification failed.
type Error struct {
	Step Step
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("dcap: %s: %v", e.Step, e.Err) }

// Unwrap returns the cause and attest.ErrNotGenuine.
func (e *Error) Unwrap() []error { return []error{e.Err, attest.ErrNotGenuine} }

func fail(step Step, format string, args ...any) error {
	return &Error{Step: step, Err: fmt.Errorf(format, args...)}
}
