// Package seal protects records that leave enclave memory.
//
// # Keys
//
// Everything derives from a [Root]: under Gramine the 16-byte SGX seal key
// read from /dev/attestation/keys/_sgx_mrenclave (only this exact enclave)
// or _sgx_mrsigner (any enclave of the same signer); in simulation the
// platform secret bound to the program's measurement ([SimulatedRoot]).
// A missing, short or all-zero key is an error, never a fallback.
//
// # Envelope
//
//	0x01 ‖ key generation u32 ‖ nonce [12] ‖ AES-256-GCM ciphertext ‖ tag [16]
//
// The associated data names the record's kind, name and version, and the
// generation, so a record copied to another name, kind or version, or
// sealed by another enclave identity, fails to open ([ErrOpen]). Key
// rotation raises the generation; [Sealer.NeedsReseal] finds records to
// re-seal.
package seal
