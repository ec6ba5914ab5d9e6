package jetstream

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/wire"
)

// A message in the stream is a record:
//
//	0x01 ‖ epoch [8] ‖ counter u64 ‖ sealed
//
// epoch is drawn at random when a relay node opens the backend, counter
// counts that node's messages from 1: together they are the message's
// sequence, unique in the cluster. sealed is seal.Sealer.Seal of kind
// recordKind, name = the recipient's blinded mailbox [16] ‖ epoch, version
// = counter, so that a record moved to another mailbox, or re-labelled
// with another sequence, does not open. Its plaintext is
//
//	from-length u8 ‖ from ‖ msgid-length u8 ‖ msgid ‖ data
//
// The sender is inside the plaintext, authenticated by the AEAD like the
// associated data; it is not in a clear header, which would show the
// JetStream operators who writes to whom.
const (
	recordVersion = 1
	recordHeader  = 1 + 8 + 8
	recordKind    = "relay/cluster-msg"
)

// errRecord: a record that is not one (too short, unknown version).
var errRecord = errors.New("relay/jetstream: malformed record")

// seqKey is a message's sequence (epoch ‖ counter).
type seqKey [16]byte

func recordName(mailbox []byte, epoch []byte) []byte {
	return append(append(make([]byte, 0, len(mailbox)+8), mailbox...), epoch...)
}

// sealRecord makes the record of m for the mailbox blinded as mailbox.
func sealRecord(s *seal.Sealer, mailbox []byte, epoch [8]byte, counter uint64, m relay.Message) ([]byte, error) {
	if len(m.From) == 0 || len(m.From) > wire.MaxIDLen || len(m.ID) > wire.MaxMsgIDLen {
		return nil, errors.New("relay/jetstream: sender or message id out of range")
	}
	pt := make([]byte, 0, 2+len(m.From)+len(m.ID)+len(m.Data))
	pt = append(pt, byte(len(m.From)))
	pt = append(pt, m.From...)
	pt = append(pt, byte(len(m.ID)))
	pt = append(pt, m.ID...)
	pt = append(pt, m.Data...)
	sealed, err := s.Seal(recordKind, recordName(mailbox, epoch[:]), counter, pt)
	clear(pt)
	if err != nil {
		return nil, err
	}
	rec := make([]byte, recordHeader, recordHeader+len(sealed))
	rec[0] = recordVersion
	copy(rec[1:9], epoch[:])
	binary.BigEndian.PutUint64(rec[9:17], counter)
	return append(rec, sealed...), nil
}

// parseRecord splits a record into its sequence and sealed part.
func parseRecord(rec []byte) (key seqKey, counter uint64, sealed []byte, err error) {
	if len(rec) < recordHeader+seal.Overhead || rec[0] != recordVersion {
		return key, 0, nil, errRecord
	}
	copy(key[:], rec[1:17])
	return key, binary.BigEndian.Uint64(rec[9:17]), rec[recordHeader:], nil
}

// openRecord opens a record of the mailbox blinded as mailbox.
func openRecord(s *seal.Sealer, mailbox []byte, rec []byte) (seqKey, relay.Message, error) {
	key, counter, sealed, err := parseRecord(rec)
	if err != nil {
		return key, relay.Message{}, err
	}
	pt, err := s.Open(recordKind, recordName(mailbox, key[:8]), counter, sealed)
	if err != nil {
		return key, relay.Message{}, err
	}
	m, err := parsePlain(pt)
	return key, m, err
}

// parsePlain decodes a record's plaintext; every strict prefix fails.
func parsePlain(pt []byte) (relay.Message, error) {
	if len(pt) < 1 {
		return relay.Message{}, errRecord
	}
	n := int(pt[0])
	if n == 0 || len(pt) < 1+n+1 {
		return relay.Message{}, errRecord
	}
	from := pt[1 : 1+n]
	if !utf8.Valid(from) {
		return relay.Message{}, errRecord
	}
	rest := pt[1+n:]
	k := int(rest[0])
	if k > wire.MaxMsgIDLen || len(rest) < 1+k {
		return relay.Message{}, errRecord
	}
	m := relay.Message{From: string(from), Data: rest[1+k:]}
	if k > 0 {
		m.ID = rest[1 : 1+k]
	}
	return m, nil
}
