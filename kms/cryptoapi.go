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
}

// items returns batch_input, or the single request as one item.
func (req *request) items() ([]batchItem, bool, error) {
	if raw, ok := req.body["batch_input"]; ok && string(raw) != "null" {
		var items []batchItem
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, true, badRequest("batch_input must be a list of objects")
		}
		if len(items) == 0 {
			return nil, true, badRequest("batch_input is empty")
		}
		if len(items) > maxBatch {
			return nil, true, badRequest(fmt.Sprintf("batch_input of %d items is over the limit of %d", len(items), maxBatch))
		}
		return items, true, nil
	}
	var it batchItem
	var err error
	for field, dst := range map[string]*string{"plaintext": &it.Plaintext, "ciphertext": &it.Ciphertext, "context": &it.Context,
		"associated_data": &it.AssociatedData, "input": &it.Input, "signature": &it.Signature, "hmac": &it.HMAC, "reference": &it.Reference} {
		if *dst, err = req.str(field); err != nil {
			return nil, false, err
		}
	}
	it.KeyVersion = req.body["key_version"]
	return []batchItem{it}, false, nil
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
	Reference  string  `json:"reference,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// runBatch applies fn to every item. A single request returns fn's
// result as data, or its error; a batch returns batch_results with an
// "error" per failed item, and status 400 if any failed (Vault's rule).
func runBatch(items []batchItem, batch bool, fn func(it batchItem) (itemResult, error)) (response, error) {
	if !batch {
		out, err := fn(items[0])
		if err != nil {
			return response{}, err
		}
		out.Reference = items[0].Reference
		return response{data: out}, nil
	}
	results := make([]itemResult, len(items))
	failed := false
	for i, it := range items {
		out, err := fn(it)
		if err != nil {
			failed = true
			out = itemResult{Error: publicMessage(err)}
		}
		out.Reference = it.Reference
		results[i] = out
	}
	r := response{data: map[string]any{"batch_results": results}}
	if failed {
		r.status = http.StatusBadRequest
	}
	return r, nil
}

// aeadOp runs an encrypt-family operation (encrypt, decrypt, rewrap) on
// every item, with the item's context and associated data decoded (the
// request's top-level associated_data applies to items without one).
func (s *Service) aeadOp(req *request, name string, fn func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error)) (response, error) {
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	items, batch, err := req.items()
	if err != nil {
		return response{}, err
	}
	topAD, err := req.b64("associated_data")
	if err != nil {
		return response{}, err
	}
	return runBatch(items, batch, func(it batchItem) (itemResult, error) {
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
func encryptItem(k *Key, it batchItem, pt, ctx, ad []byte) (itemResult, error) {
	n, v, err := k.itemVersion(it)
	if err != nil {
		return itemResult{}, err
	}
	c, err := k.encrypt(n, v, pt, ctx, ad)
	if err != nil {
		return itemResult{}, err
	}
	return itemResult{Ciphertext: c, KeyVersion: n}, nil
}

func (s *Service) encrypt(req *request, name string) (response, error) {
	return s.aeadOp(req, name, func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error) {
		pt, err := decodeB64(it.Plaintext, "plaintext")
		if err != nil {
			return itemResult{}, err
		}
		return encryptItem(k, it, pt, ctx, ad)
	})
}

func (s *Service) decrypt(req *request, name string) (response, error) {
	return s.aeadOp(req, name, func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error) {
		pt, _, err := k.decrypt(it.Ciphertext, ctx, ad)
		if err != nil {
			return itemResult{}, err
		}
		p := base64.StdEncoding.EncodeToString(pt)
		return itemResult{Plaintext: &p}, nil
	})
}

func (s *Service) rewrap(req *request, name string) (response, error) {
	return s.aeadOp(req, name, func(k *Key, it batchItem, ctx, ad []byte) (itemResult, error) {
		pt, _, err := k.decrypt(it.Ciphertext, ctx, ad)
		if err != nil {
			return itemResult{}, err
		}
		return encryptItem(k, it, pt, ctx, ad)
	})
}

func (s *Service) datakey(req *request, kind, name string) (response, error) {
	if kind != "plaintext" && kind != "wrapped" {
		return response{}, badRequest("datakey type must be plaintext or wrapped")
	}
	k, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	if !k.Type.encrypting() {
		return response{}, badRequest(fmt.Sprintf("key type %s does not support encryption", k.Type))
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
	c, err := k.encrypt(n, v, dk, ctx, ad)
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
	var p signParams
	if len(rest) == 2 {
		p.hashAlg = rest[1]
	}
	if h, err := req.str("hash_algorithm"); err != nil {
		return response{}, err
	} else if h != "" {
		p.hashAlg = h
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
	items, batch, err := req.items()
	if err != nil {
		return response{}, err
	}
	return runBatch(items, batch, func(it batchItem) (itemResult, error) {
		in, err := decodeB64(it.Input, "input")
		if err != nil {
			return itemResult{}, err
		}
		if verify && it.HMAC != "" {
			ok, err := k.verifyHMAC(it.HMAC, p.hashAlg, in)
			if err != nil {
				return itemResult{}, err
			}
			return itemResult{Valid: &ok}, nil
		}
		if verify {
			ok, err := k.verify(it.Signature, in, p)
			if err != nil {
				return itemResult{}, err
			}
			return itemResult{Valid: &ok}, nil
		}
		n, v, err := k.itemVersion(it)
		if err != nil {
			return itemResult{}, err
		}
		sig, err := k.sign(n, v, in, p)
		if err != nil {
			return itemResult{}, err
		}
		return itemResult{Signature: sig, KeyVersion: n}, nil
	})
}

func (s *Service) hmacOp(req *request, rest []string) (response, error) {
	k, err := s.key(rest[0])
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
	items, batch, err := req.items()
	if err != nil {
		return response{}, err
	}
	return runBatch(items, batch, func(it batchItem) (itemResult, error) {
		in, err := decodeB64(it.Input, "input")
		if err != nil {
			return itemResult{}, err
		}
		if it.HMAC != "" {
			ok, err := k.verifyHMAC(it.HMAC, alg, in)
			if err != nil {
				return itemResult{}, err
			}
			return itemResult{Valid: &ok}, nil
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
