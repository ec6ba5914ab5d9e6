// Package dcap verifies Intel SGX ECDSA quotes (DCAP, quote v3) in pure
// Go: [Verifier.Verify] answers "is this quote genuine?" and returns an
// attest.Report; whether the report is acceptable is attest.Policy's job.
//
// # Trust
//
// The trusted roots come from [Options]: [IntelRoot] (Intel's SGX Root
// CA, embedded and pinned by SHA-256) for real SGX, a simulated
// platform's root for simulation. Nothing else is trusted — not the root
// certificate a quote carries, not the collateral source: collateral is
// checked against the same roots. With no roots or no collateral source,
// [New] fails.
//
// # Steps
//
// Each failure is a *[Error] naming its [Step] and wrapping
// attest.ErrNotGenuine (and [ErrExpired] or [ErrRevoked] where they
// apply): parse; PCK chain; collateral; CRLs; QE report signature; QE
// report data; ISV report signature; TCB info; QE identity; TCB status.
// The order and the rules are in Verifier.Verify's documentation and in
// docs/SECURITY.md. A differential test runs the independent verifier
// @phala/dcap-qvl on the same inputs.
//
// # Speed
//
// Results that depend only on input bytes — chain building for a PCK
// chain, collateral and QE-report signatures, parsed collateral — are
// remembered, keyed by SHA-256 of those bytes, with the time window in
// which they hold. Every date and every per-quote signature is checked on
// every call.
package dcap
