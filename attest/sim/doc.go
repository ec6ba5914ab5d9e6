// Package sim is the simulated SGX platform: a root CA whose subject says
// SIMULATED, a PCK CA and PCK certificate with Intel's SGX extensions, a
// TCB signing certificate, a quoting-enclave attestation key, TCB info and
// QE identity signed like Intel's, and CRLs. Its quotes are byte for byte
// SGX ECDSA quotes v3 and go through package dcap unchanged; only the
// trusted root differs, so a verifier that trusts Intel's root refuses
// them, and attest.Policy refuses them unless AllowSimulated is set.
//
// Nothing about a simulated enclave is secret from its host: the
// platform's private keys and secret are files in DIR/private.
//
// [Init] creates a platform in a directory (public parts where a user
// looks for them: DIR/root_ca.pem, DIR/collateral/), [Load] opens one,
// [Platform.Quote] and [Platform.Attester] make quotes, and
// [Platform.RevokePCK] and InitOptions.OutOfDate make the platforms tests
// need.
package sim
