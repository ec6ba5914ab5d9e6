// Package wire is the relay's framing, byte for byte. It knows nothing
// of sessions or mailboxes and does no I/O beyond the io.Reader and
// io.Writer it is given.
//
// # Attestation messages
//
// Before any frame, each side sends its quote as
//
//	length u32 big-endian ‖ quote
//
// with 1 ≤ length ≤ MaxQuote (64 KiB), checked before allocating.
//
// # Frames
//
//	type u8 ‖ length u32 big-endian ‖ payload
//
// The payload is at most the configured maximum (DefaultMaxPayload, 1 MiB);
// a longer length is refused with a *SizeError before any of it is read.
// SEND_DATA and DATA_AVAILABLE payloads are
//
//	id length u16 big-endian ‖ id (1..255 bytes UTF-8) ‖ data
//
// and REGISTER_CLIENT's payload is the id itself. The encoders refuse what
// the decoders refuse: AppendAddressed and AppendRegister return a
// *PayloadError for an id that is empty, over 255 bytes or not UTF-8 (an
// id is never truncated to fit its u16 length), and WriteFrame a
// *SizeError for a payload its u32 length cannot state. The NACK types and ERROR
// carry an optional UTF-8 reason. docs/PROTOCOL.md gives every type and
// when each answer is sent.
//
// # Extension frames
//
// ext.go holds the frames of the negotiated delivery extension (HELLO,
// FETCH, SUBSCRIBE, CREDIT, ACK, SEND_ID, PING and their answers, DELIVER;
// docs/PROTOCOL.md section 8). They are not seed types: Type.Known is
// false for them. Each has an Append and a Parse function; fixed-size
// payloads accept exactly their size, and the encoders refuse what the
// decoders refuse.
package wire
