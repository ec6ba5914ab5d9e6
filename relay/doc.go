// Package relay is the Shared Enclave relay: the server side of
// docs/PROTOCOL.md.
//
// A [Server] accepts TCP connections, runs TLS and the mutual attestation
// of package atls (its Config.Peer.Policy says which client enclaves may
// connect), then serves frames: REGISTER_CLIENT against a registry (one
// live session per id, optional bindings of ids to attested identities),
// SEND_DATA into the recipient's bounded mailbox, POLL_DATA out of the
// caller's own. Mailboxes outlive sessions; they live in memory
// ([MemoryMailboxes], with a cap on their total size) or in a sealed store
// ([DurableMailboxes]: SEND_ACK only after the message is on disk, one
// shared fsync per batch of answers).
//
// # The delivery extension
//
// A session that sends HELLO (docs/PROTOCOL.md section 8) switches to a
// loop that also pushes: SUBSCRIBE with credit, batch FETCH (long poll),
// DELIVER with a delivery id, ACK, redelivery after a disconnect or the
// ack-wait, and SEND_ID de-duplicated by message id. Mailboxes that
// implement [Acker] and [Deduper] (both built-in ones do) make it
// available; a delivered message stays in its mailbox, held, until it is
// acknowledged, so the mailbox limits bound what a receiver that grants
// no credit can make the relay hold. Without HELLO a session is exactly
// the seed protocol.
//
// Every read has a deadline: a slow or silent client holds only its own
// goroutine. Answers are buffered and flushed when the client has nothing
// more pending. [Server.Shutdown] stops accepting, lets each session
// answer what it has read, and closes.
package relay
