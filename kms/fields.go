package kms

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Every request field either has its effect, as Vault documents it, or
// is refused with a 400 that names it; nothing is accepted and ignored.
// Each endpoint declares the fields it implements (fields.known) and the
// ones Vault documents for it that kmsd does not implement
// (fields.unsupported): those are refused when given a value that would
// change anything (null, "", false and 0 change nothing, so they pass).
// A field that is in neither list is refused as unknown.
type fields struct {
	known       []string
	unsupported []string
	// item and itemUnsupported are the same lists for batch_input items.
	item, itemUnsupported []string
}

// The fields of each transit endpoint (Vault 1.21's transit API).
var (
	fieldsCreateKey = fields{
		known:       []string{"type", "derived", "convergent_encryption", "exportable", "key_size", "auto_rotate_period", "allow_plaintext_backup"},
		unsupported: []string{"managed_key_name", "managed_key_id", "parameter_set", "hybrid_key_type_pqc", "hybrid_key_type_ec", "context"},
	}
	fieldsConfigKey = fields{
		known: []string{"min_decryption_version", "min_encryption_version", "deletion_allowed", "exportable", "allow_plaintext_backup",
			"auto_rotate_period", "release_policy"},
	}
	fieldsRotate  = fields{unsupported: []string{"managed_key_name", "managed_key_id"}}
	fieldsEncrypt = fields{
		known: []string{"plaintext", "associated_data", "context", "key_version", "reference", "batch_input", "type",
			"convergent_encryption", "partial_failure_response_code", "padding_scheme"},
		unsupported:     []string{"nonce"},
		item:            []string{"plaintext", "associated_data", "context", "key_version", "reference"},
		itemUnsupported: []string{"nonce"},
	}
	fieldsDecrypt = fields{
		known:           []string{"ciphertext", "associated_data", "context", "reference", "batch_input", "partial_failure_response_code", "padding_scheme"},
		unsupported:     []string{"nonce"},
		item:            []string{"ciphertext", "associated_data", "context", "reference"},
		itemUnsupported: []string{"nonce"},
	}
	fieldsRewrap = fields{
		known: []string{"ciphertext", "associated_data", "context", "key_version", "reference", "batch_input",
			"encrypt_padding_scheme", "decrypt_padding_scheme"},
		unsupported:     []string{"nonce"},
		item:            []string{"ciphertext", "associated_data", "context", "key_version", "reference"},
		itemUnsupported: []string{"nonce"},
	}
	fieldsDatakey = fields{
		known:       []string{"bits", "context", "associated_data", "padding_scheme"},
		unsupported: []string{"nonce"},
	}
	fieldsHMAC = fields{
		known: []string{"input", "key_version", "algorithm", "reference", "batch_input"},
		item:  []string{"input", "reference", "key_version"},
	}
	// signature_context is Vault Enterprise's (Ed25519ctx and ML-DSA);
	// cmac and mac_length are for Enterprise's CMAC keys.
	fieldsSign = fields{
		known: []string{"input", "key_version", "hash_algorithm", "algorithm", "signature_algorithm", "marshaling_algorithm", "prehashed",
			"salt_length", "context", "reference", "batch_input"},
		unsupported:     []string{"signature_context"},
		item:            []string{"input", "context", "reference", "key_version"},
		itemUnsupported: []string{"signature_context"},
	}
	fieldsVerify = fields{
		known: []string{"input", "signature", "hmac", "hash_algorithm", "algorithm", "signature_algorithm", "marshaling_algorithm", "prehashed",
			"salt_length", "context", "reference", "batch_input"},
		unsupported:     []string{"signature_context", "cmac", "mac_length"},
		item:            []string{"input", "signature", "hmac", "context", "reference"},
		itemUnsupported: []string{"signature_context", "cmac"},
	}
	fieldsCSR     = fields{known: []string{"version", "csr"}}
	fieldsRandom  = fields{known: []string{"bytes", "format", "source"}}
	fieldsRelease = fields{known: []string{"quote", "public_key", "kind"}}
	fieldsNone    = fields{}
)

// check refuses fields the endpoint does not implement.
func (f fields) check(body map[string]json.RawMessage) error {
	return checkFields(body, f.known, f.unsupported, "")
}

func checkFields(body map[string]json.RawMessage, known, unsupported []string, where string) error {
	names := make([]string, 0, len(body))
	for n := range body {
		names = append(names, n)
	}
	sort.Strings(names) // the same error for the same body
	for _, n := range names {
		switch {
		case slices.Contains(known, n):
		case slices.Contains(unsupported, n):
			if !noEffect(body[n]) {
				return badRequest(fmt.Sprintf("%sfield %q is not supported by kmsd (it would otherwise be ignored); leave it out", where, n))
			}
		default:
			return badRequest(fmt.Sprintf("%sunknown field %q", where, n))
		}
	}
	return nil
}

// noEffect reports whether a value is one that changes nothing in Vault
// either: null, "", false, 0.
func noEffect(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "null", `""`, "false", `"false"`, "0", `"0"`:
		return true
	}
	return false
}

// parseDuration reads a duration as Vault's parseutil does: a number of
// seconds (JSON number or decimal string), or a Go duration string
// ("1h30m"), or a number of days ("7d").
func parseDuration(raw json.RawMessage, name string) (time.Duration, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	bad := badRequest(fmt.Sprintf("field %q must be a duration: seconds, or a string such as \"90s\", \"1h\", \"7d\"", name))
	str := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, false, bad
		}
		if str == "" {
			return 0, true, nil
		}
	}
	var d time.Duration
	if n, err := strconv.ParseInt(str, 10, 64); err == nil {
		if n > int64(1<<62/time.Second) {
			return 0, false, bad
		}
		d = time.Duration(n) * time.Second
	} else if days, ok := strings.CutSuffix(str, "d"); ok && raw[0] == '"' {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(1<<62/(24*time.Hour)) {
			return 0, false, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if raw[0] == '"' {
		if d, err = time.ParseDuration(str); err != nil {
			return 0, false, bad
		}
	} else {
		return 0, false, bad
	}
	if d < 0 {
		return 0, false, badRequest(fmt.Sprintf("field %q must not be negative", name))
	}
	return d, true, nil
}

// partialFailureCode reads partial_failure_response_code: the status of
// an encrypt or decrypt batch in which some items, but not all, failed.
func (req *request) partialFailureCode() (int, error) {
	n, ok, err := req.integer("partial_failure_response_code")
	if err != nil || !ok || n == 0 {
		return 0, err
	}
	if n < 200 || n > 599 || http.StatusText(n) == "" {
		return 0, badRequest(fmt.Sprintf("field \"partial_failure_response_code\": %d is not an HTTP status", n))
	}
	return n, nil
}

// paddingScheme checks an RSA padding scheme field: kmsd implements OAEP
// (Vault's default); anything else is refused.
func (req *request) paddingScheme(name string, k *Key) error {
	p, err := req.str(name)
	if err != nil || p == "" {
		return err
	}
	if !k.Type.rsa() {
		return badRequest(fmt.Sprintf("field %q applies only to RSA keys", name))
	}
	switch p {
	case "oaep":
	case "pkcs1v15":
		return badRequest(fmt.Sprintf("field %q: \"pkcs1v15\" is refused by kmsd: RSA PKCS#1 v1.5 encryption padding is open to padding-oracle attacks (Bleichenbacher), and a KMS that decrypts on request is such an oracle; use \"oaep\" (the default)", name))
	default:
		return badRequest(fmt.Sprintf("field %q: %q is not a padding scheme; kmsd supports \"oaep\"", name, p))
	}
	return nil
}
