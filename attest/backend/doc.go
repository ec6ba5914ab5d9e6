// Package backend assembles an attester and a verifier for one of the two
// modes, so that every command (relayd, kmsd, example-client, enclavectl)
// chooses the same way:
//
//   - SGX (the default): quotes from Gramine's /dev/attestation; verified
//     against Intel's SGX Root CA with collateral from Intel PCS, a PCCS, or
//     a directory; CRLs required.
//   - Simulation (only when asked): quotes from the simulated platform in a
//     directory, created on first use where the command allows; verified by
//     the same dcap code against that platform's root. The default policy
//     accepts the platform's signer and nothing else.
package backend
