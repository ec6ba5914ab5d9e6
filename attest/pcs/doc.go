// Package pcs fetches DCAP collateral: TCB info, QE identity, their issuer
// chains and the CRLs, as dcap.Collateral. [Dir] reads a directory in the
// layout of DESIGN.md; [Client] speaks Intel PCS v4 or a PCCS (same paths);
// [Cache] keeps what any Getter returned until its next update; [Handler]
// serves a directory at PCS paths (the simulated platform's collateral
// server). Nothing here checks a signature: dcap.Verifier checks all of it
// against its own trusted roots, so a collateral source can withhold but
// not forge.
package pcs
