package wire

import (
	"encoding/binary"
	"fmt"
)

// Extension frame types (docs/PROTOCOL.md section 8). They are not seed
// types: Known and FromClient report false for them, and a relay answers
// them as unknown types until a HELLO has negotiated the extension on the
// connection.
const (
	Hello     Type = 0x10 // C→S: magic ‖ version u8 ‖ features u32
	Fetch     Type = 0x11 // C→S: max u16 ‖ wait ms u32
	Subscribe Type = 0x12 // C→S: credit u32
	Credit    Type = 0x13 // C→S: credit u32 (≥ 1)
	Ack       Type = 0x14 // C→S: kind u8 ‖ ids
	SendID    Type = 0x15 // C→S: msgid length u8 ‖ msgid ‖ SEND_DATA payload
	Ping      Type = 0x17 // C→S: empty

	HelloAck     Type = 0x90 // S→C: HelloAckInfo
	FetchEnd     Type = 0x91 // S→C: count u16
	SubscribeAck Type = 0x92 // S→C: empty
	CreditAck    Type = 0x93 // S→C: credit u32
	Acked        Type = 0x94 // S→C: acked u32 ‖ not held u32
	Pong         Type = 0x97 // S→C: empty
	Deliver      Type = 0x98 // S→C: unsolicited; delivery id u64 ‖ flags u8 ‖ msgid length u8 ‖ msgid ‖ u16 sender length ‖ sender ‖ data
	ExtNack      Type = 0xE4 // S→C: UTF-8 reason
)

var extNames = map[Type]string{
	Hello: "HELLO", Fetch: "FETCH", Subscribe: "SUBSCRIBE", Credit: "CREDIT", Ack: "ACK",
	SendID: "SEND_ID", Ping: "PING", HelloAck: "HELLO_ACK", FetchEnd: "FETCH_END",
	SubscribeAck: "SUBSCRIBE_ACK", CreditAck: "CREDIT_ACK", Acked: "ACKED", Pong: "PONG",
	Deliver: "DELIVER", ExtNack: "EXT_NACK",
}

// Extension reports whether t is one of the extension types above.
func (t Type) Extension() bool { _, ok := extNames[t]; return ok }

// ExtFromClient reports whether t is an extension type a client may send.
func (t Type) ExtFromClient() bool { return t.Extension() && t < 0x80 }

// HelloMagic opens HELLO and HELLO_ACK payloads: a HELLO without it is
// answered as an unknown type, as the seed protocol does.
const HelloMagic = "SEXT"

// ExtVersion is the version of the extension this package speaks.
const ExtVersion = 1

// Feature bits of HELLO and HELLO_ACK.
const (
	// FeatureDelivery: FETCH, SUBSCRIBE, CREDIT, ACK, PING and DELIVER
	// (at-least-once delivery with acknowledgements).
	FeatureDelivery uint32 = 1 << 0
	// FeatureMsgID: SEND_ID (sends de-duplicated by a message id).
	FeatureMsgID uint32 = 1 << 1
)

// Limits of the extension frames.
const (
	MaxMsgIDLen = 64   // bytes of a message id, 1..64
	MaxAckIDs   = 1024 // delivery ids in one individual ACK
	// FlagRedelivered in a DELIVER's flags: the message was delivered
	// before and not acknowledged.
	FlagRedelivered uint8 = 1 << 0
	// AckIndividual and AckCumulative are the ACK kinds.
	AckIndividual uint8 = 0
	AckCumulative uint8 = 1
)

// Problems of extension payloads.
const (
	WrongLength  Problem = iota + 16 // a fixed-size payload of the wrong size (Len: got, Follow: want)
	BadMagic                         // a HELLO without HelloMagic
	ZeroCount                        // a count that must be at least 1 is 0
	TooManyIDs                       // an ACK with more than MaxAckIDs ids (Len)
	BadAckKind                       // an ACK kind other than 0 and 1 (Len)
	EmptyMsgID                       // a message id of 0 bytes
	MsgIDTooLong                     // a message id over MaxMsgIDLen bytes (Len)
	UnknownFlags                     // DELIVER flags with undefined bits (Len)
)

func extDetail(e *PayloadError) (string, bool) {
	switch e.Problem {
	case WrongLength:
		return fmt.Sprintf("payload of %d bytes, want %d", e.Len, e.Follow), true
	case BadMagic:
		return "no extension magic", true
	case ZeroCount:
		return "count of 0", true
	case TooManyIDs:
		return fmt.Sprintf("%d delivery ids, more than %d", e.Len, MaxAckIDs), true
	case BadAckKind:
		return fmt.Sprintf("ack kind %d, want 0 or 1", e.Len), true
	case EmptyMsgID:
		return "empty message id", true
	case MsgIDTooLong:
		return fmt.Sprintf("message id of %d bytes, longer than %d", e.Len, MaxMsgIDLen), true
	case UnknownFlags:
		return fmt.Sprintf("flags 0x%02X with undefined bits", e.Len), true
	}
	return "", false
}

func wrongLen(got, want int) error {
	return &PayloadError{Problem: WrongLength, Len: got, Follow: want}
}

// HelloInfo is a HELLO payload: HelloMagic ‖ version u8 ‖ features u32.
type HelloInfo struct {
	Version  uint8
	Features uint32
}

const helloLen = 4 + 1 + 4

// AppendHello appends a HELLO payload. It never fails.
func AppendHello(dst []byte, h HelloInfo) []byte {
	dst = append(dst, HelloMagic...)
	dst = append(dst, h.Version)
	return binary.BigEndian.AppendUint32(dst, h.Features)
}

// ParseHello decodes a HELLO payload. A payload that is not exactly 9
// bytes starting with HelloMagic is a *PayloadError (BadMagic or
// WrongLength); a relay answers it as an unknown frame type.
func ParseHello(p []byte) (HelloInfo, error) {
	if len(p) < 4 || string(p[:4]) != HelloMagic {
		return HelloInfo{}, &PayloadError{Problem: BadMagic}
	}
	if len(p) != helloLen {
		return HelloInfo{}, wrongLen(len(p), helloLen)
	}
	return HelloInfo{Version: p[4], Features: binary.BigEndian.Uint32(p[5:])}, nil
}

// HelloAckInfo is a HELLO_ACK payload: what the relay granted and its
// limits.
type HelloAckInfo struct {
	Version   uint8
	Features  uint32 // granted: a subset of what HELLO asked for
	MaxBatch  uint16 // most messages one FETCH may ask for
	MaxWaitMS uint32 // longest wait one FETCH may ask for
	MaxCredit uint32 // most credit a subscription may hold
	AckWaitMS uint32 // how long a delivery waits for its ACK before it is redelivered
	IdleMS    uint32 // the session idle timeout: send a frame (PING) more often
	DedupS    uint32 // the message-id de-duplication window, in seconds
}

const helloAckLen = 4 + 1 + 4 + 2 + 4*5

// AppendHelloAck appends a HELLO_ACK payload. It never fails.
func AppendHelloAck(dst []byte, h HelloAckInfo) []byte {
	dst = append(dst, HelloMagic...)
	dst = append(dst, h.Version)
	dst = binary.BigEndian.AppendUint32(dst, h.Features)
	dst = binary.BigEndian.AppendUint16(dst, h.MaxBatch)
	for _, v := range []uint32{h.MaxWaitMS, h.MaxCredit, h.AckWaitMS, h.IdleMS, h.DedupS} {
		dst = binary.BigEndian.AppendUint32(dst, v)
	}
	return dst
}

// ParseHelloAck decodes a HELLO_ACK payload (exactly 31 bytes).
func ParseHelloAck(p []byte) (HelloAckInfo, error) {
	if len(p) != helloAckLen {
		return HelloAckInfo{}, wrongLen(len(p), helloAckLen)
	}
	if string(p[:4]) != HelloMagic {
		return HelloAckInfo{}, &PayloadError{Problem: BadMagic}
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(p[11+4*i:]) }
	return HelloAckInfo{
		Version: p[4], Features: binary.BigEndian.Uint32(p[5:]), MaxBatch: binary.BigEndian.Uint16(p[9:]),
		MaxWaitMS: u(0), MaxCredit: u(1), AckWaitMS: u(2), IdleMS: u(3), DedupS: u(4),
	}, nil
}

// FetchReq is a FETCH payload: max u16 (≥ 1) ‖ wait ms u32.
type FetchReq struct {
	Max    uint16
	WaitMS uint32
}

// AppendFetch appends a FETCH payload; Max 0 is refused (ZeroCount).
func AppendFetch(dst []byte, f FetchReq) ([]byte, error) {
	if f.Max == 0 {
		return dst, &PayloadError{Problem: ZeroCount}
	}
	dst = binary.BigEndian.AppendUint16(dst, f.Max)
	return binary.BigEndian.AppendUint32(dst, f.WaitMS), nil
}

// ParseFetch decodes a FETCH payload (exactly 6 bytes, max ≥ 1).
func ParseFetch(p []byte) (FetchReq, error) {
	if len(p) != 6 {
		return FetchReq{}, wrongLen(len(p), 6)
	}
	f := FetchReq{Max: binary.BigEndian.Uint16(p), WaitMS: binary.BigEndian.Uint32(p[2:])}
	if f.Max == 0 {
		return FetchReq{}, &PayloadError{Problem: ZeroCount}
	}
	return f, nil
}

// AppendU32 appends the 4-byte payload of SUBSCRIBE, CREDIT and
// CREDIT_ACK. A CREDIT of 0 is refused by ParseCredit, not here.
func AppendU32(dst []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(dst, v) }

// ParseU32 decodes a payload of exactly one u32 (SUBSCRIBE, CREDIT_ACK).
func ParseU32(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, wrongLen(len(p), 4)
	}
	return binary.BigEndian.Uint32(p), nil
}

// AppendCredit appends a CREDIT payload; 0 is refused (ZeroCount).
func AppendCredit(dst []byte, n uint32) ([]byte, error) {
	if n == 0 {
		return dst, &PayloadError{Problem: ZeroCount}
	}
	return AppendU32(dst, n), nil
}

// ParseCredit decodes a CREDIT payload: a u32 of at least 1.
func ParseCredit(p []byte) (uint32, error) {
	n, err := ParseU32(p)
	if err == nil && n == 0 {
		return 0, &PayloadError{Problem: ZeroCount}
	}
	return n, err
}

// AckReq is an ACK payload. Cumulative: kind 1 ‖ id u64, acknowledging
// every delivery id ≤ IDs[0] the session holds. Individual: kind 0 ‖
// count u16 (1..MaxAckIDs) ‖ count × id u64.
type AckReq struct {
	Cumulative bool
	IDs        []uint64
}

// AppendAck appends an ACK payload; what ParseAck would refuse (no ids,
// more than MaxAckIDs, a cumulative ack of other than one id) is refused.
func AppendAck(dst []byte, a AckReq) ([]byte, error) {
	if a.Cumulative {
		if len(a.IDs) != 1 {
			return dst, wrongLen(1+8*len(a.IDs), 9)
		}
		dst = append(dst, AckCumulative)
		return binary.BigEndian.AppendUint64(dst, a.IDs[0]), nil
	}
	switch {
	case len(a.IDs) == 0:
		return dst, &PayloadError{Problem: ZeroCount}
	case len(a.IDs) > MaxAckIDs:
		return dst, &PayloadError{Problem: TooManyIDs, Len: len(a.IDs)}
	}
	dst = append(dst, AckIndividual)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(a.IDs)))
	for _, id := range a.IDs {
		dst = binary.BigEndian.AppendUint64(dst, id)
	}
	return dst, nil
}

// ParseAck decodes an ACK payload. The ids are copied.
func ParseAck(p []byte) (AckReq, error) {
	if len(p) < 1 {
		return AckReq{}, wrongLen(0, 9)
	}
	switch p[0] {
	case AckCumulative:
		if len(p) != 9 {
			return AckReq{}, wrongLen(len(p), 9)
		}
		return AckReq{Cumulative: true, IDs: []uint64{binary.BigEndian.Uint64(p[1:])}}, nil
	case AckIndividual:
		if len(p) < 3 {
			return AckReq{}, wrongLen(len(p), 3)
		}
		n := int(binary.BigEndian.Uint16(p[1:]))
		switch {
		case n == 0:
			return AckReq{}, &PayloadError{Problem: ZeroCount}
		case n > MaxAckIDs:
			return AckReq{}, &PayloadError{Problem: TooManyIDs, Len: n}
		case len(p) != 3+8*n:
			return AckReq{}, wrongLen(len(p), 3+8*n)
		}
		ids := make([]uint64, n)
		for i := range ids {
			ids[i] = binary.BigEndian.Uint64(p[3+8*i:])
		}
		return AckReq{IDs: ids}, nil
	}
	return AckReq{}, &PayloadError{Problem: BadAckKind, Len: int(p[0])}
}

// AppendAcked appends an ACKED payload: acked u32 ‖ not held u32.
func AppendAcked(dst []byte, acked, notHeld uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(dst, acked), notHeld)
}

// ParseAcked decodes an ACKED payload (exactly 8 bytes).
func ParseAcked(p []byte) (acked, notHeld uint32, err error) {
	if len(p) != 8 {
		return 0, 0, wrongLen(len(p), 8)
	}
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), nil
}

// AppendFetchEnd appends a FETCH_END payload: count u16.
func AppendFetchEnd(dst []byte, n uint16) []byte { return binary.BigEndian.AppendUint16(dst, n) }

// ParseFetchEnd decodes a FETCH_END payload (exactly 2 bytes).
func ParseFetchEnd(p []byte) (uint16, error) {
	if len(p) != 2 {
		return 0, wrongLen(len(p), 2)
	}
	return binary.BigEndian.Uint16(p), nil
}

func checkMsgID[T string | []byte](id T) error {
	switch {
	case len(id) == 0:
		return &PayloadError{Problem: EmptyMsgID}
	case len(id) > MaxMsgIDLen:
		return &PayloadError{Problem: MsgIDTooLong, Len: len(id)}
	}
	return nil
}

// AppendSendID appends a SEND_ID payload:
// msgid length u8 (1..64) ‖ msgid ‖ u16 recipient length ‖ recipient ‖ data.
// The part after the msgid is exactly a SEND_DATA payload.
func AppendSendID(dst []byte, msgID []byte, recipient string, data []byte) ([]byte, error) {
	if err := checkMsgID(msgID); err != nil {
		return dst, err
	}
	if err := checkID(recipient); err != nil {
		return dst, err
	}
	dst = append(dst, byte(len(msgID)))
	dst = append(dst, msgID...)
	return AppendAddressed(dst, recipient, data)
}

// ParseSendID splits a SEND_ID payload. The slices alias p.
func ParseSendID(p []byte) (msgID, recipient, data []byte, err error) {
	if len(p) < 1 {
		return nil, nil, nil, &PayloadError{Problem: ShortPayload, Len: 0}
	}
	n := int(p[0])
	if n == 0 {
		return nil, nil, nil, &PayloadError{Problem: EmptyMsgID}
	}
	if n > MaxMsgIDLen {
		return nil, nil, nil, &PayloadError{Problem: MsgIDTooLong, Len: n}
	}
	if n > len(p)-1 {
		return nil, nil, nil, &PayloadError{Problem: IDLengthMismatch, Len: n, Follow: len(p) - 1}
	}
	recipient, data, err = ParseAddressed(p[1+n:])
	if err != nil {
		return nil, nil, nil, err
	}
	return p[1 : 1+n], recipient, data, nil
}

// Delivery is a DELIVER payload.
type Delivery struct {
	ID    uint64 // delivery id, to acknowledge
	Flags uint8  // FlagRedelivered
	MsgID []byte // the sender's message id, empty if it sent none
	From  []byte
	Data  []byte
}

// AppendDeliveryHeader appends a DELIVER payload up to the data:
// id u64 ‖ flags u8 ‖ msgid length u8 (0..64) ‖ msgid ‖ u16 sender length ‖ sender.
// Undefined flag bits, a msgid over 64 bytes or a sender CheckID refuses
// are refused.
func AppendDeliveryHeader(dst []byte, id uint64, flags uint8, msgID []byte, from string) ([]byte, error) {
	if flags&^FlagRedelivered != 0 {
		return dst, &PayloadError{Problem: UnknownFlags, Len: int(flags)}
	}
	if len(msgID) > MaxMsgIDLen {
		return dst, &PayloadError{Problem: MsgIDTooLong, Len: len(msgID)}
	}
	if err := checkID(from); err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, flags, byte(len(msgID)))
	dst = append(dst, msgID...)
	return AppendAddressed(dst, from, nil)
}

// DeliveryHeaderLen is the length of AppendDeliveryHeader's output.
func DeliveryHeaderLen(msgID []byte, from string) int { return 8 + 1 + 1 + len(msgID) + 2 + len(from) }

// ParseDelivery decodes a DELIVER payload; its slices alias p.
func ParseDelivery(p []byte) (Delivery, error) {
	if len(p) < 10 {
		return Delivery{}, &PayloadError{Problem: ShortPayload, Len: len(p)}
	}
	d := Delivery{ID: binary.BigEndian.Uint64(p), Flags: p[8]}
	if d.Flags&^FlagRedelivered != 0 {
		return Delivery{}, &PayloadError{Problem: UnknownFlags, Len: int(d.Flags)}
	}
	n := int(p[9])
	if n > MaxMsgIDLen {
		return Delivery{}, &PayloadError{Problem: MsgIDTooLong, Len: n}
	}
	if n > len(p)-10 {
		return Delivery{}, &PayloadError{Problem: IDLengthMismatch, Len: n, Follow: len(p) - 10}
	}
	if n > 0 {
		d.MsgID = p[10 : 10+n]
	}
	from, data, err := ParseAddressed(p[10+n:])
	if err != nil {
		return Delivery{}, err
	}
	d.From, d.Data = from, data
	return d, nil
}
