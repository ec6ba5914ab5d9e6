// Package custodytest helps the tests of relayd and kmsd recovery: a set
// of operators with age identities, their decrypted shares, forged and
// foreign shares, and a hash and a plaintext scan of a directory. Only
// tests import it.
package custodytest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/sharedenclave/sharedenclave/custody"
)

// Operators are n operators, each with an age identity.
type Operators struct {
	IDs []*age.X25519Identity
	// RecipientsFile lists their recipients, one per line, as
	// --recovery-recipients reads it.
	RecipientsFile string
}

// NewOperators makes n operators and writes their recipients file in dir.
func NewOperators(t testing.TB, dir string, n int) *Operators {
	t.Helper()
	o := &Operators{RecipientsFile: filepath.Join(dir, "recipients.txt")}
	b := []byte("# operators of this deployment\n")
	for range n {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		o.IDs = append(o.IDs, id)
		b = append(b, id.Recipient().String()+"\n"...)
	}
	if err := os.WriteFile(o.RecipientsFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}

// Shares decrypts every share file in dir whose name contains pattern
// with the operator's identity it was encrypted to, in share order, and
// returns the texts operators submit.
func (o *Operators) Shares(t testing.TB, dir, pattern string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.Contains(e.Name(), pattern) && strings.HasSuffix(e.Name(), ".age") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) != len(o.IDs) {
		t.Fatalf("%d share files in %s, want %d", len(names), dir, len(o.IDs))
	}
	out := make([]string, len(names))
	for _, n := range names {
		path := filepath.Join(dir, n)
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("share file %s: %v, mode %v (want 0600)", n, err, st.Mode())
		}
		enc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var sh *custody.Share
		for _, id := range o.IDs {
			if sh, err = custody.DecryptShare(enc, id.String()); err == nil {
				break
			}
		}
		if sh == nil {
			t.Fatalf("share file %s opens with no operator's identity", n)
		}
		out[sh.Index()-1] = string(sh.Reveal())
	}
	return out
}

// Forge returns share with another value: well formed, same deployment,
// same number.
func Forge(t testing.TB, share string) string {
	t.Helper()
	f := strings.Fields(share)
	y := make([]byte, 32)
	rand.Read(y)
	f[5] = base64.RawURLEncoding.EncodeToString(y)
	s := strings.Join(f, " ") + "\n"
	if _, err := custody.ParseShare([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return s
}

// Deployment makes a data key and its k-of-n recovery, and returns the
// record with every share decrypted (as its operators would).
func Deployment(t testing.TB, k, n int) (*custody.DataKey, *custody.Recovery, []string) {
	t.Helper()
	dk, err := custody.NewDataKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var ids []*age.X25519Identity
	var rc []string
	for range n {
		id, _ := age.GenerateX25519Identity()
		ids = append(ids, id)
		rc = append(rc, id.Recipient().String())
	}
	rec, enc, err := custody.NewRecovery(dk, rc, k, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, e := range enc {
		sh, err := custody.DecryptShare(e, ids[i].String())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(sh.Reveal()))
	}
	return dk, rec, out
}

// Foreign returns k shares of another deployment with the same k-of-n.
func Foreign(t testing.TB, k, n int) []string {
	t.Helper()
	_, _, shares := Deployment(t, k, n)
	return shares[:k]
}

// HashDir hashes every file's name, mode and content under dir.
func HashDir(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(rel + "\x00" + info.Mode().String() + "\x00"))
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		h.Write([]byte{0})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Secrets are the forms a share can take on disk: its text and its raw
// value.
func Secrets(shares []string) [][]byte {
	var out [][]byte
	for _, s := range shares {
		out = append(out, []byte(strings.TrimSpace(s)))
		f := strings.Fields(s)
		if y, err := base64.RawURLEncoding.DecodeString(f[len(f)-1]); err == nil {
			out = append(out, y, []byte(f[len(f)-1]))
		}
	}
	return out
}

// Scan fails the test if any file under dirs holds one of secrets.
func Scan(t testing.TB, secrets [][]byte, dirs ...string) {
	t.Helper()
	files := 0
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("reading %s: %v", p, err)
				return nil
			}
			files++
			for i, s := range secrets {
				if len(s) >= 8 && bytes.Contains(b, s) {
					t.Errorf("%s holds secret #%d in plaintext", p, i)
				}
			}
			return nil
		})
	}
	if files == 0 {
		t.Error("scan found no files: it proves nothing")
	}
}
