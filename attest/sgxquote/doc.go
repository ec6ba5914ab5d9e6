// Package sgxquote encodes and decodes Intel SGX ECDSA quotes, version 3,
// byte for byte. It knows the layout only: it checks no signature and
// applies no policy (see package dcap for that) and does no I/O.
//
// # Layout
//
// All integers are little-endian; offsets are from the start of the quote.
//
//	header       0  version u16 (=3) | 2 attestation key type u16 (=2, ECDSA P-256) | 4 TEE type u32 (=0, SGX)
//	             8  QE SVN u16 | 10 PCE SVN u16 | 12 QE vendor id [16] | 28 user data [20]
//	report body 48  CPUSVN [16] | 64 MISCSELECT u32 | 68 reserved [28] | 96 ATTRIBUTES [16]
//	           112  MRENCLAVE [32] | 144 reserved [32] | 176 MRSIGNER [32] | 208 reserved [96]
//	           304  ISVPRODID u16 | 306 ISVSVN u16 | 308 reserved [60] | 368 REPORTDATA [64]
//	signature  432  signature data length u32 (= every byte that follows)
//	           436  ISV report signature r‖s [64] | 500 attestation key X‖Y [64]
//	           564  QE report body [384] | 948 QE report signature [64]
//	          1012  QE auth data length u16 | auth data
//	                | certification data type u16 | certification data length u32 | data
//
// [Parse] rejects other versions, key types and TEE types, lengths that do
// not add up, and trailing bytes; [Quote.Marshal] gives back the parsed
// bytes exactly. Quotes are capped at [MaxSize] before anything is copied.
//
// EGo prefixes quotes with a 16-byte header; [StripEGoHeader] removes it
// when the caller knows the quote came from EGo.
package sgxquote
