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
// Every read has a deadline: a slow or silent client holds only its own
// goroutine. Answers are buffered and flushed when the client has nothing
// more pending. [Server.Shutdown] stops accepting, lets each session
// answer what it has read, and closes.
package relay
