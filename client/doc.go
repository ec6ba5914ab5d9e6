// Package client is the Go client library for the Shared Enclave relay
// (and later the KMS). [Dial] connects over TLS, runs the mutual
// attestation of package atls, and returns a [Conn] only once the relay's
// quote is verified, accepted by the caller's Policy, and bound to this TLS
// session. Register, Send and Poll map one to one onto the relay's frames;
// a NACK comes back as a *NackError (errors.Is(err, ErrNack)) with the
// server's reason, an ERROR frame as a *ServerError.
//
// # Client
//
// [Connect] returns a [Client], what an application wants: safe for
// concurrent use, it negotiates the relay's delivery extension
// (docs/PROTOCOL.md section 8) and offers [Client.Receive] (blocks until a
// message is pushed), [Client.Subscribe] (a callback per message),
// [Client.Ack] (returns once the relay has stored the acknowledgement) or
// [Client.AckAsync] (queues it and goes on, as a JetStream Ack: a lost one
// means a redelivery, never a loss), and [Client.Send] with a message id, so that a send cut off
// by a failure is retried without being stored twice. When the connection
// fails it reconnects — fresh TLS and attestation, to the next address —
// registers again, resubscribes, and retries unanswered sends with their
// ids. Deliveries not acknowledged are redelivered by the relay; the Client
// hides from the application the redeliveries of message ids it has
// already handed out. Against a relay without the extension it falls back
// to POLL (at-most-once) and to sends that are not retried
// ([ErrOutcomeUnknown]).
package client
