// Package kms is the key management service behind kmsd: named keys with
// versions, used only inside the enclave, behind an HTTP API that follows
// HashiCorp Vault's transit engine so that Vault's clients work unchanged
// (docs/KMS-API.md lists every endpoint).
//
// [New] loads keys, token hashes and policies from a sealed store (or
// keeps them in memory), or follows a [Shared] storage that several
// replicas write (package kms/jetstream), waiting before each request
// until it has seen every change committed before it, with every write a
// compare-and-set ([ErrConflict]: the request runs again); [Service.Bootstrap] makes the root token once,
// committing it only after it has been handed to the operator, and
// [Service.GenerateRoot] replaces a lost one given the recovery key;
// [Service.Handler] is the API. Every request is authorized by a token's
// policies (Vault's path language) and written to the audit log, which
// fails closed. Keys marked with a release policy can be released, wrapped
// to a key that an attested enclave's quote binds ([OpenRelease] unwraps).
package kms
