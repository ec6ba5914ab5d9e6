package attest

import (
	"crypto/subtle"
	"fmt"
	"slices"
)

// DefaultTCBStatuses are accepted when Policy.TCBStatuses is empty.
var DefaultTCBStatuses = []TCBStatus{UpToDate, SWHardeningNeeded}

// Policy decides whether a verified Report is acceptable. It is applied
// only after a Verifier has established that the quote is genuine.
//
// A zero-value Policy accepts nothing: at least one MREnclave or MRSigner
// value must be given. Within a list any value matches; across fields
// every rule must hold.
type Policy struct {
	// MREnclave lists acceptable enclave measurements. Empty: any, provided
	// MRSigner is set.
	MREnclave []Hash32
	// MRSigner lists acceptable signers. Empty: any, provided MREnclave
	// is set.
	MRSigner []Hash32
	// ProductID, when not nil, must equal ISVPRODID.
	ProductID *uint16
	// MinISVSVN is the lowest acceptable ISVSVN.
	MinISVSVN uint16
	// AllowDebug accepts enclaves with the DEBUG attribute. Debug enclaves
	// can be read by their host: never set this in production.
	AllowDebug bool
	// TCBStatuses lists acceptable merged statuses; empty means
	// DefaultTCBStatuses. Revoked is never accepted.
	TCBStatuses []TCBStatus
	// ReportData, when not nil, must equal the quote's 64 report data
	// bytes (compared in constant time).
	ReportData []byte
	// AllowSimulated accepts quotes that chained to a simulated root. A
	// verifier trusts a simulated root only when told to; this is a second,
	// independent switch so that a policy written for SGX can never be
	// satisfied by a simulated quote.
	AllowSimulated bool
}

// Check returns nil if r satisfies p, or a *PolicyError.
func (p *Policy) Check(r *Report) error {
	if p == nil || (len(p.MREnclave) == 0 && len(p.MRSigner) == 0) {
		return &PolicyError{Rule: "empty", Reason: "policy names no MRENCLAVE or MRSIGNER, so it accepts nothing"}
	}
	if r == nil {
		return &PolicyError{Rule: "report", Reason: "no report"}
	}
	if r.Simulated && !p.AllowSimulated {
		// Said first: under an SGX policy, "simulated" is the whole story.
		return &PolicyError{Rule: "simulated", Reason: "quote comes from a simulated platform and the policy does not allow simulation"}
	}
	if len(p.MREnclave) > 0 && !slices.Contains(p.MREnclave, r.MREnclave) {
		return &PolicyError{Rule: "mrenclave", Reason: fmt.Sprintf("MRENCLAVE %s is not allowed", r.MREnclave)}
	}
	if len(p.MRSigner) > 0 && !slices.Contains(p.MRSigner, r.MRSigner) {
		return &PolicyError{Rule: "mrsigner", Reason: fmt.Sprintf("MRSIGNER %s is not allowed", r.MRSigner)}
	}
	if p.ProductID != nil && *p.ProductID != r.ISVProdID {
		return &PolicyError{Rule: "isvprodid", Reason: fmt.Sprintf("ISVPRODID %d, want %d", r.ISVProdID, *p.ProductID)}
	}
	if r.ISVSVN < p.MinISVSVN {
		return &PolicyError{Rule: "isvsvn", Reason: fmt.Sprintf("ISVSVN %d is below the minimum %d", r.ISVSVN, p.MinISVSVN)}
	}
	if err := p.CheckPlatform(r); err != nil {
		return err
	}
	if p.ReportData != nil {
		if len(p.ReportData) != len(r.ReportData) || subtle.ConstantTimeCompare(p.ReportData, r.ReportData) != 1 {
			return &PolicyError{Rule: "report-data", Reason: "report data does not match the expected binding"}
		}
	}
	return nil
}

// CheckPlatform applies only the rules about how the enclave runs, not
// which enclave it is: simulation, DEBUG, and the TCB status (Revoked
// never passes). It is for tools that judge a quote of any enclave, such
// as `enclavectl quote verify` without a policy file; services use Check,
// which also requires a measurement. A nil policy accepts nothing.
func (p *Policy) CheckPlatform(r *Report) error {
	if p == nil {
		return &PolicyError{Rule: "empty", Reason: "no policy"}
	}
	if r == nil {
		return &PolicyError{Rule: "report", Reason: "no report"}
	}
	if r.Simulated && !p.AllowSimulated {
		return &PolicyError{Rule: "simulated", Reason: "quote comes from a simulated platform and the policy does not allow simulation"}
	}
	if r.Debug && !p.AllowDebug {
		return &PolicyError{Rule: "debug", Reason: "enclave runs in DEBUG mode, which its host can inspect"}
	}
	statuses := p.TCBStatuses
	if len(statuses) == 0 {
		statuses = DefaultTCBStatuses
	}
	if r.TCBStatus == Revoked || !slices.Contains(statuses, r.TCBStatus) {
		return &PolicyError{Rule: "tcb-status", Reason: fmt.Sprintf("TCB status %s is not accepted (advisories %v)", r.TCBStatus, r.AdvisoryIDs)}
	}
	return nil
}

// WithReportData returns a copy of p that also requires the given report
// data.
func (p *Policy) WithReportData(rd []byte) *Policy {
	c := *p
	c.ReportData = rd
	return &c
}
