package kms

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryTransitFieldHasItsEffectOrIsRefused walks the request fields
// Vault's transit documentation lists for each endpoint: each one either
// does what Vault documents (the check says what a user would see) or is
// refused with a 400 that names it. Unknown fields are refused too.
func TestEveryTransitFieldHasItsEffectOrIsRefused(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/a", nil)
	ctA1 := mustWrite(t, c, "transit/encrypt/a", map[string]any{"plaintext": b64("v1")}).Data["ciphertext"].(string)
	mustWrite(t, c, "transit/keys/a/rotate", nil) // a has versions 1 and 2
	mustWrite(t, c, "transit/keys/d", map[string]any{"derived": true})
	mustWrite(t, c, "transit/keys/r", map[string]any{"type": "rsa-2048"})
	mustWrite(t, c, "transit/keys/e", map[string]any{"type": "ecdsa-p256"})
	mustWrite(t, c, "transit/keys/ed", map[string]any{"type": "ed25519"})
	mustWrite(t, c, "transit/keys/edd", map[string]any{"type": "ed25519", "derived": true})
	mustWrite(t, c, "transit/keys/h", map[string]any{"type": "hmac"})
	ctAD := mustWrite(t, c, "transit/encrypt/a", map[string]any{"plaintext": b64("x"), "associated_data": b64("ad")}).Data["ciphertext"].(string)
	ctD := mustWrite(t, c, "transit/encrypt/d", map[string]any{"plaintext": b64("x"), "context": b64("ctx")}).Data["ciphertext"].(string)
	ctR := mustWrite(t, c, "transit/encrypt/r", map[string]any{"plaintext": b64("x")}).Data["ciphertext"].(string)
	sigE := mustWrite(t, c, "transit/sign/e", map[string]any{"input": b64("m")}).Data["signature"].(string)
	sigR := mustWrite(t, c, "transit/sign/r", map[string]any{"input": b64("m"), "signature_algorithm": "pkcs1v15"}).Data["signature"].(string)
	macH := mustWrite(t, c, "transit/hmac/h", map[string]any{"input": b64("m")}).Data["hmac"].(string)

	type out = map[string]any
	data := func(o out) out { d, _ := o["data"].(map[string]any); return d }
	str := func(o out, f string) string { s, _ := data(o)[f].(string); return s }
	results := func(o out) []any { r, _ := data(o)["batch_results"].([]any); return r }
	item := func(o out, i int) map[string]any {
		r := results(o)
		if i >= len(r) {
			return nil
		}
		m, _ := r[i].(map[string]any)
		return m
	}
	read := func(name string) out { _, o := k.raw(t, "GET", "/v1/transit/keys/"+name, k.root, ""); return data(o) }
	post := func(path, body string) (int, out) { return k.raw(t, "POST", "/v1/"+path, k.root, body) }

	ok := 200
	for _, tc := range []struct {
		path, field, body string
		status            int              // 0: 400 naming the field
		check             func(out) string // what a user notices; "" when right
	}{
		// keys/:name
		{"transit/keys/c-type", "type", `{"type":"ed25519"}`, ok, func(o out) string {
			return want(read("c-type")["type"], "ed25519")
		}},
		{"transit/keys/c-derived", "derived", `{"derived":true}`, ok, func(o out) string {
			return want(read("c-derived")["derived"], true)
		}},
		{"transit/keys/c-conv", "convergent_encryption", `{"derived":true,"convergent_encryption":true}`, ok, func(o out) string {
			return want(read("c-conv")["convergent_encryption"], true)
		}},
		{"transit/keys/c-conv2", "convergent_encryption", `{"convergent_encryption":true}`, 400, nil}, // needs derived
		{"transit/keys/c-exp", "exportable", `{"exportable":true}`, 0, nil},
		{"transit/keys/c-apb", "allow_plaintext_backup", `{"allow_plaintext_backup":true}`, 0, nil},
		{"transit/keys/c-size", "key_size", `{"type":"hmac","key_size":64}`, ok, func(o out) string {
			return want(read("c-size")["key_size"], 64.0)
		}},
		{"transit/keys/c-rot", "auto_rotate_period", `{"auto_rotate_period":"2h"}`, ok, func(o out) string {
			return want(read("c-rot")["auto_rotate_period"], 7200.0)
		}},
		{"transit/keys/c-rot2", "auto_rotate_period", `{"auto_rotate_period":"10m"}`, 0, nil},
		{"transit/keys/c-mk", "managed_key_name", `{"managed_key_name":"hsm"}`, 0, nil},
		{"transit/keys/c-mk", "managed_key_id", `{"managed_key_id":"x"}`, 0, nil},
		{"transit/keys/c-ps", "parameter_set", `{"parameter_set":"65"}`, 0, nil},
		{"transit/keys/c-hy", "hybrid_key_type_pqc", `{"hybrid_key_type_pqc":"ml-dsa"}`, 0, nil},
		{"transit/keys/c-hy", "hybrid_key_type_ec", `{"hybrid_key_type_ec":"ecdsa-p256"}`, 0, nil},
		{"transit/keys/c-unk", "bogus", `{"bogus":1}`, 0, nil},

		// keys/:name/config
		{"transit/keys/a/config", "min_decryption_version", `{"min_decryption_version":1}`, ok, func(o out) string {
			return want(data(o)["min_decryption_version"], 1.0)
		}},
		{"transit/keys/a/config", "min_encryption_version", `{"min_encryption_version":2}`, ok, func(o out) string {
			s, o2 := post("transit/encrypt/a", `{"plaintext":"","key_version":1}`)
			if s != 400 || !strings.Contains(errorsOf(o2), "min_encryption_version") {
				return fmt.Sprintf("encrypt with v1 after min_encryption_version=2: %d %v", s, o2)
			}
			post("transit/keys/a/config", `{"min_encryption_version":0}`)
			return ""
		}},
		{"transit/keys/h/config", "deletion_allowed", `{"deletion_allowed":true}`, ok, func(o out) string {
			return want(read("h")["deletion_allowed"], true)
		}},
		{"transit/keys/h/config", "auto_rotate_period", `{"auto_rotate_period":3600}`, ok, func(o out) string {
			return want(read("h")["auto_rotate_period"], 3600.0)
		}},
		{"transit/keys/a/config", "release_policy", `{"release_policy":{"mrenclave":["` + strings.Repeat("ab", 32) + `"]}}`, ok, func(o out) string {
			if read("a")["release_policy"] == nil {
				return "release_policy not stored"
			}
			return ""
		}},
		{"transit/keys/a/config", "exportable", `{"exportable":true}`, 0, nil},
		{"transit/keys/a/config", "allow_plaintext_backup", `{"allow_plaintext_backup":"true"}`, 0, nil},
		{"transit/keys/a/config", "bogus", `{"bogus":true}`, 0, nil},

		// keys/:name/rotate
		{"transit/keys/ed/rotate", "managed_key_name", `{"managed_key_name":"hsm"}`, 0, nil},
		{"transit/keys/ed/rotate", "managed_key_id", `{"managed_key_id":"x"}`, 0, nil},
		{"transit/keys/ed/rotate", "bogus", `{"bogus":1}`, 0, nil},

		// encrypt
		{"transit/encrypt/a", "plaintext", `{"plaintext":""}`, ok, func(o out) string { return prefix(str(o, "ciphertext"), "vault:v2:") }},
		{"transit/encrypt/a", "plaintext", `{}`, 400, nil}, // missing plaintext
		{"transit/encrypt/a", "associated_data", `{"plaintext":"eA==","associated_data":"YWQ="}`, ok, func(o out) string {
			s, _ := post("transit/decrypt/a", `{"ciphertext":"`+str(o, "ciphertext")+`"}`)
			return want(s, 400) // without the associated data it does not decrypt
		}},
		{"transit/encrypt/d", "context", `{"plaintext":"eA==","context":"Yw=="}`, ok, func(o out) string {
			s, _ := post("transit/decrypt/d", `{"ciphertext":"`+str(o, "ciphertext")+`","context":"ZA=="}`)
			return want(s, 400)
		}},
		{"transit/encrypt/a", "context", `{"plaintext":"eA==","context":"Yw=="}`, 0, nil}, // not derived
		{"transit/encrypt/a", "key_version", `{"plaintext":"eA==","key_version":1}`, ok, func(o out) string { return prefix(str(o, "ciphertext"), "vault:v1:") }},
		{"transit/encrypt/a", "reference", `{"batch_input":[{"plaintext":"eA==","reference":"r1"}]}`, ok, func(o out) string { return want(item(o, 0)["reference"], "r1") }},
		{"transit/encrypt/a", "batch_input", `{"batch_input":[{"plaintext":"eA=="},{"plaintext":"eQ=="}]}`, ok, func(o out) string { return want(len(results(o)), 2) }},
		{"transit/encrypt/a", "partial_failure_response_code", `{"partial_failure_response_code":207,"batch_input":[{"plaintext":"eA=="},{"plaintext":"%"}]}`, 207, func(o out) string {
			return want(item(o, 1)["error"] != nil, true)
		}},
		{"transit/encrypt/r", "padding_scheme", `{"plaintext":"eA==","padding_scheme":"oaep"}`, ok, func(o out) string { return prefix(str(o, "ciphertext"), "vault:v1:") }},
		{"transit/encrypt/r", "padding_scheme", `{"plaintext":"eA==","padding_scheme":"pkcs1v15"}`, 0, nil},
		{"transit/encrypt/a", "nonce", `{"plaintext":"eA==","nonce":"AAAAAAAAAAAAAAAA"}`, 0, nil},
		{"transit/encrypt/a", "nonce", `{"batch_input":[{"plaintext":"eA==","nonce":"AAAAAAAAAAAAAAAA"}]}`, 0, nil},
		{"transit/encrypt/a", "bogus", `{"plaintext":"eA==","bogus":1}`, 0, nil},
		{"transit/encrypt/a", "bogus", `{"batch_input":[{"plaintext":"eA==","bogus":1}]}`, 0, nil},

		// decrypt
		{"transit/decrypt/a", "ciphertext", `{"ciphertext":"` + ctA1 + `"}`, ok, func(o out) string { return want(str(o, "plaintext"), b64("v1")) }},
		{"transit/decrypt/a", "associated_data", `{"ciphertext":"` + ctAD + `","associated_data":"YWQ="}`, ok, func(o out) string { return want(str(o, "plaintext"), b64("x")) }},
		{"transit/decrypt/d", "context", `{"ciphertext":"` + ctD + `","context":"Y3R4"}`, ok, func(o out) string { return want(str(o, "plaintext"), b64("x")) }},
		{"transit/decrypt/a", "reference", `{"batch_input":[{"ciphertext":"` + ctA1 + `","reference":"r2"}]}`, ok, func(o out) string { return want(item(o, 0)["reference"], "r2") }},
		{"transit/decrypt/a", "batch_input", `{"batch_input":[{"ciphertext":"` + ctA1 + `"}]}`, ok, func(o out) string { return want(item(o, 0)["plaintext"], b64("v1")) }},
		{"transit/decrypt/a", "partial_failure_response_code", `{"partial_failure_response_code":206,"batch_input":[{"ciphertext":"` + ctA1 + `"},{"ciphertext":"x"}]}`, 206, nil},
		{"transit/decrypt/r", "padding_scheme", `{"ciphertext":"` + ctR + `","padding_scheme":"oaep"}`, ok, func(o out) string { return want(str(o, "plaintext"), b64("x")) }},
		{"transit/decrypt/r", "padding_scheme", `{"ciphertext":"` + ctR + `","padding_scheme":"pkcs1v15"}`, 0, nil},
		{"transit/decrypt/a", "nonce", `{"ciphertext":"` + ctA1 + `","nonce":"AAAAAAAAAAAAAAAA"}`, 0, nil},
		{"transit/decrypt/a", "bogus", `{"ciphertext":"` + ctA1 + `","bogus":"x"}`, 0, nil},

		// rewrap
		{"transit/rewrap/a", "ciphertext", `{"ciphertext":"` + ctA1 + `"}`, ok, func(o out) string { return prefix(str(o, "ciphertext"), "vault:v2:") }},
		{"transit/rewrap/a", "key_version", `{"ciphertext":"` + ctA1 + `","key_version":1}`, ok, func(o out) string { return prefix(str(o, "ciphertext"), "vault:v1:") }},
		{"transit/rewrap/d", "context", `{"ciphertext":"` + ctD + `","context":"Y3R4"}`, ok, func(o out) string { return prefix(str(o, "ciphertext"), "vault:v1:") }},
		{"transit/rewrap/a", "reference", `{"batch_input":[{"ciphertext":"` + ctA1 + `","reference":"r3"}]}`, ok, func(o out) string { return want(item(o, 0)["reference"], "r3") }},
		{"transit/rewrap/a", "batch_input", `{"batch_input":[{"ciphertext":"` + ctA1 + `"},{"ciphertext":"bad"}]}`, ok, func(o out) string {
			return want(item(o, 1)["error"] != nil && item(o, 0)["ciphertext"] != nil, true) // 200 with a per-item error, as Vault
		}},
		{"transit/rewrap/r", "encrypt_padding_scheme", `{"ciphertext":"` + ctR + `","encrypt_padding_scheme":"pkcs1v15"}`, 0, nil},
		{"transit/rewrap/r", "decrypt_padding_scheme", `{"ciphertext":"` + ctR + `","decrypt_padding_scheme":"pkcs1v15"}`, 0, nil},
		{"transit/rewrap/a", "nonce", `{"ciphertext":"` + ctA1 + `","nonce":"AAAAAAAAAAAAAAAA"}`, 0, nil},
		{"transit/rewrap/a", "bogus", `{"ciphertext":"` + ctA1 + `","bogus":1}`, 0, nil},

		// datakey
		{"transit/datakey/plaintext/a", "bits", `{"bits":128}`, ok, func(o out) string {
			b, _ := base64.StdEncoding.DecodeString(str(o, "plaintext"))
			return want(len(b), 16)
		}},
		{"transit/datakey/wrapped/d", "context", `{"context":"Y3R4"}`, ok, func(o out) string {
			s, _ := post("transit/decrypt/d", `{"ciphertext":"`+str(o, "ciphertext")+`","context":"Y3R4"}`)
			return want(s, 200)
		}},
		{"transit/datakey/wrapped/a", "associated_data", `{"associated_data":"YWQ="}`, ok, func(o out) string {
			s, _ := post("transit/decrypt/a", `{"ciphertext":"`+str(o, "ciphertext")+`"}`)
			return want(s, 400)
		}},
		{"transit/datakey/wrapped/r", "padding_scheme", `{"padding_scheme":"pkcs1v15"}`, 0, nil},
		{"transit/datakey/wrapped/a", "nonce", `{"nonce":"AAAAAAAAAAAAAAAA"}`, 0, nil},
		{"transit/datakey/wrapped/a", "bogus", `{"bogus":1}`, 0, nil},

		// hmac
		{"transit/hmac/h", "input", `{"input":"bQ=="}`, ok, func(o out) string { return want(str(o, "hmac"), macH) }},
		{"transit/hmac/h", "algorithm", `{"input":"bQ==","algorithm":"sha2-512"}`, ok, func(o out) string {
			_, b, _ := parseVersioned(str(o, "hmac"), "hmac")
			return want(len(b), 64)
		}},
		{"transit/hmac/a", "key_version", `{"input":"bQ==","key_version":1}`, ok, func(o out) string { return prefix(str(o, "hmac"), "vault:v1:") }},
		{"transit/hmac/h", "reference", `{"batch_input":[{"input":"bQ==","reference":"r4"}]}`, ok, func(o out) string { return want(item(o, 0)["reference"], "r4") }},
		{"transit/hmac/h", "batch_input", `{"batch_input":[{"input":"bQ=="},{"input":"%"}]}`, ok, func(o out) string {
			return want(item(o, 0)["hmac"] == macH && item(o, 1)["error"] != nil, true)
		}},
		{"transit/hmac/h", "hmac", `{"input":"bQ==","hmac":"` + macH + `"}`, 0, nil}, // verification is at verify/
		{"transit/hmac/h", "bogus", `{"input":"bQ==","bogus":1}`, 0, nil},

		// sign
		{"transit/sign/e", "input", `{"input":"bQ=="}`, ok, func(o out) string { return prefix(str(o, "signature"), "vault:v1:") }},
		{"transit/sign/e", "hash_algorithm", `{"input":"bQ==","hash_algorithm":"sha2-512"}`, ok, func(o out) string {
			_, v := post("transit/verify/e", `{"input":"bQ==","signature":"`+str(o, "signature")+`"}`)
			return want(data(v)["valid"], false) // signed over SHA-512, checked over SHA-256
		}},
		{"transit/sign/r", "signature_algorithm", `{"input":"bQ==","signature_algorithm":"pkcs1v15"}`, ok, func(o out) string {
			_, v := post("transit/verify/r", `{"input":"bQ==","signature":"`+str(o, "signature")+`"}`)
			return want(data(v)["valid"], false) // not a PSS signature
		}},
		{"transit/sign/e", "signature_algorithm", `{"input":"bQ==","signature_algorithm":"pss"}`, 0, nil}, // not RSA
		{"transit/sign/e", "marshaling_algorithm", `{"input":"bQ==","marshaling_algorithm":"jws"}`, ok, func(o out) string {
			_, b, err := parseVersionedEnc(str(o, "signature"), "signature", base64.RawURLEncoding)
			if err != nil {
				return err.Error()
			}
			return want(len(b), 64)
		}},
		{"transit/sign/e", "prehashed", `{"input":"` + b64(strings.Repeat("x", 32)) + `","prehashed":true}`, ok, func(o out) string {
			_, v := post("transit/verify/e", `{"input":"`+b64(strings.Repeat("x", 32))+`","signature":"`+str(o, "signature")+`"}`)
			return want(data(v)["valid"], false) // without prehashed the input is hashed again
		}},
		{"transit/sign/ed", "prehashed", `{"input":"bQ==","prehashed":true}`, 0, nil},
		{"transit/sign/a", "key_version", `{"input":"bQ==","key_version":1}`, 400, nil}, // AES cannot sign
		{"transit/sign/e", "key_version", `{"input":"bQ==","key_version":1}`, ok, func(o out) string { return prefix(str(o, "signature"), "vault:v1:") }},
		{"transit/sign/e", "reference", `{"batch_input":[{"input":"bQ==","reference":"r5"}]}`, ok, func(o out) string { return want(item(o, 0)["reference"], "r5") }},
		{"transit/sign/e", "batch_input", `{"batch_input":[{"input":"bQ=="},{"input":"%"}]}`, ok, func(o out) string { return want(item(o, 1)["error"] != nil, true) }},
		{"transit/sign/e", "context", `{"input":"bQ==","context":"Yw=="}`, 0, nil}, // not derived
		{"transit/sign/edd", "context", `{"input":"bQ==","context":"Yw=="}`, ok, func(o out) string {
			_, v := post("transit/verify/edd", `{"input":"bQ==","context":"Yw==","signature":"`+str(o, "signature")+`"}`)
			_, w := post("transit/verify/edd", `{"input":"bQ==","context":"eg==","signature":"`+str(o, "signature")+`"}`)
			return want(fmt.Sprint(data(v)["valid"], data(w)["valid"], len(str(o, "public_key")) > 0), "true false true")
		}},
		{"transit/sign/edd", "context", `{"batch_input":[{"input":"bQ==","context":"Yw=="},{"input":"bQ=="}]}`, ok, func(o out) string {
			return want(item(o, 0)["publickey"] != nil && item(o, 1)["error"] != nil, true) // the second item has no context
		}},
		{"transit/sign/r", "salt_length", `{"input":"bQ==","salt_length":"hash"}`, ok, func(o out) string {
			_, v := post("transit/verify/r", `{"input":"bQ==","salt_length":"hash","signature":"`+str(o, "signature")+`"}`)
			_, w := post("transit/verify/r", `{"input":"bQ==","salt_length":20,"signature":"`+str(o, "signature")+`"}`)
			return want(fmt.Sprint(data(v)["valid"], data(w)["valid"]), "true false") // 32 bytes of salt, not 20
		}},
		{"transit/sign/r", "salt_length", `{"input":"bQ==","salt_length":"20"}`, ok, func(o out) string {
			_, v := post("transit/verify/r", `{"input":"bQ==","salt_length":20,"signature":"`+str(o, "signature")+`"}`)
			_, w := post("transit/verify/r", `{"input":"bQ==","signature":"`+str(o, "signature")+`"}`) // auto: detected
			return want(fmt.Sprint(data(v)["valid"], data(w)["valid"]), "true true")
		}},
		{"transit/sign/r", "salt_length", `{"input":"bQ==","salt_length":1000}`, 0, nil},                                    // over the key's room
		{"transit/sign/r", "salt_length", `{"input":"bQ==","salt_length":"long"}`, 0, nil},                                  // not a length
		{"transit/sign/r", "salt_length", `{"input":"bQ==","salt_length":"hash","signature_algorithm":"pkcs1v15"}`, 0, nil}, // no salt in PKCS#1 v1.5
		{"transit/sign/e", "salt_length", `{"input":"bQ==","salt_length":"hash"}`, 0, nil},                                  // not RSA
		{"transit/sign/e", "salt_length", `{"input":"bQ==","salt_length":"auto"}`, ok, nil},                                 // the default: no effect
		{"transit/sign/e", "algorithm", `{"input":"bQ==","algorithm":"sha2-512"}`, ok, func(o out) string {
			_, v := post("transit/verify/e", `{"input":"bQ==","hash_algorithm":"sha2-512","signature":"`+str(o, "signature")+`"}`)
			return want(data(v)["valid"], true)
		}},
		{"transit/sign/e/sha2-256", "hash_algorithm", `{"input":"bQ==","hash_algorithm":"sha2-512"}`, 0, nil}, // two different algorithms
		{"transit/sign/ed", "signature_context", `{"input":"bQ==","signature_context":"Yw=="}`, 0, nil},
		{"transit/sign/e", "bogus", `{"input":"bQ==","bogus":1}`, 0, nil},

		// verify
		{"transit/verify/e", "signature", `{"input":"bQ==","signature":"` + sigE + `"}`, ok, func(o out) string { return want(data(o)["valid"], true) }},
		{"transit/verify/e", "signature", `{"input":"bQ=="}`, 400, nil}, // missing
		{"transit/verify/h", "hmac", `{"input":"bQ==","hmac":"` + macH + `"}`, ok, func(o out) string { return want(data(o)["valid"], true) }},
		{"transit/verify/e", "hash_algorithm", `{"input":"bQ==","signature":"` + sigE + `","hash_algorithm":"sha2-384"}`, ok, func(o out) string { return want(data(o)["valid"], false) }},
		{"transit/verify/r", "signature_algorithm", `{"input":"bQ==","signature":"` + sigR + `","signature_algorithm":"pkcs1v15"}`, ok, func(o out) string { return want(data(o)["valid"], true) }},
		{"transit/verify/e", "marshaling_algorithm", `{"input":"bQ==","signature":"vault:v1:ab+/AA==","marshaling_algorithm":"jws"}`, 400, nil}, // JWS is base64url
		{"transit/verify/e", "prehashed", `{"input":"bQ==","signature":"` + sigE + `","prehashed":true}`, 400, nil},                             // "m" is not a SHA-256 digest
		{"transit/verify/e", "reference", `{"batch_input":[{"input":"bQ==","signature":"` + sigE + `","reference":"r6"}]}`, ok, func(o out) string { return want(item(o, 0)["reference"], "r6") }},
		{"transit/verify/e", "batch_input", `{"batch_input":[{"input":"bQ==","signature":"` + sigE + `"},{"input":"bQ==","signature":"x"}]}`, ok, func(o out) string {
			return want(item(o, 0)["valid"] == true && item(o, 1)["error"] != nil, true)
		}},
		{"transit/verify/e", "context", `{"input":"bQ==","signature":"` + sigE + `","context":"Yw=="}`, 0, nil},
		{"transit/verify/r", "salt_length", `{"input":"bQ==","signature":"` + sigR + `","salt_length":"hash","signature_algorithm":"pkcs1v15"}`, 0, nil},
		{"transit/verify/r", "salt_length", `{"input":"bQ==","signature":"` + sigR + `","salt_length":"auto","signature_algorithm":"pkcs1v15"}`, ok, func(o out) string { return want(data(o)["valid"], true) }}, // auto is the default: no effect
		{"transit/verify/e", "algorithm", `{"input":"bQ==","signature":"` + sigE + `","algorithm":"sha2-384"}`, ok, func(o out) string { return want(data(o)["valid"], false) }},
		{"transit/verify/ed", "signature_context", `{"input":"bQ==","signature":"` + sigE + `","signature_context":"Yw=="}`, 0, nil},
		{"transit/verify/edd", "context", `{"input":"bQ==","signature":"` + sigE + `"}`, 0, nil}, // derived: a context is required
		{"transit/verify/h", "cmac", `{"input":"bQ==","cmac":"vault:v1:AAAA"}`, 0, nil},
		{"transit/verify/h", "mac_length", `{"input":"bQ==","hmac":"` + macH + `","mac_length":16}`, 0, nil},
		{"transit/verify/e", "bogus", `{"input":"bQ==","signature":"` + sigE + `","bogus":1}`, 0, nil},

		// random
		{"transit/random", "bytes", `{"bytes":8}`, ok, func(o out) string {
			b, _ := base64.StdEncoding.DecodeString(str(o, "random_bytes"))
			return want(len(b), 8)
		}},
		{"transit/random", "format", `{"format":"hex"}`, ok, func(o out) string { return want(len(str(o, "random_bytes")), 64) }},
		{"transit/random", "source", `{"source":"platform"}`, ok, nil},
		{"transit/random", "source", `{"source":"seal"}`, 0, nil},
		{"transit/random", "bogus", `{"bogus":1}`, 0, nil},
		// Export and backup are not served (404, saying why).
		{"transit/backup/a", "enclave", `{}`, 404, nil},
		{"transit/restore", "enclave", `{"backup":"x"}`, 404, nil},
	} {
		status, o := post(tc.path, tc.body)
		name := tc.path + " " + tc.field + " " + tc.body
		if tc.status == 0 {
			if status != 400 || o["errors"] == nil || !strings.Contains(errorsOf(o), `"`+tc.field+`"`) {
				t.Errorf("%s: %d %v; want 400 naming %q", name, status, o, tc.field)
			}
			continue
		}
		if status != tc.status {
			t.Errorf("%s: status %d %v; want %d", name, status, o, tc.status)
			continue
		}
		if tc.check != nil {
			if msg := tc.check(o); msg != "" {
				t.Errorf("%s: %s", name, msg)
			}
		}
	}
}

func want(got, exp any) string {
	if fmt.Sprint(got) != fmt.Sprint(exp) {
		return fmt.Sprintf("got %v, want %v", got, exp)
	}
	return ""
}

func prefix(s, p string) string {
	if !strings.HasPrefix(s, p) {
		return fmt.Sprintf("%q does not start with %q", s, p)
	}
	return ""
}

// Convergent encryption is deterministic for the same plaintext and
// context, and is Vault's construction (version 3): the nonce is the
// first 12 bytes of HMAC-SHA256(plaintext) keyed with the 32 bytes that
// follow the encryption key in HKDF-SHA256(key, info = context).
func TestConvergentEncryption(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/cv", map[string]any{"derived": true, "convergent_encryption": true})
	enc := func(pt, ctx string) string {
		return mustWrite(t, c, "transit/encrypt/cv", map[string]any{"plaintext": b64(pt), "context": b64(ctx)}).Data["ciphertext"].(string)
	}
	a1, a2 := enc("same", "user-1"), enc("same", "user-1")
	if a1 != a2 {
		t.Fatalf("same plaintext and context gave different ciphertexts:\n%s\n%s", a1, a2)
	}
	if enc("same", "user-2") == a1 || enc("other", "user-1") == a1 {
		t.Fatal("another context or plaintext gave the same ciphertext")
	}
	if s := mustWrite(t, c, "transit/decrypt/cv", map[string]any{"ciphertext": a1, "context": b64("user-1")}); s.Data["plaintext"] != b64("same") {
		t.Fatalf("decrypt: %v", s.Data)
	}
	// Independent recomputation from the stored key.
	key, _ := k.svc.key("cv")
	okm, _ := hkdf.Key(sha256.New, key.Versions[1].Secret, nil, "user-1", 64)
	m := hmac.New(sha256.New, okm[32:])
	m.Write([]byte("same"))
	_, raw, _ := parseVersioned(a1, "ciphertext")
	if string(raw[:12]) != string(m.Sum(nil)[:12]) {
		t.Fatal("nonce is not Vault's convergent (v3) nonce")
	}
	s, _ := c.Logical().Read("transit/keys/cv")
	if s.Data["convergent_encryption"] != true || s.Data["convergent_encryption_version"] != json.Number("3") || s.Data["kdf"] != "hkdf_sha256" {
		t.Fatalf("read key: %v", s.Data)
	}
	// A batch is deterministic item by item too.
	b := mustWrite(t, c, "transit/encrypt/cv", map[string]any{"batch_input": []map[string]any{{"plaintext": b64("same"), "context": b64("user-1")}}})
	if b.Data["batch_results"].([]any)[0].(map[string]any)["ciphertext"] != a1 {
		t.Fatal("batch convergent ciphertext differs")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{`3600`: time.Hour, `"3600"`: time.Hour, `"1h"`: time.Hour, `"90m"`: 90 * time.Minute,
		`"7d"`: 7 * 24 * time.Hour, `0`: 0, `""`: 0} {
		d, _, err := parseDuration(json.RawMessage(in), "f")
		if err != nil || d != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	for _, in := range []string{`"-1h"`, `-5`, `1.5`, `"1x"`, `true`, `"d"`, `[1]`, `"99999999999999999999d"`} {
		if _, _, err := parseDuration(json.RawMessage(in), "f"); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

// FuzzParseDuration: no input panics, and what is accepted is not negative.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{`3600`, `"1h"`, `"7d"`, `"-1h"`, `""`, `null`, `"1.5h"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, _, err := parseDuration(json.RawMessage(in), "f")
		if err == nil && d < 0 {
			t.Fatalf("%q gave %v", in, d)
		}
	})
}

// FuzzCheckFields: the field check never panics and never lets an
// unknown field through.
func FuzzCheckFields(f *testing.F) {
	f.Add(`{"plaintext":"eA==","nonce":""}`)
	f.Add(`{"batch_input":[{"plaintext":"eA==","bogus":1}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		var body map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &body) != nil {
			return
		}
		if err := fieldsEncrypt.check(body); err == nil {
			for n := range body {
				if !slices.Contains(fieldsEncrypt.known, n) && !slices.Contains(fieldsEncrypt.unsupported, n) {
					t.Fatalf("unknown field %q accepted", n)
				}
			}
		}
		(&request{body: body}).items(fieldsEncrypt)
	})
}
