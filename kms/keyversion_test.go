package kms

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestKeyVersionOneParser sends the same key_version values in a single
// request and in a batch item: both paths accept exactly what Vault
// accepts (a JSON number or a string of decimal digits) and refuse the
// rest, "1abc" and "1.5" included.
func TestKeyVersionOneParser(t *testing.T) {
	k := startKMS(t, t.TempDir(), nil)
	c := k.vaultClient(t, k.root)
	mustWrite(t, c, "transit/keys/kv", nil)
	mustWrite(t, c, "transit/keys/kv/rotate", nil) // versions 1 and 2

	for _, tc := range []struct {
		raw  string // key_version as JSON
		want int    // version used; 0: refused
	}{
		{`1`, 1}, {`"1"`, 1}, {`2`, 2}, {`"2"`, 2}, {`0`, 2}, {`"0"`, 2}, {`""`, 2}, {`null`, 2}, {`"+1"`, 1},
		{`"1abc"`, 0}, {`"-1"`, 0}, {`-1`, 0}, {`"1.5"`, 0}, {`1.5`, 0}, {`1e0`, 0}, {`"0x1"`, 0},
		{`" 1"`, 0}, {`"1 "`, 0}, {`true`, 0}, {`[1]`, 0}, {`{}`, 0}, {`3`, 0}, {`"99999999999999999999"`, 0},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			single := fmt.Sprintf(`{"plaintext":"YQ==","key_version":%s}`, tc.raw)
			status, out := k.raw(t, "POST", "/v1/transit/encrypt/kv", k.root, single)
			if tc.want == 0 {
				if status != 400 {
					t.Errorf("single request: %d %v, want 400", status, out)
				}
			} else if status != 200 || !strings.HasPrefix(out["data"].(map[string]any)["ciphertext"].(string), fmt.Sprintf("vault:v%d:", tc.want)) {
				t.Errorf("single request: %d %v, want version %d", status, out, tc.want)
			}

			batch := fmt.Sprintf(`{"batch_input":[{"plaintext":"YQ==","key_version":%s}]}`, tc.raw)
			status, out = k.raw(t, "POST", "/v1/transit/encrypt/kv", k.root, batch)
			var res []struct {
				Ciphertext string `json:"ciphertext"`
				Error      string `json:"error"`
			}
			if data, ok := out["data"].(map[string]any); ok {
				b, _ := json.Marshal(data["batch_results"])
				json.Unmarshal(b, &res)
			}
			if len(res) != 1 {
				t.Fatalf("batch: %d %v", status, out)
			}
			if tc.want == 0 {
				if status != 400 || res[0].Error == "" || res[0].Ciphertext != "" {
					t.Errorf("batch item: %d %+v, want refused", status, res[0])
				}
			} else if status != 200 || !strings.HasPrefix(res[0].Ciphertext, fmt.Sprintf("vault:v%d:", tc.want)) {
				t.Errorf("batch item: %d %+v, want version %d", status, res[0], tc.want)
			}
		})
	}
}

func TestParseIntDirect(t *testing.T) {
	for raw, want := range map[string]int{`7`: 7, `"7"`: 7, `-3`: -3, `"-3"`: -3} {
		n, ok, err := parseInt(json.RawMessage(raw), "f")
		if err != nil || !ok || n != want {
			t.Errorf("parseInt(%s) = %d %v %v", raw, n, ok, err)
		}
	}
	for _, raw := range []string{`"1abc"`, `"1.5"`, `1.5`, `"x"`, `true`, `"\u0031a"`} {
		if _, _, err := parseInt(json.RawMessage(raw), "f"); err == nil {
			t.Errorf("parseInt(%s) accepted", raw)
		}
	}
}
