package kms

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// allItemFieldsKnown knows every item field, so that the comparison
// below reaches the items of any scanned batch.
var allItemFieldsKnown = fields{item: []string{
	"plaintext", "ciphertext", "context", "associated_data", "input", "signature", "hmac", "key_version", "reference"}}

var scanSeeds = []string{
	`{}`, ` { } `, `{"plaintext":"aGk="}`,
	`{"batch_input":[{"plaintext":"aGk=","reference":"r1"},{"plaintext":"","key_version":2}]}`,
	`{"batch_input":[{"plaintext":"aGk=","key_version":"3"}], "type":"aes256-gcm96", "x": true}`,
	`{"batch_input":[]}`, `{"batch_input":null}`, `{"batch_input":[{}]}`, `{"batch_input":[{"plaintext":null}]}`,
	`{"batch_input":[{"plaintext":"a","plaintext":"b"}]}`, `{"a":1,"a":2}`, `{"a":01}`, `{"a":-0}`, `{"a":1.5}`, `{"a":1e3}`,
	`{"a":"\u0041"}`, `{"a":"é"}`, `{"a":{"b":1}}`, `{"a":[1]}`, `{"a":nul}`, `{"a":true}x`, `{"a":"b",}`, `[{"a":1}]`,
	`{"batch_input":[{"plaintext":"aGk="},]}`, `{"batch_input":[{"unknown":"x"}]}`, `{"batch_input":[{"key_version":-1}]}`,
	`{"batch_input":[{"context":"Yw==","associated_data":"YQ==","ciphertext":"vault:v1:x","input":"i","signature":"s","hmac":"h"}]}`,
}

// FuzzScanBody: whatever the plain-shape scanner accepts, encoding/json
// reads the same: the same fields with the same raw values, and the same
// batch items through the encoding/json path of request.items.
func FuzzScanBody(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, batch, ok := scanBody(body)
		if !ok {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("scanned %q, which encoding/json refuses: %v", body, err)
		}
		if want == nil {
			want = map[string]json.RawMessage{}
		}
		if len(fields) != len(want) {
			t.Fatalf("%q: scanned fields %v, encoding/json %v", body, fields, want)
		}
		for k, v := range want {
			if got, ok := fields[k]; !ok || !bytes.Equal(got, v) {
				t.Fatalf("%q: field %q scanned as %q, encoding/json %q", body, k, got, v)
			}
		}
		raw, has := fields["batch_input"]
		if batch == nil {
			if has && len(raw) > 0 && raw[0] == '[' {
				t.Fatalf("%q: a batch_input list the scanner accepted without reading it", body)
			}
			return
		}
		f := allItemFieldsKnown
		f.known = nil
		for k := range want {
			f.known = append(f.known, k)
		}
		slow := &request{body: want}
		wantItems, _, wantErr := slow.items(f)
		gotItems, ok := batch.itemsFor(f)
		if !ok {
			t.Fatalf("%q: scanned items with fields outside the item fields", body)
		}
		if wantErr != nil {
			t.Fatalf("%q: scanned a batch the encoding/json path refuses: %v", body, wantErr)
		}
		if !reflect.DeepEqual(gotItems, wantItems) {
			t.Fatalf("%q: scanned items\n%+v\nencoding/json\n%+v", body, gotItems, wantItems)
		}
	})
}

// TestScanBodyTakesPlainBatches: the bodies the scanner exists for (what
// Vault's clients send) are read by it, not by the fallback; and an item
// field the endpoint does not know goes to the fallback, which names it.
func TestScanBodyTakesPlainBatches(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"batch_input":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"plaintext":%q,"context":"Yw==","reference":"ref-%d"}`, base64.StdEncoding.EncodeToString(make([]byte, 128)), i)
	}
	b.WriteString("]}\n")
	_, batch, ok := scanBody([]byte(b.String()))
	if !ok || batch == nil || len(batch.items) != 1000 {
		t.Fatalf("a plain 1000-item batch was not scanned (ok %v)", ok)
	}
	if it := batch.items[999]; it.Reference != "ref-999" || it.Context != "Yw==" || !it.hasPlaintext {
		t.Fatalf("item 999: %+v", it)
	}
	if _, ok := batch.itemsFor(fields{item: []string{"plaintext", "reference"}}); ok {
		t.Fatal("items with a context were taken for an endpoint whose items have no context")
	}
	if _, ok := batch.itemsFor(fieldsEncrypt); !ok {
		t.Fatal("the encrypt endpoint's items were not taken")
	}
	// Over maxBatch items: the fallback, which refuses with the limit.
	over := `{"batch_input":[` + strings.Repeat(`{},`, maxBatch) + `{}]}`
	if _, _, ok := scanBody([]byte(over)); ok {
		t.Fatal("a batch over the limit was scanned")
	}
}

// FuzzBatchEnvelope: the hand-written batch answer is byte for byte what
// encoding/json writes for the same envelope.
func FuzzBatchEnvelope(f *testing.F) {
	f.Add("vault:v1:abc", "", "ref", "", uint8(0), 1, []byte(nil), "req-1")
	f.Add("", "pt", "", "bad <input> & \"quotes\"\n", uint8(7), 0, []byte{1, 2, 3}, "é\x00\xff")
	f.Add("sig", "", "\u2028", "", uint8(3), -5, []byte{}, "")
	f.Fuzz(func(t *testing.T, ct, pt, ref, errMsg string, flags uint8, kv int, pub []byte, reqID string) {
		valid := flags&4 != 0
		r := itemResult{Ciphertext: ct, Signature: ct + "s", HMAC: errMsg, KeyVersion: kv, Error: errMsg}
		if flags&1 != 0 {
			r.Plaintext = &pt
		}
		if flags&2 != 0 {
			r.Valid = &valid
		}
		if flags&8 != 0 {
			r.PublicKey = pub
		} else {
			r.BatchPublicKey = pub
		}
		if flags&16 == 0 {
			r.Reference = &ref
		}
		// A sealed record is written as the ciphertext string
		// formatVersioned makes of it.
		results := []itemResult{r, {}, {Ciphertext: pt, Reference: &ct}, {sealed: append([]byte{}, pub...), KeyVersion: kv, Reference: &ref}}
		for _, rs := range [][]itemResult{results, results[:1], results[3:], {}} {
			formatted := make([]itemResult, len(rs))
			for i, r := range rs {
				if r.sealed != nil {
					r.Ciphertext, r.sealed = formatVersioned(r.KeyVersion, r.sealed), nil
				}
				formatted[i] = r
			}
			var want bytes.Buffer
			json.NewEncoder(&want).Encode(envelope{RequestID: reqID, Data: map[string]any{"batch_results": formatted}, MountType: "transit"})
			got := appendBatchEnvelope(nil, reqID, "transit", rs)
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("hand-written:\n%s\nencoding/json:\n%s", got, want.Bytes())
			}
		}
	})
}

// TestSingleEncryptAllocatesLittle: the batch machinery (arena, pools)
// costs a single request nothing it does not use: a 128-byte encrypt
// allocates about 11 KB (a 64 KB arena per request slipped in once and
// halved the single-request rate).
func TestSingleEncryptAllocatesLittle(t *testing.T) {
	h, root := handlerWithKey(t)
	body := fmt.Sprintf(`{"plaintext":%q}`, base64.StdEncoding.EncodeToString(make([]byte, 128)))
	call := func() {
		req := httptest.NewRequest("POST", "/v1/transit/encrypt/b", strings.NewReader(body))
		req.Header.Set("X-Vault-Token", root)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatal(w.Code, w.Body.String())
		}
	}
	call()
	const n = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		call()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 32<<10 {
		t.Fatalf("a single encrypt allocates %d bytes, want under 32 KiB", per)
	}
}

// FuzzPlainString: what plainString takes, encoding/json decodes to the
// same string.
func FuzzPlainString(f *testing.F) {
	for _, s := range []string{`"abc"`, `""`, `"a\"b"`, `"é"`, `"x" `, `"x`, `x`, `"\u0041"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainString(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil || got != want {
			t.Fatalf("%q: plainString %q, encoding/json %q (%v)", raw, got, want, err)
		}
	})
}
