package custody

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
)

// Recovery is what the host keeps so that the data key can be recovered
// by k of n operators: the data key encrypted under a key derived from a
// recovery secret that exists nowhere else whole. It holds no secret in
// the clear and may be stored anywhere.
type Recovery struct {
	Version    int      `json:"version"`
	Deployment string   `json:"deployment"` // 32 hex digits, random per deployment
	Threshold  int      `json:"threshold"`  // k
	Shares     int      `json:"shares"`     // n
	Recipients []string `json:"recipients"` // the operators' age recipients, in share order
	Nonce      []byte   `json:"nonce"`
	Ciphertext []byte   `json:"ciphertext"` // AES-256-GCM of the data key
}

const recoveryPurpose = "shared-enclave custody recovery key v1"

func (r *Recovery) ad() []byte {
	var b bytes.Buffer
	b.WriteString("shared-enclave custody recovery v1\x00")
	b.WriteString(r.Deployment)
	binary.Write(&b, binary.BigEndian, uint16(r.Threshold))
	binary.Write(&b, binary.BigEndian, uint16(r.Shares))
	for _, rc := range r.Recipients {
		b.WriteByte(0)
		b.WriteString(rc)
	}
	return b.Bytes()
}

// NewRecovery makes the recovery record for dk and one share for each
// recipient (age X25519 recipients, "age1…"), any k of which recover dk.
// Each share comes back encrypted to its recipient with age: hand share i
// to the holder of recipients[i]. Nothing secret is returned in the clear.
func NewRecovery(dk *DataKey, recipients []string, k int, rand io.Reader) (*Recovery, [][]byte, error) {
	n := len(recipients)
	if k < 2 || n < k || n > 255 {
		return nil, nil, fmt.Errorf("custody: %d-of-%d recovery: want 2 ≤ k ≤ n ≤ 255 (one recipient per share)", k, n)
	}
	rcpts := make([]*age.X25519Recipient, n)
	seen := map[string]bool{}
	for i, s := range recipients {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, nil, fmt.Errorf("custody: recipient %d: %v (want an age X25519 recipient, age1…, as `age-keygen` or `enclavectl custody keygen` prints)", i+1, err)
		}
		if seen[r.String()] {
			return nil, nil, fmt.Errorf("custody: recipient %d is given twice: each share must go to a different operator", i+1)
		}
		seen[r.String()] = true
		rcpts[i] = r
	}
	var dep [16]byte
	secret := make([]byte, 32)
	defer clear(secret)
	if _, err := io.ReadFull(rand, dep[:]); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, nil, err
	}
	rec := &Recovery{Version: 1, Deployment: hex.EncodeToString(dep[:]), Threshold: k, Shares: n}
	for _, r := range rcpts {
		rec.Recipients = append(rec.Recipients, r.String())
	}
	a, err := aead(secret, dep[:], recoveryPurpose)
	if err != nil {
		return nil, nil, err
	}
	rec.Nonce = make([]byte, a.NonceSize())
	if _, err := io.ReadFull(rand, rec.Nonce); err != nil {
		return nil, nil, err
	}
	rec.Ciphertext = a.Seal(nil, rec.Nonce, dk.b[:], rec.ad())

	raw, err := split(secret, n, k, rand)
	if err != nil {
		return nil, nil, err
	}
	enc := make([][]byte, n)
	for i, y := range raw {
		sh := &Share{Deployment: rec.Deployment, Threshold: k, Shares: n, x: y[0], y: y[1:]}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rcpts[i])
		if err != nil {
			return nil, nil, err
		}
		txt := sh.marshal()
		_, err = w.Write(txt)
		clear(txt)
		clear(y)
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			return nil, nil, err
		}
		enc[i] = buf.Bytes()
	}
	return rec, enc, nil
}

// Check reports whether the record is well formed (not whether it opens).
func (r *Recovery) Check() error {
	dep, err := hex.DecodeString(r.Deployment)
	switch {
	case r.Version != 1:
		return fmt.Errorf("custody: recovery record version %d, want 1", r.Version)
	case err != nil || len(dep) != 16:
		return errors.New("custody: recovery record has a malformed deployment id")
	case r.Threshold < 2 || r.Shares < r.Threshold || r.Shares > 255 || len(r.Recipients) != r.Shares:
		return fmt.Errorf("custody: recovery record says %d-of-%d with %d recipients", r.Threshold, r.Shares, len(r.Recipients))
	case len(r.Nonce) != 12 || len(r.Ciphertext) != DataKeySize+16:
		return errors.New("custody: recovery record has a malformed ciphertext")
	}
	return nil
}

// Recover combines shares and opens the data key. It needs Threshold
// shares of this deployment; fewer, forged or foreign shares give
// ErrRecovery (or a more precise error for shares that say they belong
// elsewhere) and nothing else.
func (r *Recovery) Recover(shares []*Share) (*DataKey, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	if len(shares) < r.Threshold {
		return nil, fmt.Errorf("%w: %d of the %d shares needed", ErrRecovery, len(shares), r.Threshold)
	}
	raw := make([][]byte, len(shares))
	for i, s := range shares {
		if s.Deployment != r.Deployment || s.Threshold != r.Threshold || s.Shares != r.Shares {
			return nil, fmt.Errorf("%w: share %d belongs to deployment %s (%d-of-%d), not %s (%d-of-%d)", ErrRecovery, i+1, s.Deployment, s.Threshold, s.Shares, r.Deployment, r.Threshold, r.Shares)
		}
		raw[i] = append([]byte{s.x}, s.y...)
	}
	secret, err := combine(raw)
	for _, b := range raw {
		clear(b)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecovery, err)
	}
	defer clear(secret)
	dep, _ := hex.DecodeString(r.Deployment)
	a, err := aead(secret, dep, recoveryPurpose)
	if err != nil {
		return nil, err
	}
	b, err := a.Open(nil, r.Nonce, r.Ciphertext, r.ad())
	if err != nil {
		return nil, ErrRecovery
	}
	defer clear(b)
	dk := &DataKey{}
	copy(dk.b[:], b)
	return dk, nil
}

// Share is one operator's decrypted recovery share. Its value cannot be
// printed; it is written only by NewRecovery, encrypted to its operator.
type Share struct {
	Deployment string
	Threshold  int
	Shares     int
	x          byte
	y          []byte
}

func (s *Share) String() string {
	return fmt.Sprintf("custody.Share(deployment %s, %d-of-%d, #%d)", s.Deployment, s.Threshold, s.Shares, s.x)
}

// Index is the share's number, 1..Shares.
func (s *Share) Index() int { return int(s.x) }

const sharePrefix = "shared-enclave-recovery-share/v1"

// marshal is the text an operator decrypts:
// "shared-enclave-recovery-share/v1 DEPLOYMENT K N X BASE64URL(Y)\n".
func (s *Share) marshal() []byte {
	return fmt.Appendf(nil, "%s %s %d %d %d %s\n", sharePrefix, s.Deployment, s.Threshold, s.Shares, s.x, base64.RawURLEncoding.EncodeToString(s.y))
}

// ParseShare reads a decrypted share. The text is exactly one line as
// NewRecovery writes it (a final newline optional); anything else is
// ErrShareFormat.
func ParseShare(text []byte) (*Share, error) {
	if len(text) > 512 {
		return nil, fmt.Errorf("%w: %d bytes", ErrShareFormat, len(text))
	}
	line := strings.TrimSuffix(string(text), "\n")
	f := strings.Split(line, " ")
	if len(f) != 6 || f[0] != sharePrefix {
		return nil, fmt.Errorf("%w: want %q followed by five fields", ErrShareFormat, sharePrefix)
	}
	dep, err := hex.DecodeString(f[1])
	if err != nil || len(dep) != 16 || hex.EncodeToString(dep) != f[1] {
		return nil, fmt.Errorf("%w: deployment id", ErrShareFormat)
	}
	num := func(s string, lo, hi int) (int, bool) {
		v, err := strconv.Atoi(s)
		return v, err == nil && strconv.Itoa(v) == s && v >= lo && v <= hi
	}
	k, ok1 := num(f[2], 2, 255)
	n, ok2 := num(f[3], 2, 255)
	x, ok3 := num(f[4], 1, 255)
	if !ok1 || !ok2 || !ok3 || k > n || x > n {
		return nil, fmt.Errorf("%w: k, n or index out of range", ErrShareFormat)
	}
	y, err := base64.RawURLEncoding.Strict().DecodeString(f[5])
	if err != nil || len(y) != 32 {
		return nil, fmt.Errorf("%w: share value", ErrShareFormat)
	}
	sh := &Share{Deployment: f[1], Threshold: k, Shares: n, x: byte(x), y: y}
	// One spelling per share: base64 decoding skips line breaks, so
	// compare with what marshal writes.
	if m := sh.marshal(); string(m) != line+"\n" {
		clear(m)
		return nil, fmt.Errorf("%w: not in canonical form", ErrShareFormat)
	}
	return sh, nil
}

// DecryptShare opens an age-encrypted share with the operator's identity
// ("AGE-SECRET-KEY-1…") and parses it. Operators run it on their own
// machine (enclavectl), never inside the service.
func DecryptShare(encrypted []byte, identity string) (*Share, error) {
	id, err := age.ParseX25519Identity(strings.TrimSpace(identity))
	if err != nil {
		return nil, fmt.Errorf("custody: identity: %v", err)
	}
	r, err := age.Decrypt(bytes.NewReader(encrypted), id)
	if err != nil {
		return nil, fmt.Errorf("custody: this share is not encrypted to that identity (%v)", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, 513))
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return ParseShare(b)
}
