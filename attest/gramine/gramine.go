package gramine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sharedenclave/sharedenclave/attest"
)

// DefaultDir is where Gramine exposes its attestation pseudo-files.
const DefaultDir = "/dev/attestation"

// maxQuote bounds what is read from the quote file (Gramine's quotes are
// about 5–8 KiB).
const maxQuote = 64 << 10

// The Gramine attestation state (user_report_data, then quote) is
// process-wide, so every Attester in the process takes this lock.
var mu sync.Mutex

// ErrNotDCAP means the process is not running under Gramine-SGX with DCAP
// remote attestation enabled.
var ErrNotDCAP = errors.New("gramine: /dev/attestation/attestation_type is not \"dcap\" (not running under Gramine-SGX with sgx.remote_attestation = \"dcap\")")

// Attester obtains DCAP quotes through Gramine's /dev/attestation files.
type Attester struct {
	// Dir is the attestation directory; empty means DefaultDir. Tests
	// point it at a fake directory.
	Dir string
}

var _ attest.Attester = (*Attester)(nil)

func (a *Attester) dir() string {
	if a.Dir == "" {
		return DefaultDir
	}
	return a.Dir
}

// Check verifies that DCAP attestation is available.
func (a *Attester) Check() error {
	b, err := os.ReadFile(filepath.Join(a.dir(), "attestation_type"))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotDCAP, err)
	}
	if string(bytes.TrimSpace(b)) != "dcap" {
		return fmt.Errorf("%w: it reads %q", ErrNotDCAP, bytes.TrimSpace(b))
	}
	return nil
}

// Quote writes reportData to user_report_data and reads back the quote
// Gramine produced for it.
func (a *Attester) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	if err := a.Check(); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(a.dir(), "user_report_data"), os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("gramine: %w", err)
	}
	n, err := f.Write(reportData[:])
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != 64 {
		return nil, fmt.Errorf("gramine: writing user_report_data: %d bytes, %v", n, err)
	}
	qf, err := os.Open(filepath.Join(a.dir(), "quote"))
	if err != nil {
		return nil, fmt.Errorf("gramine: %w", err)
	}
	defer qf.Close()
	q, err := io.ReadAll(io.LimitReader(qf, maxQuote+1))
	if err != nil {
		return nil, fmt.Errorf("gramine: reading quote: %w", err)
	}
	if len(q) > maxQuote {
		return nil, fmt.Errorf("gramine: quote over %d bytes", maxQuote)
	}
	if len(q) == 0 {
		return nil, errors.New("gramine: empty quote")
	}
	return q, nil
}

// SealKeyKind chooses which SGX seal key to read.
type SealKeyKind string

// The two seal keys Gramine exposes.
const (
	SealMREnclave SealKeyKind = "_sgx_mrenclave" // only this exact enclave can derive it
	SealMRSigner  SealKeyKind = "_sgx_mrsigner"  // any enclave from the same signer (and product)
)

// SealKey reads a 16-byte SGX seal key. A missing, short, long or
// all-zero key is an error: there is no fallback.
func (a *Attester) SealKey(kind SealKeyKind) ([]byte, error) {
	if kind != SealMREnclave && kind != SealMRSigner {
		return nil, fmt.Errorf("gramine: unknown seal key %q", kind)
	}
	f, err := os.Open(filepath.Join(a.dir(), "keys", string(kind)))
	if err != nil {
		return nil, fmt.Errorf("gramine: seal key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 17))
	if err != nil {
		return nil, fmt.Errorf("gramine: seal key: %w", err)
	}
	if len(b) != 16 {
		return nil, fmt.Errorf("gramine: seal key %s is %d bytes, want 16", kind, len(b))
	}
	if bytes.Equal(b, make([]byte, 16)) {
		return nil, fmt.Errorf("gramine: seal key %s is all zeros", kind)
	}
	return b, nil
}
