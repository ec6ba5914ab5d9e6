// Package jetstream keeps kmsd's records in a NATS JetStream key-value
// bucket shared by several kmsd replicas: a [kms.Shared] for
// kms.Config.Storage. Only cmd/kmsd imports it.
//
// # What the bucket holds
//
// One bucket (default [DefaultBucket]; its stream KV_<bucket>, history 1,
// file storage, replicas configurable, default 3, direct gets off so that
// every read is answered by the stream leader). Each record of the
// service (a key with all its versions, a token, a policy, the recovery
// record, the BYOK wrapping key) is one entry:
//
//   - its bucket key is the hex of a 16-byte HMAC(k, kind ‖ 0 ‖ key), a
//     keyed hash under a key derived from the cluster data key: neither the
//     kind nor the name (or token hash) is visible;
//   - its value is prev u64 ‖ AES-256-GCM(kind, key, record) sealed under
//     the cluster data key with the bucket, the bucket key and prev (the
//     revision the write replaced) in the associated data.
//
// Every write is a compare-and-set (JetStream's expected last sequence
// per subject): [kms.ErrConflict] when another replica wrote first.
// A deletion is a KV deletion marker.
//
// # Staying current
//
// [Store.Watch] follows the bucket (an ordered consumer) and hands every
// change to the service; [Store.Barrier] asks the stream leader for the
// last sequence and waits until the watch has delivered it. The service
// calls Barrier before every request: one round trip to the stream
// leader (shared by concurrent requests, each joining one sent after it
// arrived), after which it answers with every change committed before
// the request arrived.
//
// # What is detected
//
// A value that does not open, or that is stored under another record's
// bucket key, is refused. A value claiming to replace a revision older
// than the newest this replica has seen for its key (an old value
// published again) is refused. Not detected: deletion of entries or of
// the whole stream (a deleted token is a revoked one; a deleted key is
// lost), withholding, and a replay of old values to a replica that never
// saw the newer ones (one started after the rollback). docs/SECURITY.md
// has the full list.
//
// # Joining
//
// The first replica creates the bucket with a check record sealed under
// its data key; [Open] refuses a replica whose data key does not open it
// ([ErrNotClusterKey]). The cluster data key reaches another replica only
// through the attested hand-off (custody/handoff), never a flag or file.
package jetstream
