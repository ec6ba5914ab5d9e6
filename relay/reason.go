package relay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sharedenclave/sharedenclave/wire"
)

// Reason is why the relay refused a frame: the one home of both the text
// sent in the NACK (docs/PROTOCOL.md section 4 lists each) and the label
// of relay_nacks_total. The set is fixed, so a metric label never carries
// anything a client chose.
type Reason uint8

// Reasons. ReasonNone (the zero value) means no refusal.
const (
	ReasonNone Reason = iota
	// Malformed payloads (wire.Problem).
	ReasonEmptyID
	ReasonIDTooLong
	ReasonIDNotUTF8
	ReasonShortPayload
	ReasonIDLengthMismatch
	ReasonMalformed // a wire.Problem this table does not know
	// REGISTER_CLIENT.
	ReasonOtherIDOnSession
	ReasonIDInUse
	ReasonIDBound
	ReasonTooManyIDs
	ReasonMailboxNotCreated
	// SEND_DATA.
	ReasonRegisterBeforeSend
	ReasonRecipientNotFound
	ReasonMailboxFull
	ReasonRelayFull
	ReasonNotStored
	// POLL_DATA.
	ReasonRegisterBeforePoll
	ReasonMailboxUnreadable

	numReasons // end of the seed's reasons (Reasons)
)

// Reasons of the extension frames (EXT_NACK unless noted); see
// ExtensionReasons.
const (
	ReasonExtMalformed Reason = numReasons + iota
	ReasonHelloAgain
	ReasonNotNegotiated
	ReasonRegisterBeforeFetch
	ReasonRegisterBeforeSubscribe
	ReasonAlreadySubscribed
	ReasonFetchWhileSubscribed
	ReasonCreditBeforeSubscribe
	ReasonOverLimit
	ReasonAckNotStored
	ReasonDedupFull // SEND_NACK to a SEND_ID

	endReasons
)

// reasons gives each Reason its metric label and its NACK text. A text
// with %d verbs is filled with the lengths the wire.PayloadError reports
// (Len, then Follow). Labels are the texts where the text is fixed (the
// values relay_nacks_total has always had); the malformed-payload reasons,
// once all counted as "malformed", now have a label each.
var reasons = [endReasons]struct{ label, text string }{
	ReasonEmptyID:            {"empty client id", "empty client id"},
	ReasonIDTooLong:          {"client id too long", "client id of %d bytes, longer than " + strconv.Itoa(wire.MaxIDLen)},
	ReasonIDNotUTF8:          {"client id not UTF-8", "client id is not valid UTF-8"},
	ReasonShortPayload:       {"payload too short", "%d bytes, too short for the u16 id length"},
	ReasonIDLengthMismatch:   {"id length mismatch", "id length %d, but %d bytes follow"},
	ReasonMalformed:          {"malformed", "malformed payload"},
	ReasonOtherIDOnSession:   {"this session is already registered as another id", "this session is already registered as another id"},
	ReasonIDInUse:            {"id is in use by another session", "id is in use by another session"},
	ReasonIDBound:            {"attested identity may not register this id", "attested identity may not register this id"},
	ReasonTooManyIDs:         {"too many client ids", "too many client ids"},
	ReasonMailboxNotCreated:  {"could not create mailbox", "could not create mailbox"},
	ReasonRegisterBeforeSend: {"register before sending", "register before sending"},
	ReasonRecipientNotFound:  {"recipient not found", "recipient not found"},
	ReasonMailboxFull:        {"mailbox full", "mailbox full"},
	ReasonRelayFull:          {"relay full", "relay full"},
	ReasonNotStored:          {"message could not be stored", "message could not be stored"},
	ReasonRegisterBeforePoll: {"register before polling", "register before polling"},
	ReasonMailboxUnreadable:  {"mailbox could not be read", "mailbox could not be read"},

	ReasonExtMalformed:            {"malformed extension payload", "malformed payload"},
	ReasonHelloAgain:              {"extensions already negotiated", "extensions already negotiated"},
	ReasonNotNegotiated:           {"extension not negotiated", "extension not negotiated on this connection"},
	ReasonRegisterBeforeFetch:     {"register before fetching", "register before fetching"},
	ReasonRegisterBeforeSubscribe: {"register before subscribing", "register before subscribing"},
	ReasonAlreadySubscribed:       {"already subscribed", "already subscribed"},
	ReasonFetchWhileSubscribed:    {"fetch while subscribed", "fetch while subscribed: deliveries go to the subscription"},
	ReasonCreditBeforeSubscribe:   {"subscribe before granting credit", "subscribe before granting credit"},
	ReasonOverLimit:               {"over the limit", "over the limit"},
	ReasonAckNotStored:            {"acknowledgement could not be stored", "acknowledgement could not be stored"},
	ReasonDedupFull:               {"de-duplication table full", "de-duplication table full"},
}

// Reasons returns every Reason of the seed frames (REGISTER_CLIENT,
// SEND_DATA, POLL_DATA) except ReasonNone.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// ExtensionReasons returns the Reasons of the extension frames
// (docs/PROTOCOL.md section 8).
func ExtensionReasons() []Reason {
	var rs []Reason
	for r := numReasons; r < endReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Label is the reason's value of the "reason" label of relay_nacks_total.
func (r Reason) Label() string {
	if r == ReasonNone || r >= endReasons {
		return "none"
	}
	return reasons[r].label
}

// String is the label.
func (r Reason) String() string { return r.Label() }

// Text is the NACK text for reasons without lengths in it; for the others
// (ReasonIDTooLong, ReasonShortPayload, ReasonIDLengthMismatch) it is the
// text as docs/PROTOCOL.md writes it, with N and M for the lengths.
func (r Reason) Text() string {
	if r == ReasonNone || r >= endReasons {
		return ""
	}
	t := strings.Replace(reasons[r].text, "%d", "N", 1)
	return strings.Replace(t, "%d", "M", 1)
}

// text is the NACK text with the lengths n and m filled in.
func (r Reason) text(n, m int) string {
	if r == ReasonNone || r >= endReasons {
		return ""
	}
	t := reasons[r].text
	switch strings.Count(t, "%d") {
	case 1:
		return fmt.Sprintf(t, n)
	case 2:
		return fmt.Sprintf(t, n, m)
	}
	return t
}

// refusal is a Reason with the lengths its text quotes, or (extension
// reasons) the exact text.
type refusal struct {
	reason Reason
	n, m   int
	detail string
}

// refuseDetail is r with a text that says more (ReasonExtMalformed,
// ReasonOverLimit).
func refuseDetail(r Reason, detail string) refusal {
	return refusal{reason: r, n: -1, m: -1, detail: detail}
}

func refuse(r Reason) refusal { return refusal{reason: r, n: -1, m: -1} }

// payloadRefusal turns a payload decoding error into its Reason, by its
// type (never by its text).
func payloadRefusal(err error) refusal {
	var pe *wire.PayloadError
	if !errors.As(err, &pe) {
		return refuse(ReasonMalformed)
	}
	r := refusal{reason: ReasonMalformed, n: pe.Len, m: pe.Follow}
	switch pe.Problem {
	case wire.EmptyID:
		r.reason = ReasonEmptyID
	case wire.IDTooLong:
		r.reason = ReasonIDTooLong
	case wire.IDNotUTF8:
		r.reason = ReasonIDNotUTF8
	case wire.ShortPayload:
		r.reason = ReasonShortPayload
	case wire.IDLengthMismatch:
		r.reason = ReasonIDLengthMismatch
	default:
		return refuseDetail(ReasonExtMalformed, pe.Detail())
	}
	return r
}

func (r refusal) text() string {
	if r.detail != "" {
		return r.detail
	}
	return r.reason.text(r.n, r.m)
}
