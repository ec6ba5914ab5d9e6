// Package store is the embedded durable store for sealed records: relay
// mailboxes and KMS keys. It is Pebble (an LSM engine from CockroachDB: no
// mmap, which matters under Gramine; group commit of synced writes) holding
// only values sealed by package seal.
//
// The bytes on disk are untrusted. Values are AES-GCM sealed with their
// kind and key in the associated data, so a flipped byte, a record swapped
// with another, or one copied under another key fails to open and is
// refused ([ErrCorrupt]), never served. A read that fails is another
// matter ([ErrIO]): the record may be intact, and callers keep it. Keys are visible to the host, so
// callers blind names with seal.Sealer.Blind. What the host can still do —
// delete, withhold, or roll the whole directory back to an older copy — is
// in docs/SECURITY.md.
package store
