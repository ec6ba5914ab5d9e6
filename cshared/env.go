//go:build cgo && sharedenclave_c

package main

/*
#include "sharedenclave.h"
typedef const se_env_options se_cenv_options;
typedef const char se_cchar;
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
)

// env is an opened attestation backend.
type env struct {
	be      *backend.Backend
	timeout time.Duration
}

// policy returns the [peers] policy of the file at p (a C string), or the
// simulated default when p is NULL.
func (e *env) policy(p *C.se_cchar) (*attest.Policy, C.int) {
	path, ok := goString(p, maxCString)
	if !ok {
		return nil, fail(seEInval, "sharedenclave: policy file name longer than %d bytes", maxCString)
	}
	if p != nil && path == "" {
		return nil, fail(seEInval, "sharedenclave: empty policy file name (pass NULL for the simulated default)")
	}
	pol, err := policyfile.PeerPolicy(path, e.be.DefaultPolicy)
	if err != nil {
		if errors.Is(err, policyfile.ErrNoPolicy) {
			return nil, fail(seEPolicy, "sharedenclave: a policy file is required under SGX: it says which enclaves to trust")
		}
		return nil, fail(seEPolicy, "sharedenclave: %v", err)
	}
	return pol, seOK
}

//export se_env_new
func se_env_new(opts *C.se_cenv_options, out *C.se_env) C.int {
	if opts == nil || out == nil {
		return fail(seEInval, "se_env_new: opts and out must not be NULL")
	}
	*out = 0
	if opts.struct_size != C.uint32_t(unsafe.Sizeof(C.se_env_options{})) {
		return fail(seEInval, "se_env_new: struct_size %d, want sizeof(se_env_options) = %d (header and library differ?)",
			uint32(opts.struct_size), unsafe.Sizeof(C.se_env_options{}))
	}
	if opts.simulation != 0 && opts.simulation != 1 {
		return fail(seEInval, "se_env_new: simulation must be 0 or 1")
	}
	var o backend.Options
	var ok [3]bool
	o.SimDir, ok[0] = goString(opts.sim_dir, maxCString)
	o.PCCS, ok[1] = goString(opts.pccs_url, maxCString)
	o.CollateralDir, ok[2] = goString(opts.collateral_dir, maxCString)
	if !ok[0] || !ok[1] || !ok[2] {
		return fail(seEInval, "se_env_new: a path or URL is longer than %d bytes", maxCString)
	}
	o.Simulation = opts.simulation == 1
	if !o.Simulation && (opts.sim_isvprodid != 0 || opts.sim_isvsvn != 0) {
		return fail(seEInval, "se_env_new: sim_isvprodid and sim_isvsvn apply only in simulation (under SGX they come from the signed enclave)")
	}
	o.SimISVProdID, o.SimISVSVN = uint16(opts.sim_isvprodid), uint16(opts.sim_isvsvn)
	be, err := backend.Open(o)
	if err != nil {
		return fail(seEBackend, "se_env_new: %v", err)
	}
	t := time.Duration(opts.timeout_ms) * time.Millisecond
	if t == 0 {
		t = 15 * time.Second
	}
	*out = C.se_env(newHandle(&env{be: be, timeout: t}))
	return seOK
}

//export se_env_close
func se_env_close(h C.se_env) C.int {
	if _, ok := release[*env](uint64(h)); !ok {
		return badHandle("environment", uint64(h))
	}
	return seOK
}
