package kms

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
)

// The batch codec: a scanner for the plain shape of a request body and
// an encoder for batch_results. A 1000-item batch is a few hundred KiB
// of JSON; encoding/json scans it three times over (Unmarshal's
// validation, the skip of each raw value, the decode of batch_input and
// of each field) and allocates a map per item, which cost ten times
// the AES-GCM it wraps.
//
// The scanner accepts only a subset of JSON whose meaning is plain: one
// object with distinct keys; strings of printable ASCII without escapes;
// integers; true, false, null; and, for batch_input only, a list of such
// objects whose keys are item fields and whose values are strings (an
// integer or string for key_version). On anything else it gives up and
// the caller parses the body with encoding/json, as before, which gives
// the same result on what the scanner accepts (FuzzScanBody checks it)
// and the exact error on the rest.

// itemField bits: which fields an item of a scanned batch has.
const (
	fieldKeyVersion = 1 << len(itemStrings)
	allItemFields   = fieldKeyVersion<<1 - 1
)

// scannedBatch is batch_input as the scanner read it.
type scannedBatch struct {
	raw     []byte // the batch_input value in the body (identity check)
	items   []batchItem
	present []uint16 // per item, the itemStrings bits, and fieldKeyVersion
}

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string of printable ASCII without escapes and returns its
// contents.
func (s *jsonScanner) str() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

// sep reads what follows a member or an element: ',' (more follow) or
// closing (the end); ok false on anything else.
func (s *jsonScanner) sep(closing byte) (more, ok bool) {
	s.ws()
	switch s.peek() {
	case ',':
		s.i++
		return true, true
	case closing:
		s.i++
		return false, true
	}
	return false, false
}

// plainString returns the contents of raw if it is one JSON string of
// printable ASCII without escapes (what encoding/json would decode it
// to, without its reflection).
func plainString(raw []byte) (string, bool) {
	s := &jsonScanner{b: raw}
	v, ok := s.str()
	if !ok || s.i != len(raw) {
		return "", false
	}
	return string(v), true
}

// scalar reads a plain string, an integer, true, false or null, and
// returns its bytes as they are in the body.
func (s *jsonScanner) scalar() ([]byte, bool) {
	start := s.i
	switch c := s.peek(); {
	case c == '"':
		if _, ok := s.str(); !ok {
			return nil, false
		}
	case c == '-' || c >= '0' && c <= '9':
		j := s.i
		if s.b[j] == '-' {
			j++
		}
		switch {
		case j < len(s.b) && s.b[j] == '0':
			j++
		case j < len(s.b) && s.b[j] >= '1' && s.b[j] <= '9':
			for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
				j++
			}
		default:
			return nil, false
		}
		// A fraction or exponent follows: the caller sees no delimiter
		// and gives up.
		s.i = j
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return s.b[start:s.i], true
			}
		}
		return nil, false
	}
	return s.b[start:s.i], true
}

// scanBody parses body if it has the plain shape (see above). ok false:
// parse it with encoding/json instead.
func scanBody(body []byte) (fields map[string]json.RawMessage, batch *scannedBatch, ok bool) {
	s := &jsonScanner{b: body}
	s.ws()
	if s.peek() != '{' {
		return nil, nil, false
	}
	s.i++
	fields = map[string]json.RawMessage{}
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			key, ok := s.str()
			if !ok {
				return nil, nil, false
			}
			if _, dup := fields[string(key)]; dup {
				return nil, nil, false
			}
			s.ws()
			if s.peek() != ':' {
				return nil, nil, false
			}
			s.i++
			s.ws()
			var val []byte
			if string(key) == "batch_input" && s.peek() == '[' {
				start := s.i
				batch, ok = s.batch()
				if !ok {
					return nil, nil, false
				}
				val = s.b[start:s.i]
				batch.raw = val
			} else if val, ok = s.scalar(); !ok {
				return nil, nil, false
			}
			fields[string(key)] = val
			more, ok := s.sep('}')
			if !ok {
				return nil, nil, false
			}
			if !more {
				break
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, nil, false
	}
	return fields, batch, true
}

// batch reads a non-empty list of at most maxBatch plain item objects.
func (s *jsonScanner) batch() (*scannedBatch, bool) {
	s.i++ // '['
	// Every item starts with '{': their count bounds the items.
	n := min(bytes.Count(s.b[s.i:], []byte{'{'}), maxBatch)
	b := &scannedBatch{items: itemPool.get(n), present: make([]uint16, 0, n)}
	for {
		s.ws()
		if len(b.items) == maxBatch {
			return nil, false
		}
		b.items = append(b.items, batchItem{})
		present, ok := s.item(&b.items[len(b.items)-1])
		if !ok {
			return nil, false
		}
		b.present = append(b.present, present)
		if more, ok := s.sep(']'); !ok || !more {
			return b, ok
		}
	}
}

// item reads one batch_input object into it.
func (s *jsonScanner) item(it *batchItem) (uint16, bool) {
	if s.peek() != '{' {
		return 0, false
	}
	s.i++
	var present uint16
	s.ws()
	if s.peek() == '}' {
		s.i++
		return 0, true
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return 0, false
		}
		s.ws()
		if s.peek() != ':' {
			return 0, false
		}
		s.i++
		s.ws()
		var bit uint16
		if string(key) == "key_version" {
			bit = fieldKeyVersion
			raw, ok := s.scalar()
			if !ok || string(raw) == "null" {
				return 0, false
			}
			it.KeyVersion = raw
		} else {
			i := 0
			for i < len(itemStrings) && itemStrings[i].name != string(key) {
				i++
			}
			if i == len(itemStrings) {
				return 0, false
			}
			bit = 1 << i
			v, ok := s.str()
			if !ok {
				return 0, false
			}
			*itemStrings[i].dst(it) = string(v)
			if itemStrings[i].name == "plaintext" {
				it.hasPlaintext = true
			}
		}
		if present&bit != 0 {
			return 0, false
		}
		present |= bit
		if more, ok := s.sep('}'); !ok || !more {
			return present, ok
		}
	}
}

// itemsFor returns the scanned items if every field they have is one f
// knows for items (anything else: the encoding/json path, which names
// the field in its error).
func (b *scannedBatch) itemsFor(f fields) ([]batchItem, bool) {
	var allowed uint16
	for i, it := range itemStrings {
		if slices.Contains(f.item, it.name) {
			allowed |= 1 << i
		}
	}
	if slices.Contains(f.item, "key_version") {
		allowed |= fieldKeyVersion
	}
	for _, p := range b.present {
		if p&^allowed != 0 {
			return nil, false
		}
	}
	return b.items, true
}

// appendBatchEnvelope appends Vault's envelope with data
// {"batch_results": results}, byte for byte what encoding/json's Encoder
// writes for envelope (FuzzBatchEnvelope checks it). With dst nil it
// takes a buffer from envelopePool.
func appendBatchEnvelope(dst []byte, reqID, mountType string, results []itemResult) []byte {
	if dst == nil {
		n := 256
		for i := range results {
			r := &results[i]
			n += 128 + len(r.Ciphertext) + 4*len(r.sealed)/3 + len(r.Signature) + len(r.HMAC) + len(r.Error) + 4*(len(r.PublicKey)+len(r.BatchPublicKey))/3
			if r.Plaintext != nil {
				n += len(*r.Plaintext)
			}
			if r.Reference != nil {
				n += len(*r.Reference)
			}
		}
		dst = envelopePool.get(n)
	}
	dst = append(dst, `{"request_id":`...)
	dst = appendJSONString(dst, reqID)
	dst = append(dst, `,"lease_id":"","renewable":false,"lease_duration":0,"data":{"batch_results":[`...)
	for i := range results {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItemResult(dst, &results[i])
	}
	dst = append(dst, `]},"wrap_info":null,"warnings":null,"auth":null,"mount_type":`...)
	dst = appendJSONString(dst, mountType)
	return append(dst, "}\n"...)
}

func appendItemResult(dst []byte, r *itemResult) []byte {
	dst = append(dst, '{')
	first := true
	field := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `":`...)
	}
	str := func(name, v string) {
		if v != "" {
			field(name)
			dst = appendJSONString(dst, v)
		}
	}
	bin := func(name string, v []byte) {
		if len(v) != 0 {
			field(name)
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, v)
			dst = append(dst, '"')
		}
	}
	if r.sealed != nil {
		field("ciphertext")
		dst = append(dst, '"')
		dst = appendVersioned(dst, r.KeyVersion, r.sealed)
		dst = append(dst, '"')
	} else {
		str("ciphertext", r.Ciphertext)
	}
	if r.Plaintext != nil {
		field("plaintext")
		dst = appendJSONString(dst, *r.Plaintext)
	}
	str("signature", r.Signature)
	str("hmac", r.HMAC)
	if r.Valid != nil {
		field("valid")
		dst = strconv.AppendBool(dst, *r.Valid)
	}
	if r.KeyVersion != 0 {
		field("key_version")
		dst = strconv.AppendInt(dst, int64(r.KeyVersion), 10)
	}
	bin("public_key", r.PublicKey)
	bin("publickey", r.BatchPublicKey)
	if r.Reference != nil {
		field("reference")
		dst = appendJSONString(dst, *r.Reference)
	}
	str("error", r.Error)
	return append(dst, '}')
}

// appendJSONString appends s as encoding/json writes it (HTML-safe):
// printable ASCII other than " \ < > & as it is, anything else through
// encoding/json itself.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			q, _ := json.Marshal(s)
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// plainJSON: the bytes encoding/json writes as they are in a string.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
