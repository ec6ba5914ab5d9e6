package pcs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

// File names in a collateral directory, one per PCS item.
const (
	FileTCBInfo               = "tcb_info.json"
	FileTCBInfoIssuerChain    = "tcb_info_issuer_chain.pem"
	FileQEIdentity            = "qe_identity.json"
	FileQEIdentityIssuerChain = "qe_identity_issuer_chain.pem"
	FilePCKCRL                = "pck_crl.der"
	FilePCKCRLIssuerChain     = "pck_crl_issuer_chain.pem"
	FileRootCACRL             = "root_ca_crl.der"
)

// maxFile bounds a collateral file read from disk or the network.
const maxFile = 1 << 20

// Dir serves collateral from a directory in the layout above. TCB info,
// QE identity and their issuer chains are required; CRLs are optional
// (a verifier with RequireCRLs refuses their absence). A directory holds
// one platform's collateral: Dir checks the FMSPC of tcb_info.json against
// the one asked for.
type Dir string

var _ dcap.Getter = Dir("")

// GetCollateral reads the directory.
func (d Dir) GetCollateral(_ context.Context, fmspc [6]byte, _ dcap.CA) (*dcap.Collateral, error) {
	var c dcap.Collateral
	for _, f := range []struct {
		name     string
		dst      *[]byte
		optional bool
	}{
		{FileTCBInfo, &c.TCBInfo, false},
		{FileTCBInfoIssuerChain, &c.TCBInfoIssuerChain, false},
		{FileQEIdentity, &c.QEIdentity, false},
		{FileQEIdentityIssuerChain, &c.QEIdentityIssuerChain, false},
		{FilePCKCRL, &c.PCKCRL, true},
		{FilePCKCRLIssuerChain, &c.PCKCRLIssuerChain, true},
		{FileRootCACRL, &c.RootCACRL, true},
	} {
		b, err := readLimited(filepath.Join(string(d), f.name))
		if errors.Is(err, fs.ErrNotExist) && f.optional {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pcs: collateral directory: %w", err)
		}
		*f.dst = b
	}
	if err := checkFMSPC(c.TCBInfo, fmspc); err != nil {
		return nil, err
	}
	return &c, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxFile {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", path, st.Size(), maxFile)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return b, nil
}
