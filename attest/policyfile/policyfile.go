package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/pelletier/go-toml/v2"

	"github.com/sharedenclave/sharedenclave/attest"
)

// Identity is the TOML form of an attest.Policy.
type Identity struct {
	MREnclave      []attest.Hash32 `toml:"mrenclave"`
	MRSigner       []attest.Hash32 `toml:"mrsigner"`
	ISVProdID      *uint16         `toml:"isvprodid"`
	MinISVSVN      uint16          `toml:"min_isvsvn"`
	AllowDebug     bool            `toml:"allow_debug"`
	TCBStatuses    []string        `toml:"tcb_statuses"`
	AllowSimulated bool            `toml:"allow_simulated"`
}

// Binding ties a relay client id to the identities allowed to register it.
type Binding struct {
	ID string `toml:"id"`
	Identity
}

// File is a policy file.
type File struct {
	// Peers: which enclaves may connect (for relayd: clients; for a
	// client: the server).
	Peers *Identity `toml:"peers"`
	// Bindings: optional, relayd only.
	Bindings []Binding `toml:"bindings"`
}

// Policy converts an Identity to an attest.Policy, validating statuses.
func (id *Identity) Policy() (*attest.Policy, error) {
	p := &attest.Policy{
		MREnclave: id.MREnclave, MRSigner: id.MRSigner, ProductID: id.ISVProdID,
		MinISVSVN: id.MinISVSVN, AllowDebug: id.AllowDebug, AllowSimulated: id.AllowSimulated,
	}
	for _, s := range id.TCBStatuses {
		st := attest.TCBStatus(s)
		if !st.Known() {
			return nil, fmt.Errorf("unknown TCB status %q", s)
		}
		if st == attest.Revoked {
			return nil, errors.New("tcb_statuses: Revoked is never accepted")
		}
		p.TCBStatuses = append(p.TCBStatuses, st)
	}
	if len(p.MREnclave) == 0 && len(p.MRSigner) == 0 {
		return nil, errors.New("names no mrenclave or mrsigner, so it would accept nothing")
	}
	return p, nil
}

// Parse decodes a policy file. Unknown keys are errors.
func Parse(data []byte) (*File, error) {
	var f File
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return nil, fmt.Errorf("policy: %s", sm.String())
		}
		return nil, fmt.Errorf("policy: %w", err)
	}
	if f.Peers == nil {
		return nil, errors.New("policy: no [peers] table: the file must say which enclaves are accepted")
	}
	if _, err := f.Peers.Policy(); err != nil {
		return nil, fmt.Errorf("policy: [peers] %w", err)
	}
	seen := map[string]bool{}
	for i, b := range f.Bindings {
		if b.ID == "" {
			return nil, fmt.Errorf("policy: [[bindings]] #%d has no id", i+1)
		}
		if seen[b.ID] {
			return nil, fmt.Errorf("policy: id %q is bound twice", b.ID)
		}
		seen[b.ID] = true
		if _, err := b.Policy(); err != nil {
			return nil, fmt.Errorf("policy: binding %q %w", b.ID, err)
		}
	}
	return &f, nil
}

// Load reads and parses a policy file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ErrNoPolicy: no policy file was given and there is no default (SGX
// mode has none: the operator must say which enclaves to trust).
var ErrNoPolicy = errors.New("policy: --policy is required under SGX: it says which enclaves to trust")

// PeerPolicy returns the [peers] policy of the file at path, or fallback
// (the simulated platform's default) when path is empty, or ErrNoPolicy
// when both are missing.
func PeerPolicy(path string, fallback *attest.Policy) (*attest.Policy, error) {
	if path == "" {
		if fallback == nil {
			return nil, ErrNoPolicy
		}
		return fallback, nil
	}
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	return f.Peers.Policy()
}
