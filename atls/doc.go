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
// [NewCertificate] generates a key inside the enclave and a self-signed
// certificate whose extension carries a quote binding that key, in
// Gramine's standard format (TCG DICE tagged evidence, OID 2.23.133.5.4.9,
// CBOR tag 60000 over [quote, claims] with claims
// {"pubkey-hash": bstr([1, SHA-256(SPKI)])} and report data
// SHA-256(claims)), Gramine's legacy format (OID 1.2.840.113741.1337.6,
// report data SHA-256(SPKI)), or EGo's (OID 1.3.6.1.4.1.311.105.1, EGo's
// 16-byte header ‖ quote, report data SHA-256(SPKI)). [VerifyConnection]
// checks such a certificate from tls.Config.VerifyConnection, which Go
// runs on every handshake including resumed ones.
//
// What a caller must check is all in the Policy it passes: a zero Policy
// accepts nothing.
package atls
