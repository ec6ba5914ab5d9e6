// Package jetstream keeps a relay's mailboxes and its registry of live
// ids in NATS JetStream, so that several relayd nodes serve one logical
// relay (relayd --cluster). Only cmd/relayd imports it.
//
// # What is stored
//
// One stream (Config.Stream, "SE_RELAY") holds every message, one subject
// per mailbox: se.relay.m.TOKEN, where TOKEN is the hex of a 16-byte keyed
// hash (seal.Sealer.Blind) of the client id under a key derived from the
// cluster data key. Each message is a record (record.go) sealed with
// AES-256-GCM under the cluster data key, the mailbox and the message's
// sequence (a per-node random epoch and a counter) in the associated
// data; the sender, the message id and the data are inside. A SEND_ID
// carries the header Nats-Msg-Id = the hex of a keyed hash of (sender,
// message id), so JetStream's de-duplication window (Limits.DedupWindow)
// drops a retried send. No id, payload or key is in the clear anywhere
// JetStream keeps or forwards it.
//
// Three key-value buckets, keys the same tokens, values sealed:
//
//   - SE_RELAY_IDS: the ids known (created once, KV Create), so that a
//     send to an id never registered is refused on every node;
//   - SE_RELAY_HOLDERS: which id is held by a live session, as a lease:
//     KV Create to take it (exactly one node wins), compare-and-set
//     updates as heartbeats, and a bucket TTL equal to the lease, so that
//     an id held by a node that died frees itself after the lease;
//   - SE_RELAY_CLUSTER: one check record sealed under the cluster key, so
//     that a node holding another key is refused at start.
//
// # Delivery
//
// The node holding an id (the registry makes it the only one) keeps the
// mailbox's delivery state in memory: a cursor into the stream, the
// messages delivered and not acknowledged, those released for
// redelivery. Ack deletes a message from the stream; a message taken by a
// node that died is still in the stream and is delivered again by the
// next holder.
//
// Where Take finds the next message: when a session registers, the node
// starts an ordered consumer on the mailbox's subject (the prefetch),
// which pushes each record to the node as it is stored, in stream order,
// up to 1 MiB waiting (64 MiB for all of a node's prefetches); Take takes
// from it without a request to the stream leader. JetStream places such a
// consumer on a random replica, where a message arrives only once that
// replica knows it committed; a prefetch is made again (a few times at
// most) until it lands on the stream's leader. If the prefetch cannot
// start, overflows, reports an error (a server lost), stalls behind the
// notifications for two sweeps, or goes unused for a minute, it is
// stopped and Take reads the next message of the subject from the stream
// leader, from its cursor, which misses nothing. After a successful
// publish the sending node publishes a core-NATS message on
// se.relay.n.TOKEN (the stream sequence); a node listens on the subject
// of each id registered through it (from the first registration until it
// stops) and wakes its session holding that id, so a message wakes one
// node, not every node of the cluster. A notification
// lost (core NATS is at most once) is made up for by a sweep that wakes
// every local waiting session every two seconds.
//
// A seed-protocol POLL does not wait: when a publish or notification has
// announced a sequence the prefetch has not yet received, Pop reads it
// from the stream, so that a POLL after a SEND_ACK through the same node
// always finds the message (as on a single node). Push and long-poll
// sessions wait for the prefetch, whose arrival wakes them.
//
// # Limits
//
// Config.MaxMessages is the stream's per-subject limit (discard new per
// subject: SEND_NACK "mailbox full"); Config.MaxBytes the stream's byte
// limit ("relay full"); Config.DedupWindow its de-duplication window.
// JetStream has no per-mailbox byte limit and no bound on the ids in its
// window, so relayd refuses --mailbox-bytes and --dedup-ids with
// --cluster. Every node must be started with the same limits: Open
// refuses a stream made with others (ErrConfigMismatch).
//
// # What this does not do
//
// A joining node gets the cluster key through the attested custody
// hand-off (relayd --join), not through this package: Config.Key comes
// from the caller (relayd: the data dir's sealed custody file). A record's
// sequence lets the node holding a mailbox drop a replay it remembers; it
// cannot reveal a deleted message (docs/SECURITY.md).
package jetstream
