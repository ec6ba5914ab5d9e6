package custody

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"filippo.io/age"
)

// File is what a data directory keeps about its data key: the key sealed
// under the enclave's seal key and, when the operators chose recovery,
// the recovery record. Nothing in it is secret in the clear; it is
// written whole (a new file renamed over the old one), so a crash leaves
// the old File or the new one.
type File struct {
	Version int `json:"version"`
	// Sealed is the data key sealed under the enclave's seal key
	// (DataKey.Seal).
	Sealed []byte `json:"sealed_data_key"`
	// Recovery is nil when no recovery shares were made.
	Recovery *Recovery `json:"recovery,omitempty"`
}

// ErrFileFormat: a custody file is malformed.
var ErrFileFormat = errors.New("custody: malformed custody file")

// maxFile bounds a custody file: 255 recipients of ~62 bytes and a few
// hundred bytes of rest.
const maxFile = 64 << 10

// Marshal encodes f as JSON.
func (f *File) Marshal() ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (f *File) check() error {
	if f.Version != 1 {
		return fmt.Errorf("%w: version %d, want 1", ErrFileFormat, f.Version)
	}
	if len(f.Sealed) == 0 || len(f.Sealed) > 256 {
		return fmt.Errorf("%w: sealed data key of %d bytes", ErrFileFormat, len(f.Sealed))
	}
	if f.Recovery != nil {
		if err := f.Recovery.Check(); err != nil {
			return fmt.Errorf("%w: %v", ErrFileFormat, err)
		}
	}
	return nil
}

// ParseFile decodes what Marshal wrote: one JSON object, no unknown
// fields, nothing after it.
func ParseFile(b []byte) (*File, error) {
	if len(b) > maxFile {
		return nil, fmt.Errorf("%w: %d bytes", ErrFileFormat, len(b))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	f := &File{}
	if err := d.Decode(f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFileFormat, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: data after the object", ErrFileFormat)
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the object", ErrFileFormat)
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// SameRecovery reports whether r was made for these recipients, in this
// order, with threshold k.
func (r *Recovery) SameRecovery(recipients []string, k int) bool {
	if r.Threshold != k || len(r.Recipients) != len(recipients) {
		return false
	}
	for i, rc := range recipients {
		p, err := age.ParseX25519Recipient(rc)
		if err != nil || p.String() != r.Recipients[i] {
			return false
		}
	}
	return true
}

// Equal compares two shares, their values in constant time.
func (s *Share) Equal(o *Share) bool {
	same := s.Deployment == o.Deployment && s.Threshold == o.Threshold && s.Shares == o.Shares && s.x == o.x
	return subtle.ConstantTimeCompare(s.y, o.y) == 1 && same
}

// Reveal returns the share's text, the secret an operator submits to
// unseal. Call it only to write the share where its holder asked
// (enclavectl custody decrypt-share --out) or to send it over an attested
// channel; clear the result after use.
func (s *Share) Reveal() []byte { return s.marshal() }

// Wipe clears the share's value.
func (s *Share) Wipe() { clear(s.y) }
