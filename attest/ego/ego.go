// Package ego adapts EGo's enclave API to attest.Attester and to seal
// roots. EGo's GetRemoteReport returns a 16-byte header (u32 version 1,
// u32 type 2, u64 length) in front of the DCAP quote, which is stripped
// here; and outside an enclave EGo's seal-key calls return an all-zero key
// without an error, which is refused here.
//
// The package takes EGo's functions as values, so it builds and is tested
// without the EGo SDK. A binary built with `ego-go build -tags ego` wires
// them in a file of its own:
//
//	//go:build ego
//	att := ego.New(enclave.GetRemoteReport, func() ([]byte, error) {
//		key, _, err := enclave.GetProductSealKey()
//		return key, err
//	})
//
// (The EGo module is not on the module proxy this project builds from, so
// that file is not in the repository.)
package ego

import (
	"context"
	"errors"
	"fmt"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/seal"
)

// Attester produces quotes through EGo.
type Attester struct {
	report  func(reportData []byte) ([]byte, error)
	sealKey func() ([]byte, error)
}

var _ attest.Attester = (*Attester)(nil)

// New returns an Attester over EGo's GetRemoteReport and a seal-key getter
// (GetProductSealKey or GetUniqueSealKey).
func New(report func([]byte) ([]byte, error), sealKey func() ([]byte, error)) *Attester {
	return &Attester{report: report, sealKey: sealKey}
}

// Quote returns the DCAP quote (without EGo's header) over reportData.
func (a *Attester) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := a.report(reportData[:])
	if err != nil {
		return nil, fmt.Errorf("ego: GetRemoteReport: %w", err)
	}
	q, err := sgxquote.StripEGoHeader(r)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), q...), nil
}

// SealRoot returns the seal root from EGo's seal key. An all-zero or
// short key — what EGo returns outside an enclave — is an error.
func (a *Attester) SealRoot() (*seal.Root, error) {
	if a.sealKey == nil {
		return nil, errors.New("ego: no seal key function")
	}
	k, err := a.sealKey()
	if err != nil {
		return nil, fmt.Errorf("ego: seal key: %w", err)
	}
	r, err := seal.NewRoot(k)
	if err != nil {
		return nil, fmt.Errorf("ego: seal key refused (running outside an enclave?): %w", err)
	}
	return r, nil
}
