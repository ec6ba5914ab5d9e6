// Package snapshot turns a backup of a sealed data dir into one file and
// back: the archive an operator keeps, that `vault operator raft snapshot
// save` writes when pointed at kmsd, and that `enclavectl backup restore`
// unpacks into a new data dir.
//
// A backup directory (a Pebble checkpoint of the sealed store, then
// custody.json) is finished by [Finish] with two files, as Vault's own
// snapshots end:
//
//   - SHA256SUMS: one line per file, "<sha256 hex>  <name>", sorted by
//     name, so `sha256sum -c SHA256SUMS` checks a backup by hand;
//   - SHA256SUMS.sealed: a record sealed under the data key (package
//     seal) holding the digest of SHA256SUMS, the service ("kms",
//     "relay"), the store's sequence and the time the backup was taken.
//     Only an enclave holding the data key can write or open it; Vault's
//     client refuses a snapshot whose last file is not a non-empty
//     SHA256SUMS.sealed (a snapshot cut off midstream).
//
// The archive ([Write]) is a gzip-compressed tar of the backup's regular
// files in that order: the store's and custody.json sorted by name, then
// the two files above, last. [Extract] unpacks one into a new directory
// under limits checked before anything is allocated or written, verifies
// every file against SHA256SUMS, and renames the directory into place only
// when all of it is there: a bad archive leaves nothing behind.
//
// What this does not give: a host that keeps old archives can restore an
// old one (rollback), and can delete SHA256SUMS.sealed from an unpacked
// backup (a data dir is valid without it). Records stay sealed one by one,
// so what can be done to a backup is what can be done to a live data dir;
// docs/SECURITY.md has the threat model.
package snapshot
