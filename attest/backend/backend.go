package backend

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/gramine"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/seal"
)

// Options choose and configure the attestation backend. The zero value
// means real SGX under Gramine, verified against Intel's root with
// collateral from Intel PCS.
type Options struct {
	// Simulation selects the simulated platform in SimDir. It is never
	// chosen implicitly.
	Simulation bool
	SimDir     string
	// CreateSim creates the simulated platform if SimDir holds none.
	CreateSim bool
	// Identity of this program in simulation (MRENCLAVE defaults to the
	// SHA-256 of the running executable).
	SimISVProdID, SimISVSVN uint16

	// SGX mode.
	GramineDir    string // default /dev/attestation
	PCCS          string // PCS/PCCS base URL; default Intel PCS v4
	CollateralDir string // instead of PCCS
	RootPEM       string // a root other than Intel's (refused with Simulation)
	// AllowMissingCRLs verifies without CRLs when the collateral lacks
	// them. In SGX mode CRLs are otherwise required.
	AllowMissingCRLs bool

	// VerifyOnly builds a backend for a program that attests nothing about
	// itself (a KMS client checking kmsd's RA-TLS certificate): it needs
	// only the verifier, roots and collateral, so in SGX mode it runs
	// outside an enclave. Its Attester refuses every quote with
	// ErrNoAttester; its seal roots are refused too.
	VerifyOnly bool
}

// ErrNoAttester is returned by the Attester of a VerifyOnly backend: the
// program was set up to verify others, not to attest itself.
var ErrNoAttester = errors.New("backend: this command only verifies peers and has no attester (it attests nothing about itself)")

type noAttester struct{}

func (noAttester) Quote(context.Context, [64]byte) ([]byte, error) { return nil, ErrNoAttester }

// Backend is what a server or client needs to attest itself and verify
// its peers.
type Backend struct {
	Attester attest.Attester
	Verifier attest.Verifier
	// DefaultPolicy accepts enclaves of the simulated platform's signer;
	// nil in SGX mode, where a policy must be configured.
	DefaultPolicy *attest.Policy
	// Simulated is true in simulation mode.
	Simulated bool
	// Self is this program's own identity (simulation only).
	Self sim.Identity
	// Platform is the simulated platform (simulation only).
	Platform *sim.Platform
	// Description says, for logs, which backend this is.
	Description string

	gramine    *gramine.Attester
	verifyOnly bool
}

// Seal policies: which enclaves can open what this one seals.
const (
	SealMREnclave = "mrenclave" // only this exact build
	SealMRSigner  = "mrsigner"  // any build from the same signer (survives upgrades)
)

// SealRoot returns the root of this enclave's seal keys under policy
// (SealMREnclave or SealMRSigner): under SGX, Gramine's 16-byte seal key;
// in simulation, the platform secret bound to the measurement or signer.
func (b *Backend) SealRoot(policy string) (*seal.Root, error) {
	if policy != SealMREnclave && policy != SealMRSigner {
		return nil, fmt.Errorf("backend: seal policy %q, want %s or %s", policy, SealMREnclave, SealMRSigner)
	}
	if b.verifyOnly {
		return nil, errors.New("backend: a verify-only backend has no seal key")
	}
	if b.Simulated {
		bind := b.Self.MREnclave
		if policy == SealMRSigner {
			bind = b.Platform.MRSigner()
		}
		return b.Platform.SealRoot(bind)
	}
	kind := gramine.SealMREnclave
	if policy == SealMRSigner {
		kind = gramine.SealMRSigner
	}
	raw, err := b.gramine.SealKey(kind)
	if err != nil {
		return nil, err
	}
	return seal.NewRoot(raw)
}

// Open builds the backend Options describe.
func Open(o Options) (*Backend, error) {
	if o.Simulation {
		return openSim(o)
	}
	if o.SimDir != "" {
		return nil, errors.New("backend: a simulation directory was given without simulation mode")
	}
	return openSGX(o)
}

func openSim(o Options) (*Backend, error) {
	if o.RootPEM != "" || o.PCCS != "" || o.CollateralDir != "" {
		return nil, errors.New("backend: simulation verifies against the simulated platform's own root and collateral; do not also give a root, PCCS or collateral directory")
	}
	if o.SimDir == "" {
		return nil, errors.New("backend: simulation needs a platform directory")
	}
	p, err := sim.Load(o.SimDir)
	if err != nil && o.CreateSim {
		if _, statErr := os.Stat(filepath.Join(o.SimDir, sim.FileRootCA)); errors.Is(statErr, os.ErrNotExist) {
			p, err = sim.Init(o.SimDir, sim.InitOptions{})
		}
	}
	if err != nil {
		return nil, err
	}
	var self sim.Identity
	if !o.VerifyOnly {
		mr, err := sim.ExecutableMeasurement()
		if err != nil {
			return nil, err
		}
		self = sim.Identity{MREnclave: mr, ISVProdID: o.SimISVProdID, ISVSVN: o.SimISVSVN}
	}
	v, err := dcap.New(dcap.Options{
		Roots:       p.Roots(),
		Collateral:  &pcs.Cache{Getter: p.Collateral(), MaxAge: time.Minute},
		RequireCRLs: true,
	})
	if err != nil {
		return nil, err
	}
	var att attest.Attester = noAttester{}
	if !o.VerifyOnly {
		att = p.Attester(self)
	}
	return &Backend{
		Attester:      att,
		Verifier:      v,
		DefaultPolicy: &attest.Policy{MRSigner: []attest.Hash32{p.MRSigner()}, AllowSimulated: true},
		Simulated:     true,
		Self:          self,
		Platform:      p,
		Description:   fmt.Sprintf("SIMULATED SGX platform at %s (not a real enclave: the host can read everything)", p.Dir()),
		verifyOnly:    o.VerifyOnly,
	}, nil
}

func openSGX(o Options) (*Backend, error) {
	var att *gramine.Attester
	if !o.VerifyOnly {
		att = &gramine.Attester{Dir: o.GramineDir}
		if err := att.Check(); err != nil {
			return nil, fmt.Errorf("%w\nhint: this command attests itself to its peer, so it needs an enclave: run it under gramine-sgx, or pass --simulation for a simulated platform", err)
		}
	}
	root := dcap.IntelRoot()
	if o.RootPEM != "" {
		b, err := os.ReadFile(o.RootPEM)
		if err != nil {
			return nil, err
		}
		certs, err := dcap.ParsePEMChain(b)
		if err != nil || len(certs) != 1 {
			return nil, fmt.Errorf("backend: %s must hold exactly one PEM certificate", o.RootPEM)
		}
		root = certs[0]
	}
	var getter dcap.Getter
	switch {
	case o.CollateralDir != "" && o.PCCS != "":
		return nil, errors.New("backend: give a PCCS URL or a collateral directory, not both")
	case o.CollateralDir != "":
		getter = pcs.Dir(o.CollateralDir)
	default:
		c := &pcs.Client{BaseURL: o.PCCS, RootCACRL: o.PCCS != ""}
		if o.PCCS == "" {
			c.RootCACRLURL = pcs.IntelRootCACRL
		}
		getter = c
	}
	v, err := dcap.New(dcap.Options{
		Roots:       []*x509.Certificate{root},
		Collateral:  &pcs.Cache{Getter: getter},
		RequireCRLs: !o.AllowMissingCRLs,
	})
	if err != nil {
		return nil, err
	}
	if o.VerifyOnly {
		return &Backend{Attester: noAttester{}, Verifier: v, Description: "SGX verification only (DCAP, no attester)", verifyOnly: true}, nil
	}
	return &Backend{Attester: att, Verifier: v, Description: "SGX (Gramine /dev/attestation, DCAP)", gramine: att}, nil
}
