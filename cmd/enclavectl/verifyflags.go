package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"os"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
)

// verifyFlags are the flags that say how to check a quote is genuine:
// `quote verify` and `ratls inspect` share them, and build the verifier
// the same way.
type verifyFlags struct {
	colDir      *string
	pccs        *string
	root        *string
	at          *string
	requireCRLs *bool
}

func addVerifyFlags(fs *flag.FlagSet) verifyFlags {
	return verifyFlags{
		colDir:      fs.String("collateral", "", "collateral directory (tcb_info.json, qe_identity.json, issuer chains, CRLs)"),
		pccs:        fs.String("pccs", "", "PCCS or PCS v4 base URL, e.g. https://pccs.example:8081/sgx/certification/v4/"),
		root:        fs.String("root", "", "trusted root CA, PEM (default: Intel SGX Root CA, pinned)"),
		at:          fs.String("at", "", "verification time, RFC 3339 (default: now)"),
		requireCRLs: fs.Bool("require-crls", false, "fail when the collateral lacks the root CA CRL or the PCK CRL"),
	}
}

// given reports whether a collateral source was named.
func (f verifyFlags) given() bool { return *f.colDir != "" || *f.pccs != "" }

// usage returns a usage problem with the flags, or "".
func (f verifyFlags) usage() string {
	if *f.colDir != "" && *f.pccs != "" {
		return "give exactly one of --collateral and --pccs"
	}
	if *f.at != "" {
		if _, err := time.Parse(time.RFC3339, *f.at); err != nil {
			return "--at: " + err.Error()
		}
	}
	return ""
}

// verifier builds the DCAP verifier the flags describe (usage() must be "").
func (f verifyFlags) verifier() (*dcap.Verifier, error) {
	now := time.Now
	if *f.at != "" {
		t, _ := time.Parse(time.RFC3339, *f.at)
		now = func() time.Time { return t }
	}
	root := dcap.IntelRoot()
	if *f.root != "" {
		b, err := os.ReadFile(*f.root)
		if err != nil {
			return nil, err
		}
		certs, err := dcap.ParsePEMChain(b)
		if err != nil || len(certs) != 1 {
			return nil, errors.New("--root must hold exactly one PEM certificate")
		}
		root = certs[0]
	}
	var getter dcap.Getter = pcs.Dir(*f.colDir)
	if *f.pccs != "" {
		getter = &pcs.Client{BaseURL: *f.pccs, RootCACRL: true}
	}
	return dcap.New(dcap.Options{Roots: []*x509.Certificate{root}, Collateral: getter, Now: now, RequireCRLs: *f.requireCRLs})
}
