// Package client is the Go client library for the Shared Enclave relay
// (and later the KMS). [Dial] connects over TLS, runs the mutual
// attestation of package atls, and returns a [Conn] only once the relay's
// quote is verified, accepted by the caller's Policy, and bound to this TLS
// session. Register, Send and Poll map one to one onto the relay's frames;
// a NACK comes back as a *NackError (errors.Is(err, ErrNack)) with the
// server's reason, an ERROR frame as a *ServerError.
package client
