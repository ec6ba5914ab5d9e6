// Package atls is attested TLS: the one place where "which enclave am I
// talking to" is decided, for the relay, the KMS and the client library.
//
// # Post-handshake mutual attestation (the relay protocol)
//
// After an ordinary TLS handshake (1.3 preferred, 1.2 minimum) both sides
// derive digest = SHA-256(exporter(ExporterLabel, no context, 32 bytes)).
// No one outside this TLS session can compute it.
//
//	client → server   u32 length ‖ quote(report data = digest ‖ 32 zeros)
//	server            verify: genuine, Policy, report data — else one ERROR frame, close
//	server → client   u32 length ‖ quote(report data = SHA-256(server leaf DER) ‖ digest)
//	client            verify: genuine, Policy, report data against the
//	                  certificate it saw in this handshake — else close
//
// A quote replayed from another session binds another digest; a server
// whose quote binds another certificate, or a man in the middle who
// terminates TLS and forwards quotes, fails the same check. [Peer.Client]
// and [Peer.Server] run the two sides. TLS 1.2 without extended master
// secret has no exporter and is refused ([ErrNoExporter]).
//
// # RA-TLS certificates
//
// [NewCertificate] generates a key inside the enclave (ECDSA P-384, as
// Gramine does) and a self-signed certificate whose extensions carry
// quotes binding that key; [NewCertificateForKey] does the same for a key
// the caller generated in the enclave. Three formats:
//
//   - Gramine legacy (Gramine ≥ 1.0): the raw quote, report data
//     SHA-256(SubjectPublicKeyInfo DER) ‖ zeros.
//   - Gramine standard (Gramine ≥ 1.8): TCG DICE tagged evidence, OID
//     2.23.133.5.4.9, CBOR tag 60000 over [quote, claims] with claims
//     {"pubkey-hash": bstr(CBOR [1, SHA-256(SPKI)])} and report data
//     SHA-256(claims) ‖ zeros.
//   - EGo: OID 1.3.6.1.4.1.311.105.1, EGo's 16-byte header ‖ quote,
//     report data SHA-256(SPKI) ‖ zeros.
//
// [VerifyConnection] checks such a certificate from
// tls.Config.VerifyConnection, which Go runs on every handshake including
// resumed ones. [Extract] lists what a certificate carries; [Evidence]
// picks the preferred format (standard, legacy, EGo) and, like Gramine's
// verifier, does not fall back when the preferred one is unusable.
//
// # The legacy extension, byte for byte
//
// Gramine's source (tools/sgx/ra-tls/ra_tls.h) defines the legacy OID as
// the eleven bytes 06 09 2A 86 48 86 F8 4D 8A 39 06 — already the DER
// tag (06), length (09) and value of 1.2.840.113741.1337.6 — and passes
// them to Mbed TLS as the OID value, which adds a tag and length of its
// own. Every Gramine certificate therefore carries the extension as
//
//	30 82 LL LL                              Extension SEQUENCE
//	   06 0B 06 09 2A 86 48 86 F8 4D 8A 39 06   extnID, decoding as 0.6.9.42.840.113741.1337.6
//	   04 82 LL LL <quote>                      extnValue (critical omitted: FALSE)
//
// Gramine keeps this on purpose (a comment in ra_tls.h; the pull request
// that would have fixed it was closed) because its verifier finds the
// extension by searching the extension bytes for those eleven bytes.
// This package writes exactly that ([OIDGramineQuote]), so a parser keyed
// on Gramine's real encoding finds the project's extension, and it reads
// both that and the clean 06 09 2A 86 48 86 F8 4D 8A 39 06
// ([OIDGramineQuoteClean]); a certificate with both is refused as
// ambiguous. The extensions are written in Gramine's order: legacy, then
// standard (then EGo's, which Gramine does not write).
//
// Only the extensions, their order and the key type follow Gramine. The
// rest of the certificate (subject, serial, validity, key usage, the
// signature hash) is this package's own; no verifier of either project
// looks at it.
//
// # Keys
//
// Gramine 1.0–1.3 used RSA-3072 keys, 1.4 and later ECDSA P-384. Gramine
// 1.4–1.7 verifiers accept only P-384; 1.8 and later accept P-256 or
// P-384. Certificates made here are therefore P-384 by default, and
// [NewCertificateForKey] refuses any key but P-256 or P-384. Verifying,
// this package binds whatever SubjectPublicKeyInfo the certificate holds
// (the TLS handshake proves possession of its key), so certificates from
// every Gramine and EGo version are read.
//
// What a caller must check is all in the Policy it passes: a zero Policy
// accepts nothing.
package atls
