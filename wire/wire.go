package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Type is a frame type byte.
type Type uint8

// Frame types, byte-exact (see docs/PROTOCOL.md).
const (
	RegisterClient  Type = 0x01 // C→S: client id
	SendData        Type = 0x02 // C→S: u16 recipient length ‖ recipient ‖ data
	PollData        Type = 0x03 // C→S: empty
	RegisterAck     Type = 0x81 // S→C
	SendAck         Type = 0x82 // S→C
	DataAvailable   Type = 0x83 // S→C: u16 sender length ‖ sender ‖ data
	NoDataAvailable Type = 0xA3 // S→C
	RegisterNack    Type = 0xE1 // S→C: optional UTF-8 reason
	SendNack        Type = 0xE2 // S→C: optional UTF-8 reason
	PollNack        Type = 0xE3 // S→C: optional UTF-8 reason
	Error           Type = 0xFF // S→C: optional UTF-8 reason
)

var typeNames = map[Type]string{
	RegisterClient: "REGISTER_CLIENT", SendData: "SEND_DATA", PollData: "POLL_DATA",
	RegisterAck: "REGISTER_ACK", SendAck: "SEND_ACK", DataAvailable: "DATA_AVAILABLE",
	NoDataAvailable: "NO_DATA_AVAILABLE", RegisterNack: "REGISTER_NACK", SendNack: "SEND_NACK",
	PollNack: "POLL_NACK", Error: "ERROR",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	if n, ok := extNames[t]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(0x%02X)", uint8(t))
}

// Known reports whether t is one of the seed types above (not an
// extension type: see Extension).
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// FromClient reports whether t is a type a client may send.
func (t Type) FromClient() bool { return t == RegisterClient || t == SendData || t == PollData }

// Sizes and limits.
const (
	HeaderSize = 5 // type u8 ‖ length u32 big-endian
	// DefaultMaxPayload is the default cap on a frame's payload.
	DefaultMaxPayload = 1 << 20
	// MaxIDLen is the longest client id, in bytes.
	MaxIDLen = 255
	// MaxQuote caps the attestation quote exchanged before framing.
	MaxQuote = 64 << 10
)

// Errors. ErrTooLarge is wrapped by *SizeError, ErrMalformed by
// *PayloadError.
var (
	ErrTooLarge  = errors.New("wire: frame too large")
	ErrMalformed = errors.New("wire: malformed payload")
)

// Problem says what is wrong with a payload. Callers branch on it (the
// relay turns it into a NACK reason); they never parse the error text.
type Problem uint8

// Problems a payload decoder (or encoder) finds.
const (
	EmptyID          Problem = iota + 1 // a client id of 0 bytes
	IDTooLong                           // a client id over MaxIDLen bytes
	IDNotUTF8                           // a client id that is not valid UTF-8
	ShortPayload                        // an addressed payload under 2 bytes
	IDLengthMismatch                    // an id length larger than the bytes that follow it
)

// PayloadError is a payload refused by its decoder, or refused by an
// encoder because its decoder would refuse it. It wraps ErrMalformed.
type PayloadError struct {
	Problem Problem
	// Len is the length at fault: the id's (EmptyID, IDTooLong,
	// IDLengthMismatch: the u16 it claims) or the payload's (ShortPayload).
	Len int
	// Follow is, for IDLengthMismatch, how many bytes follow the u16.
	Follow int
}

func (e *PayloadError) Error() string { return ErrMalformed.Error() + ": " + e.Detail() }

// Detail is what is wrong, without the package prefix: the text a relay
// puts in a NACK.
func (e *PayloadError) Detail() string {
	var d string
	switch e.Problem {
	case EmptyID:
		d = "empty client id"
	case IDTooLong:
		d = fmt.Sprintf("client id of %d bytes, longer than %d", e.Len, MaxIDLen)
	case IDNotUTF8:
		d = "client id is not valid UTF-8"
	case ShortPayload:
		d = fmt.Sprintf("%d bytes, too short for the u16 id length", e.Len)
	case IDLengthMismatch:
		d = fmt.Sprintf("id length %d, but %d bytes follow", e.Len, e.Follow)
	default:
		if x, ok := extDetail(e); ok {
			d = x
			break
		}
		d = fmt.Sprintf("problem %d", e.Problem)
	}
	return d
}

// Unwrap returns ErrMalformed.
func (e *PayloadError) Unwrap() error { return ErrMalformed }

// SizeError reports a length over its limit; nothing was allocated for it.
type SizeError struct {
	What  string
	Len   uint64
	Limit int
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("wire: %s of %d bytes is over the %d-byte limit", e.What, e.Len, e.Limit)
}

// Unwrap returns ErrTooLarge.
func (e *SizeError) Unwrap() error { return ErrTooLarge }

// retainMax is the largest payload buffer a Reader keeps between frames.
const retainMax = 64 << 10

// Frame is one decoded frame. Payload aliases the Reader's buffer and is
// valid only until the next ReadFrame.
type Frame struct {
	Type    Type
	Payload []byte
}

// Reader decodes frames from a stream.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
	hdr [HeaderSize]byte
}

// NewReader returns a Reader that refuses payloads over maxPayload bytes
// (DefaultMaxPayload if maxPayload <= 0). r is buffered if it is not a
// *bufio.Reader already.
func NewReader(r io.Reader, maxPayload int) *Reader {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &Reader{r: br, max: maxPayload}
}

// Buffered is how many bytes are already read from the stream and not
// yet consumed: a server flushes its replies when this is zero.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadFrame reads one frame. A length over the limit returns a *SizeError
// before any of the payload is read or allocated; a stream that ends
// mid-frame returns io.ErrUnexpectedEOF, and one that ends between frames
// io.EOF.
func (r *Reader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:1]); err != nil {
		return Frame{}, err
	}
	if _, err := io.ReadFull(r.r, r.hdr[1:]); err != nil {
		return Frame{}, noEOF(err)
	}
	n := binary.BigEndian.Uint32(r.hdr[1:])
	if uint64(n) > uint64(r.max) {
		return Frame{}, &SizeError{What: "payload", Len: uint64(n), Limit: r.max}
	}
	var p []byte
	if n > retainMax {
		// A large payload gets its own buffer, not kept: one big frame does
		// not pin its size in memory for the life of the connection.
		p = make([]byte, n)
	} else {
		if cap(r.buf) < int(n) {
			r.buf = make([]byte, n, retainMax)
		}
		p = r.buf[:n]
	}
	if _, err := io.ReadFull(r.r, p); err != nil {
		return Frame{}, noEOF(err)
	}
	return Frame{Type: Type(r.hdr[0]), Payload: p}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// MaxFrameLen is the longest payload the u32 length of a frame can
// state. A Reader refuses far less (its configured maximum).
const MaxFrameLen = 0xFFFFFFFF

// CheckFrameLen refuses a payload length the frame header cannot state,
// with a *SizeError, so that no encoder writes a truncated length.
func CheckFrameLen(n int) error {
	if n < 0 || uint64(n) > MaxFrameLen {
		return &SizeError{What: "payload", Len: uint64(max(n, 0)), Limit: MaxFrameLen}
	}
	return nil
}

// AppendFrame appends the encoding of a frame to dst. The payload must be
// at most MaxFrameLen bytes (check untrusted sizes with CheckFrameLen or
// use WriteFrame); a longer one panics rather than being written with a
// truncated length.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	return append(AppendFrameHeader(dst, t, len(payload)), payload...)
}

// AppendFrameHeader appends the 5-byte header of a frame whose payload
// is n bytes long; the caller writes the payload after it. n out of
// 0..MaxFrameLen panics, as for AppendFrame.
func AppendFrameHeader(dst []byte, t Type, n int) []byte {
	if err := CheckFrameLen(n); err != nil {
		panic(err)
	}
	dst = append(dst, byte(t))
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// WriteFrame writes one frame to w in a single Write. A payload over
// MaxFrameLen returns a *SizeError and nothing is written.
func WriteFrame(w io.Writer, t Type, payload []byte) error {
	if err := CheckFrameLen(len(payload)); err != nil {
		return err
	}
	_, err := w.Write(AppendFrame(make([]byte, 0, HeaderSize+len(payload)), t, payload))
	return err
}

// CheckID validates a client id: 1..255 bytes of valid UTF-8. It returns
// a *PayloadError.
func CheckID(id []byte) error { return checkID(id) }

func checkID[T string | []byte](id T) error {
	switch {
	case len(id) == 0:
		return &PayloadError{Problem: EmptyID}
	case len(id) > MaxIDLen:
		return &PayloadError{Problem: IDTooLong, Len: len(id)}
	case !validUTF8(id):
		return &PayloadError{Problem: IDNotUTF8, Len: len(id)}
	}
	return nil
}

func validUTF8[T string | []byte](s T) bool {
	switch v := any(s).(type) {
	case string:
		return utf8.ValidString(v)
	default:
		return utf8.Valid(v.([]byte))
	}
}

// AppendRegister appends the REGISTER_CLIENT payload: the id itself. An
// id the relay would refuse (CheckID) returns a *PayloadError and dst
// unchanged.
func AppendRegister(dst []byte, id string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return dst, err
	}
	return append(dst, id...), nil
}

// AppendAddressed appends the SEND_DATA / DATA_AVAILABLE payload
// u16 id length ‖ id ‖ data. An id ParseAddressed would refuse — empty,
// over MaxIDLen bytes, not UTF-8 — returns a *PayloadError and dst
// unchanged: an id is never truncated to fit the u16.
func AppendAddressed(dst []byte, id string, data []byte) ([]byte, error) {
	if err := checkID(id); err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	return append(dst, data...), nil
}

// ParseAddressed splits a SEND_DATA or DATA_AVAILABLE payload into the id
// and the data. The id must pass CheckID. The returned slices alias p.
// Errors are *PayloadError.
func ParseAddressed(p []byte) (id, data []byte, err error) {
	if len(p) < 2 {
		return nil, nil, &PayloadError{Problem: ShortPayload, Len: len(p)}
	}
	n := int(binary.BigEndian.Uint16(p))
	if n > len(p)-2 {
		return nil, nil, &PayloadError{Problem: IDLengthMismatch, Len: n, Follow: len(p) - 2}
	}
	id, data = p[2:2+n], p[2+n:]
	if err := CheckID(id); err != nil {
		return nil, nil, err
	}
	return id, data, nil
}

// WriteQuote writes the attestation message u32 length (big-endian) ‖ quote.
func WriteQuote(w io.Writer, quote []byte) error {
	if len(quote) == 0 || len(quote) > MaxQuote {
		return &SizeError{What: "quote", Len: uint64(len(quote)), Limit: MaxQuote}
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(quote)), uint32(len(quote)))
	_, err := w.Write(append(b, quote...))
	return err
}

// ReadQuote reads u32 length ‖ quote, refusing a length of 0 or over
// MaxQuote before allocating.
func ReadQuote(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, noEOF(err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, fmt.Errorf("%w: quote length 0", ErrMalformed)
	}
	if n > MaxQuote {
		return nil, &SizeError{What: "quote", Len: uint64(n), Limit: MaxQuote}
	}
	q := make([]byte, n)
	if _, err := io.ReadFull(r, q); err != nil {
		return nil, noEOF(err)
	}
	return q, nil
}
