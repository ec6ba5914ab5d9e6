// Package gramine is the attest.Attester for enclaves running under
// Gramine-SGX with `sgx.remote_attestation = "dcap"`.
//
// Gramine exposes attestation as pseudo-files under /dev/attestation:
// write 64 bytes to user_report_data, then read quote to get a DCAP quote
// v3 whose report data are those bytes. That state is process-wide, so
// every Attester in the process serializes on one lock. The 16-byte SGX
// seal keys are read from keys/_sgx_mrenclave and keys/_sgx_mrsigner;
// package seal derives working keys from them with HKDF.
//
// The directory is a field, so tests run against a fake directory; a
// real deployment leaves it empty.
package gramine
