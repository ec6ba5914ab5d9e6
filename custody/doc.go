// Package custody owns one thing: a service's data key, the secret every
// sealed record of relayd or kmsd is ultimately encrypted under, and the
// ways it is kept so that it outlives one enclave build and one machine.
//
// # The data key
//
// A [DataKey] is 32 random bytes generated inside the enclave. It never
// leaves the enclave in plaintext, cannot be printed, and becomes the
// [seal.Root] the stores derive their keys from ([DataKey.Root]).
//
// # How it is kept
//
//   - Sealed, for ordinary restarts: [DataKey.Seal] encrypts it under the
//     enclave's own seal key (a seal.Sealer), so the same enclave on the
//     same CPU opens it without anyone's help.
//
//   - Under recovery shares, for the loss of the machine or a new build:
//     [NewRecovery] draws a recovery secret, encrypts the data key under a
//     key derived from it, splits the secret k-of-n with Shamir's scheme
//     (GF(2^8), constant time) and encrypts each share to one operator's
//     age X25519 recipient. The host sees only the encrypted data key and
//     the age-encrypted shares; no share and no secret is ever printed.
//     [Recovery.Recover] takes k decrypted shares (an operator decrypts
//     hers with her age identity and submits it over an attested channel)
//     and gives the data key back, or nothing: k-1 shares, forged shares
//     and shares of another deployment all fail, and the caller writes
//     nothing.
//
//   - Handed to a successor, for upgrades without operators:
//     [ServeHandoff] (the running build) gives the key to an enclave whose
//     quote satisfies a policy — by default [SuccessorPolicy]: the same
//     signer and product, an ISVSVN at least its own — over a TLS session
//     both sides attested (package atls); [ReceiveHandoff] (the successor)
//     takes it from an enclave satisfying [PredecessorPolicy] and stores
//     it before confirming. The frames are in docs/SECURITY.md.
//
// # On disk and at start
//
// A [File] (custody.json in a data directory) holds the sealed data key and
// the recovery record; cmd/internal/startup writes it, shares first, and
// replaces it whole. When the sealed key does not open, the service starts
// sealed and package custody/unseal serves Vault's sys/seal-status and
// sys/unseal until k shares recover the key.
//
// Every record binds what it belongs to (a random deployment id, k, n)
// in its associated data, so that pieces of two deployments cannot be
// mixed.
package custody
