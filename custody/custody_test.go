package custody

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/sharedenclave/sharedenclave/seal"
)

type operator struct {
	id *age.X25519Identity
}

func operators(t *testing.T, n int) ([]operator, []string) {
	t.Helper()
	ops := make([]operator, n)
	var rcpts []string
	for i := range ops {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		ops[i] = operator{id}
		rcpts = append(rcpts, id.Recipient().String())
	}
	return ops, rcpts
}

func decryptAll(t *testing.T, ops []operator, enc [][]byte) []*Share {
	t.Helper()
	var out []*Share
	for i, e := range enc {
		s, err := DecryptShare(e, ops[i].id.String())
		if err != nil {
			t.Fatalf("operator %d: %v", i, err)
		}
		if s.Index() != i+1 {
			t.Fatalf("operator %d got share #%d", i, s.Index())
		}
		out = append(out, s)
	}
	return out
}

func TestRecoveryKOfN(t *testing.T) {
	dk, err := NewDataKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ops, rcpts := operators(t, 5)
	rec, enc, err := NewRecovery(dk, rcpts, 3, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	shares := decryptAll(t, ops, enc)
	for _, sub := range [][]*Share{shares[:3], shares[2:], {shares[4], shares[0], shares[2]}, shares} {
		got, err := rec.Recover(sub)
		if err != nil || !got.Equal(dk) {
			t.Errorf("%d shares: %v", len(sub), err)
		}
	}
	if _, err := rec.Recover(shares[:2]); !errors.Is(err, ErrRecovery) {
		t.Errorf("k-1 shares: %v", err)
	}
	// Another operator's identity cannot open a share.
	if _, err := DecryptShare(enc[0], ops[1].id.String()); err == nil {
		t.Error("share 1 opened with operator 2's identity")
	}
}

// Forged shares, shares of another deployment, a tampered record: nothing
// opens.
func TestRecoveryRefusesForgeries(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	ops, rcpts := operators(t, 3)
	rec, enc, err := NewRecovery(dk, rcpts, 2, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	shares := decryptAll(t, ops, enc)

	forged := *shares[1]
	forged.y = bytes.Clone(forged.y)
	forged.y[0] ^= 1
	if _, err := rec.Recover([]*Share{shares[0], &forged}); !errors.Is(err, ErrRecovery) {
		t.Errorf("forged share: %v", err)
	}

	other, _ := NewDataKey(rand.Reader)
	rec2, enc2, _ := NewRecovery(other, rcpts, 2, rand.Reader)
	foreign := decryptAll(t, ops, enc2)
	if _, err := rec.Recover([]*Share{shares[0], foreign[1]}); !errors.Is(err, ErrRecovery) {
		t.Errorf("a share of another deployment: %v", err)
	}
	// Even relabelled as this deployment, it does not open.
	relabelled := *foreign[1]
	relabelled.Deployment = rec.Deployment
	if _, err := rec.Recover([]*Share{shares[0], &relabelled}); !errors.Is(err, ErrRecovery) {
		t.Errorf("a relabelled foreign share: %v", err)
	}
	if got, err := rec2.Recover(foreign[:2]); err != nil || !got.Equal(other) {
		t.Errorf("the other deployment's own shares: %v", err)
	}

	// The record's bound fields: changing k, n or a recipient breaks it.
	for name, mut := range map[string]func(*Recovery){
		"recipient": func(r *Recovery) { r.Recipients[0], r.Recipients[1] = r.Recipients[1], r.Recipients[0] },
		"ciphertext": func(r *Recovery) {
			r.Ciphertext = bytes.Clone(r.Ciphertext)
			r.Ciphertext[3] ^= 1
		},
	} {
		b, _ := json.Marshal(rec)
		var r Recovery
		json.Unmarshal(b, &r)
		mut(&r)
		if _, err := r.Recover(shares[:2]); !errors.Is(err, ErrRecovery) {
			t.Errorf("record with %s changed: %v", name, err)
		}
	}
}

func TestRecoveryRefusesBadSetup(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	_, rcpts := operators(t, 3)
	for _, tc := range []struct {
		rcpts []string
		k     int
	}{
		{rcpts, 1}, {rcpts, 4}, {rcpts[:1], 1}, {[]string{rcpts[0], rcpts[0]}, 2}, {[]string{rcpts[0], "ssh-ed25519 AAAA"}, 2},
	} {
		if _, _, err := NewRecovery(dk, tc.rcpts, tc.k, rand.Reader); err == nil {
			t.Errorf("%d-of-%d %q accepted", tc.k, len(tc.rcpts), tc.rcpts)
		}
	}
}

// Nothing secret in what the host keeps or sees: the record and the
// encrypted shares hold neither the data key nor any share value.
func TestNoSecretInTheClear(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	ops, rcpts := operators(t, 3)
	rec, enc, _ := NewRecovery(dk, rcpts, 2, rand.Reader)
	shares := decryptAll(t, ops, enc)
	recJSON, _ := json.Marshal(rec)
	host := append(bytes.Clone(recJSON), bytes.Join(enc, nil)...)
	secrets := [][]byte{dk.b[:]}
	for _, s := range shares {
		secrets = append(secrets, s.y)
	}
	for i, s := range secrets {
		if bytes.Contains(host, s) || bytes.Contains(host, []byte(fmt.Sprintf("%x", s))) {
			t.Errorf("secret %d appears in what the host keeps", i)
		}
	}
	for _, v := range []any{dk, shares[0]} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(f, v)
			if strings.Contains(out, fmt.Sprintf("%x", dk.b[:4])) || strings.Contains(out, fmt.Sprintf("%x", shares[0].y[:4])) {
				t.Errorf("%s of %T prints a secret: %s", f, v, out)
			}
		}
	}
}

func TestSealedDataKey(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	root := func(b byte) *seal.Root {
		r, err := seal.NewRoot(bytes.Repeat([]byte{b}, 16))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	s1, _ := seal.NewSealer(root(1), "custody", 1)
	s2, _ := seal.NewSealer(root(2), "custody", 1)
	sealed, err := dk.Seal(s1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenSealed(s1, sealed)
	if err != nil || !got.Equal(dk) {
		t.Fatalf("own seal key: %v", err)
	}
	if _, err := OpenSealed(s2, sealed); err == nil {
		t.Error("another enclave's seal key opened the data key")
	}
	if bytes.Contains(sealed, dk.b[:]) {
		t.Error("sealed data key holds the key")
	}
}

func TestParseShareStrict(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	ops, rcpts := operators(t, 2)
	_, enc, _ := NewRecovery(dk, rcpts, 2, rand.Reader)
	s := decryptAll(t, ops, enc)[0]
	good := string(s.marshal())
	if _, err := ParseShare([]byte(good)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseShare([]byte(strings.TrimSuffix(good, "\n"))); err != nil {
		t.Errorf("without the final newline: %v", err)
	}
	f := strings.Fields(good)
	for _, bad := range []string{
		"", good + "x", " " + good, strings.Replace(good, " ", "  ", 1), strings.ToUpper(good),
		strings.Replace(good, f[1], f[1][:30], 1), strings.Replace(good, " 2 2 ", " 3 2 ", 1),
		strings.Replace(good, " 2 2 ", " 02 2 ", 1), strings.Replace(good, f[5], f[5]+"A", 1),
		strings.Replace(good, "/v1", "/v2", 1),
	} {
		if _, err := ParseShare([]byte(bad)); !errors.Is(err, ErrShareFormat) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Every strict prefix of the line fails.
	for n := range len(good) - 1 {
		if _, err := ParseShare([]byte(good[:n])); err == nil {
			t.Errorf("prefix of %d bytes parsed", n)
		}
	}
}

func FuzzParseShare(f *testing.F) {
	f.Add([]byte(sharePrefix + " 00112233445566778899aabbccddeeff 2 3 1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShare(b)
		if err != nil {
			return
		}
		// What parses is exactly what marshal writes.
		if got := s.marshal(); !bytes.Equal(got, b) && !bytes.Equal(got, append(bytes.Clone(b), '\n')) {
			t.Fatalf("parsed %q, writes %q", b, got)
		}
	})
}

func FuzzParseFile(f *testing.F) {
	dk, _ := NewDataKey(rand.Reader)
	var ids []string
	for range 3 {
		id, _ := age.GenerateX25519Identity()
		ids = append(ids, id.Recipient().String())
	}
	rec, _, err := NewRecovery(dk, ids, 2, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, err := (&File{Version: 1, Sealed: bytes.Repeat([]byte{1}, 65), Recovery: rec}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"sealed_data_key":"AQ=="}`))
	f.Add([]byte(`{"version":1,"sealed_data_key":"AQ=="} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := ParseFile(b)
		if err != nil {
			return
		}
		out, err := fl.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		again, err := ParseFile(out)
		if err != nil || !bytes.Equal(again.Sealed, fl.Sealed) || (again.Recovery == nil) != (fl.Recovery == nil) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestFileRoundTripAndPrefixes(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	id, _ := age.GenerateX25519Identity()
	id2, _ := age.GenerateX25519Identity()
	rc := []string{id.Recipient().String(), id2.Recipient().String()}
	rec, _, err := NewRecovery(dk, rc, 2, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&File{Version: 1, Sealed: []byte("sealed"), Recovery: rec}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fl, err := ParseFile(b)
	if err != nil || fl.Recovery.Deployment != rec.Deployment || string(fl.Sealed) != "sealed" {
		t.Fatalf("round trip: %v", err)
	}
	if !fl.Recovery.SameRecovery(rc, 2) || fl.Recovery.SameRecovery(rc, 3) || fl.Recovery.SameRecovery([]string{rc[1], rc[0]}, 2) {
		t.Error("SameRecovery")
	}
	trimmed := bytes.TrimSpace(b)
	for i := range len(trimmed) {
		if _, err := ParseFile(trimmed[:i]); !errors.Is(err, ErrFileFormat) {
			t.Fatalf("prefix of %d bytes: %v, want ErrFileFormat", i, err)
		}
	}
	if _, err := ParseFile(append(bytes.Clone(b), []byte(`{}`)...)); err == nil {
		t.Error("trailing data accepted")
	}
}

// The custody file a data dir keeps holds neither the data key nor a
// share value, in raw, hex or base64 form.
func TestCustodyFileNoSecret(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	ops, rcpts := operators(t, 3)
	rec, enc, _ := NewRecovery(dk, rcpts, 2, rand.Reader)
	root, _ := seal.NewRoot(bytes.Repeat([]byte{7}, 16))
	s, _ := seal.NewSealer(root, "custody/kms", 1)
	sealed, _ := dk.Seal(s)
	file, err := (&File{Version: 1, Sealed: sealed, Recovery: rec}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{dk.b[:]}
	for _, sh := range decryptAll(t, ops, enc) {
		secrets = append(secrets, sh.y)
	}
	for i, sec := range secrets {
		for _, form := range [][]byte{sec, []byte(fmt.Sprintf("%x", sec)), []byte(base64.StdEncoding.EncodeToString(sec)), []byte(base64.RawURLEncoding.EncodeToString(sec))} {
			if bytes.Contains(file, form) {
				t.Errorf("secret %d is in the custody file", i)
			}
		}
	}
}
