package kms

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

func randomBytes(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// batchItem is one entry of batch_input, with Vault's field names.
type batchItem struct {
	Plaintext      string          `json:"plaintext"`
	Ciphertext     string          `json:"ciphertext"`
	Context        string          `json:"context"`
	AssociatedData string          `json:"associated_data"`
	Input          string          `json:"input"`
	Signature      string          `json:"signature"`
	HMAC           string          `json:"hmac"`
	KeyVersion     json.RawMessage `json:"key_version"`
	Reference      string          `json:"reference"`

	// hasPlaintext: the item carries a plaintext (an absent plaintext
	// is refused, an empty one is encrypted).
	hasPlaintext bool
}

// itemStrings are the string fields of an item, in a fixed order (a
// table, not a map built per item: batches have thousands of items).
var itemStrings = [...]struct {
	name string
	dst  func(*batchItem) *string
}{
	{"plaintext", func(it *batchItem) *string { return &it.Plaintext }},
	{"ciphertext", func(it *batchItem) *string { return &it.Ciphertext }},
	{"context", func(it *batchItem) *string { return &it.Context }},
	{"associated_data", func(it *batchItem) *string { return &it.AssociatedData }},
	{"input", func(it *batchItem) *string { return &it.Input }},
	{"signature", func(it *batchItem) *string { return &it.Signature }},
	{"hmac", func(it *batchItem) *string { return &it.HMAC }},
	{"reference", func(it *batchItem) *string { return &it.Reference }},
}

// items checks the request's fields against f and returns batch_input, or
// the single request as one item.
func (req *request) items(f fields) ([]batchItem, bool, error) {
	if err := f.check(req.body); err != nil {
		return nil, false, err
	}
	if raw, ok := req.body["batch_input"]; ok && string(raw) != "null" {
		if b := req.batch; b != nil && len(raw) == len(b.raw) && &raw[0] == &b.raw[0] {
			if items, ok := b.itemsFor(f); ok {
				return items, true, nil
			}
		}
		var objs []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &objs); err != nil {
			return nil, true, badRequest("batch_input must be a list of objects")
		}
		if len(objs) == 0 {
			return nil, true, badRequest("batch_input is empty")
		}
		if len(objs) > maxBatch {
			return nil, true, badRequest(fmt.Sprintf("batch_input of %d items is over the limit of %d", len(objs), maxBatch))
		}
		items := make([]batchItem, len(objs))
		for i, o := range objs {
			if err := checkFields(o, f.item, f.itemUnsupported, fmt.Sprintf("batch_input[%d]: ", i)); err != nil {
				return nil, true, err
			}
			if err := itemFrom(o, &items[i]); err != nil {
				return nil, true, badRequest(fmt.Sprintf("batch_input[%d]: %s", i, publicMessage(err)))
			}
		}
		return items, true, nil
	}
	var it batchItem
	if err := itemFrom(req.body, &it); err != nil {
		return nil, false, err
	}
	return []batchItem{it}, false, nil
}

// itemFrom reads the item fields of o (the request body or one
// batch_input object).
func itemFrom(o map[string]json.RawMessage, it *batchItem) error {
	r := request{body: o}
	for _, f := range itemStrings {
		if _, ok := o[f.name]; !ok {
			continue
		}
		var err error
		if *f.dst(it), err = r.str(f.name); err != nil {
			return err
		}
	}
	if raw, ok := o["plaintext"]; ok && string(raw) != "null" {
		it.hasPlaintext = true
	}
	it.KeyVersion = o["key_version"]
	return nil
}

// itemVersion picks the version an item asks for (key_version, 0 or
// absent: the latest), within min_encryption_version. A single request
// and a batch item go through the same parser.
func (k *Key) itemVersion(it batchItem) (int, *version, error) {
	asked, err := keyVersion(it.KeyVersion)
	if err != nil {
		return 0, nil, err
	}
	return k.versionFor(asked)
}

// keyVersion parses key_version: absent or 0 is the latest version.
func keyVersion(raw json.RawMessage) (int, error) {
	n, _, err := parseInt(raw, "key_version")
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, badRequest("field \"key_version\" must be 0 (the latest version) or a version number, not negative")
	}
	return n, nil
}

func optB64(s, field string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return decodeB64(s, field)
}

// itemResult is one operation's result, in Vault's field names.
type itemResult struct {
	Ciphertext string  `json:"ciphertext,omitempty"`
	Plaintext  *string `json:"plaintext,omitempty"`
	Signature  string  `json:"signature,omitempty"`
	HMAC       string  `json:"hmac,omitempty"`
	Valid      *bool   `json:"valid,omitempty"`
	KeyVersion int     `json:"key_version,omitempty"`
	// PublicKey is the public key a derived ed25519 key used to sign,
	// named "public_key" in a single answer and "publickey" in a batch
	// result (Vault's names).
	PublicKey      []byte `json:"public_key,omitempty"`
	BatchPublicKey []byte `json:"publickey,omitempty"`
	// Reference is echoed in every batch result (Vault's rule), and
	// absent from a single answer.
	Reference *string `json:"reference,omitempty"`
	Error     string  `json:"error,omitempty"`

	// sealed, when set, is the ciphertext's record: the answer's
	// "ciphertext" is "vault:v<KeyVersion>:" and its base64. A batch's
	// encoder writes it straight into the answer; runBatch formats it
	// into Ciphertext for a single answer.
	sealed []byte
}

// batchMode says how a batch with failed items answers.
type batchMode struct {
	// strict: 400 if any item failed (encrypt, decrypt), or
	// partialCode when some, not all, failed and it is set. Otherwise
	// (rewrap, sign, verify, hmac) the answer is 200 with the errors in
	// the items, as Vault does.
	strict      bool
	partialCode int
	// failed is a failed item's result before its error is set: Vault
	// shows "plaintext": "" on a failed decrypt item, "valid": false on
	// a failed verify item.
	failed func() itemResult
}

// runBatch applies fn to every item. A single request returns fn's
// result as data, or its error; a batch returns batch_results with an
// "error" per failed item.
func runBatch(items []batchItem, batch bool, mode batchMode, fn func(it batchItem) (itemResult, error)) (response, error) {
	if !batch {
		out, err := fn(items[0])
		if err != nil {
			return response{}, err
		}
		if out.sealed != nil {
			out.Ciphertext, out.sealed = formatVersioned(out.KeyVersion, out.sealed), nil
		}
		return response{data: out}, nil
	}
	results := resultPool.get(len(items))[:len(items)]
	failed := 0
	for i, it := range items {
		out, err := fn(it)
		if err != nil {
			if statusOf(err) >= 500 {
				return response{}, err
			}
			failed++
			out = itemResult{}
			if mode.failed != nil {
				out = mode.failed()
			}
			out.Error = publicMessage(err)
		}
		out.Reference = &items[i].Reference
		out.PublicKey, out.BatchPublicKey = nil, out.PublicKey
		results[i] = out
	}
	r := response{data: map[string]any{"batch_results": results}, batch: results}
	if failed > 0 && mode.strict {
		r.status = http.StatusBadRequest
		if failed < len(items) && mode.partialCode != 0 {
			r.status = mode.partialCode
		}
	}
	return r, nil
}

// aeadOp runs an encrypt-family operation (encrypt, decrypt, rewrap) on
// every item, with the item's context and associated data decoded (the
// request's top-level associated_data applies to items without one).
func (s *Service) aeadOp(req *request, k *Key, f fields, mode batchMode, fn func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error)) (response, error) {
	items, batch, err := req.items(f)
	if err != nil {
		return response{}, err
	}
	if mode.strict {
		if mode.partialCode, err = req.partialFailureCode(); err != nil {
			return response{}, err
		}
	}
	for _, name := range []string{"padding_scheme", "encrypt_padding_scheme", "decrypt_padding_scheme"} {
		if err := req.paddingScheme(name, k); err != nil {
			return response{}, err
		}
	}
	topAD, err := req.b64("associated_data")
	if err != nil {
		return response{}, err
	}
	return runBatch(items, batch, mode, func(it batchItem) (itemResult, error) {
		ctx, err := optB64(it.Context, "context")
		if err != nil {
			return itemResult{}, err
		}
		ad, err := optB64(it.AssociatedData, "associated_data")
		if err != nil {
			return itemResult{}, err
		}
		if ad == nil {
			ad = topAD
		}
		return fn(k, it, ctx, ad)
	})
}

// encryptItem encrypts pt under the item's key_version (0: latest).
func encryptItem(sc *scratch, k *Key, it batchItem, pt, ctx, ad []byte) (itemResult, error) {
	n, v, err := k.itemVersion(it)
	if err != nil {
		return itemResult{}, err
	}
	rec, err := k.seal(sc, v, pt, ctx, ad)
	if err != nil {
		return itemResult{}, err
	}
	return itemResult{sealed: rec, KeyVersion: n}, nil
}

func (s *Service) encrypt(req *request, name string) (response, error) {
	k, err := s.key(name)
	if isKeyNotFound(err) && req.mayCreate {
		k, err = s.upsertForEncrypt(req, name)
	}
	if err != nil {
		return response{}, err
	}
	sc := new(scratch)
	return s.aeadOp(req, k, fieldsEncrypt, batchMode{strict: true}, func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error) {
		if !it.hasPlaintext {
			return itemResult{}, badRequest("missing plaintext to encrypt")
		}
		pt, err := sc.decode(it.Plaintext, "plaintext")
		if err != nil {
			return itemResult{}, err
		}
		return encryptItem(sc, k, it, pt, ctx, ad)
	})
}

// upsertForEncrypt creates the missing key of an encrypt request, as
// Vault does: of the request's type (default aes256-gcm96, which must
// support encryption), derived if the request carries a context,
// convergent if it asks for convergent_encryption.
func (s *Service) upsertForEncrypt(req *request, name string) (*Key, error) {
	items, _, err := req.items(fieldsEncrypt)
	if err != nil {
		return nil, err
	}
	typ, err := req.str("type")
	if err != nil {
		return nil, err
	}
	if typ != "" && KeyType(typ).Valid() && !KeyType(typ).encrypting() {
		return nil, badRequest(fmt.Sprintf("field \"type\": key type %s does not support encryption, so encrypt cannot create it", typ))
	}
	body := map[string]json.RawMessage{}
	for _, f := range []string{"type", "convergent_encryption"} {
		if raw, ok := req.body[f]; ok {
			body[f] = raw
		}
	}
	for _, it := range items {
		if it.Context != "" {
			body["derived"] = json.RawMessage("true")
		}
	}
	k, _, err := s.newKey(&request{body: body}, name)
	return k, err
}

func (s *Service) decrypt(req *request, name string) (response, error) {
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	failed := func() itemResult { empty := ""; return itemResult{Plaintext: &empty} }
	return s.aeadOp(req, k, fieldsDecrypt, batchMode{strict: true, failed: failed}, func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error) {
		pt, _, err := k.decrypt(it.Ciphertext, ctx, ad)
		if err != nil {
			return itemResult{}, err
		}
		p := base64.StdEncoding.EncodeToString(pt)
		return itemResult{Plaintext: &p}, nil
	})
}

func (s *Service) rewrap(req *request, name string) (response, error) {
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	sc := new(scratch)
	return s.aeadOp(req, k, fieldsRewrap, batchMode{}, func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error) {
		pt, _, err := k.decrypt(it.Ciphertext, ctx, ad)
		if err != nil {
			return itemResult{}, err
		}
		return encryptItem(sc, k, it, pt, ctx, ad)
	})
}

func (s *Service) datakey(req *request, kind, name string) (response, error) {
	if kind != "plaintext" && kind != "wrapped" {
		return response{}, badRequest("datakey type must be plaintext or wrapped")
	}
	if err := fieldsDatakey.check(req.body); err != nil {
		return response{}, err
	}
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	if !k.Type.encrypting() {
		return response{}, badRequest(fmt.Sprintf("key type %s does not support encryption", k.Type))
	}
	if err := req.paddingScheme("padding_scheme", k); err != nil {
		return response{}, err
	}
	bits, ok, err := req.integer("bits")
	if err != nil {
		return response{}, err
	}
	if !ok {
		bits = 256
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return response{}, badRequest("bits must be 128, 256 or 512")
	}
	ctx, err := req.b64("context")
	if err != nil {
		return response{}, err
	}
	ad, err := req.b64("associated_data")
	if err != nil {
		return response{}, err
	}
	dk, err := randomBytes(s.cfg.Rand, bits/8)
	if err != nil {
		return response{}, err
	}
	n, v, err := k.versionFor(0)
	if err != nil {
		return response{}, err
	}
	c, err := k.encrypt(nil, n, v, dk, ctx, ad)
	if err != nil {
		return response{}, err
	}
	out := map[string]any{"ciphertext": c, "key_version": n}
	if kind == "plaintext" {
		out["plaintext"] = base64.StdEncoding.EncodeToString(dk)
	}
	return response{data: out}, nil
}

func (s *Service) signOrVerify(req *request, rest []string, verify bool) (response, error) {
	k, err := s.key(rest[0])
	if err != nil {
		return response{}, err
	}
	f := fieldsSign
	if verify {
		f = fieldsVerify
	}
	items, batch, err := req.items(f)
	if err != nil {
		return response{}, err
	}
	var p signParams
	// The hash algorithm: in the path, hash_algorithm or its older name
	// algorithm; given more than once, they must agree.
	for _, from := range []string{"path", "hash_algorithm", "algorithm"} {
		var h string
		if from == "path" {
			if len(rest) == 2 {
				h = rest[1]
			}
		} else if h, err = req.str(from); err != nil {
			return response{}, err
		}
		if h != "" && p.hashAlg != "" && h != p.hashAlg {
			return response{}, badRequest(fmt.Sprintf("field %q is %q but the hash algorithm is already %q: give it once", from, h, p.hashAlg))
		}
		if h != "" {
			p.hashAlg = h
		}
	}
	if p.saltLength, p.saltGiven, err = parseSaltLength(req.body["salt_length"]); err != nil {
		return response{}, err
	}
	if p.sigAlg, err = req.str("signature_algorithm"); err != nil {
		return response{}, err
	}
	if p.marshaling, err = req.str("marshaling_algorithm"); err != nil {
		return response{}, err
	}
	if p.prehashed, _, err = req.boolean("prehashed"); err != nil {
		return response{}, err
	}
	if err := p.check(k.Type); err != nil {
		return response{}, err
	}
	mode := batchMode{}
	if verify {
		mode.failed = func() itemResult { no := false; return itemResult{Valid: &no} }
	}
	return runBatch(items, batch, mode, func(it batchItem) (itemResult, error) {
		in, err := decodeB64(it.Input, "input")
		if err != nil {
			return itemResult{}, err
		}
		ctx, err := optB64(it.Context, "context")
		if err != nil {
			return itemResult{}, err
		}
		if verify && it.HMAC != "" {
			if len(ctx) != 0 {
				return itemResult{}, badRequest(`field "context" does not apply to an HMAC`)
			}
			ok, err := k.verifyHMAC(it.HMAC, p.hashAlg, in)
			if err != nil {
				return itemResult{}, err
			}
			return itemResult{Valid: &ok}, nil
		}
		if verify {
			if it.Signature == "" {
				return itemResult{}, badRequest("missing signature to verify")
			}
			ok, err := k.verify(it.Signature, in, ctx, p)
			if err != nil {
				return itemResult{}, err
			}
			return itemResult{Valid: &ok}, nil
		}
		n, v, err := k.itemVersion(it)
		if err != nil {
			return itemResult{}, err
		}
		sig, pub, err := k.sign(n, v, in, ctx, p)
		if err != nil {
			return itemResult{}, err
		}
		return itemResult{Signature: sig, KeyVersion: n, PublicKey: pub}, nil
	})
}

func (s *Service) hmacOp(req *request, rest []string) (response, error) {
	k, err := s.key(rest[0])
	if err != nil {
		return response{}, err
	}
	items, batch, err := req.items(fieldsHMAC)
	if err != nil {
		return response{}, err
	}
	alg := ""
	if len(rest) == 2 {
		alg = rest[1]
	}
	if a, err := req.str("algorithm"); err != nil {
		return response{}, err
	} else if a != "" {
		alg = a
	}
	return runBatch(items, batch, batchMode{}, func(it batchItem) (itemResult, error) {
		in, err := decodeB64(it.Input, "input")
		if err != nil {
			return itemResult{}, err
		}
		n, v, err := k.itemVersion(it)
		if err != nil {
			return itemResult{}, err
		}
		mac, err := k.hmac(n, v, alg, in)
		if err != nil {
			return itemResult{}, err
		}
		return itemResult{HMAC: mac, KeyVersion: n}, nil
	})
}
