// Package attest defines the vocabulary shared by every attestation
// backend: an [Attester] produces a quote over report data, a [Verifier]
// decides whether a quote is genuine and returns a [Report], and a
// [Policy] decides whether a genuine report is acceptable.
//
// # Verify, then validate
//
// The two steps are kept apart. A Verifier (package dcap) answers "was this
// quote made by an SGX platform whose keys chain to a root I trust, with
// TCB collateral that is valid now?"; it knows nothing of which enclaves
// you want. A Policy answers "is this the enclave I meant to talk to?".
// [VerifyAndCheck] runs both. Errors wrap [ErrNotGenuine] or [ErrPolicy] so
// that callers can branch with errors.Is.
//
// # Fail closed
//
// A zero-value Policy accepts nothing. Debug enclaves, Revoked or
// out-of-date platforms, and quotes from a simulated platform are refused
// unless the policy says otherwise, field by field.
package attest
