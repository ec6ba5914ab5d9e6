package verdict_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/attest/verdict"
)

// fixed is a Verifier that answers with a fixed report or error.
type fixed struct {
	r   *attest.Report
	err error
}

func (f fixed) Verify(context.Context, []byte) (*attest.Report, error) { return f.r, f.err }

func TestJudgeSeparatesGenuineFromAcceptable(t *testing.T) {
	good := &attest.Report{TCBStatus: attest.UpToDate}
	debug := &attest.Report{TCBStatus: attest.UpToDate, Debug: true}
	platform := (&attest.Policy{}).CheckPlatform
	for _, tc := range []struct {
		name       string
		v          fixed
		check      verdict.Check
		exit       int
		genuine    bool
		rule, hint string
	}{
		{"acceptable", fixed{r: good}, platform, verdict.ExitAcceptable, true, "", ""},
		{"debug", fixed{r: debug}, platform, verdict.ExitRefused, true, "debug", "--allow-debug"},
		{"no policy", fixed{r: good}, nil, verdict.ExitRefused, true, "empty", ""},
		{"out of date", fixed{r: &attest.Report{TCBStatus: attest.OutOfDate}}, platform, verdict.ExitRefused, true, "tcb-status", "--accept-status OutOfDate"},
		{"expired", fixed{err: &dcap.Error{Step: dcap.StepTCBInfo, Err: fmt.Errorf("%w: x", dcap.ErrExpired)}}, platform, verdict.ExitNotGenuine, false, "", "--at"},
		{"simulated under Intel", fixed{err: &dcap.Error{Step: dcap.StepPCKChain, Err: simRootErr(t)}}, platform, verdict.ExitNotGenuine, false, "", "--root"},
		{"not a quote", fixed{err: &dcap.Error{Step: dcap.StepParse, Err: sgxquote.ErrFormat}}, platform, verdict.ExitNotGenuine, false, "", "--ego"},
		{"revoked", fixed{err: &dcap.Error{Step: dcap.StepCRL, Err: dcap.ErrRevoked}}, platform, verdict.ExitNotGenuine, false, "", "revoked"},
	} {
		v := verdict.Judge(context.Background(), tc.v, tc.check, nil)
		if v.ExitCode() != tc.exit || v.Genuine != tc.genuine || v.PolicyRule != tc.rule || !strings.Contains(v.Hint, tc.hint) {
			t.Errorf("%s: %+v (exit %d)", tc.name, v, v.ExitCode())
		}
		if v.Genuine != (v.Report != nil) {
			t.Errorf("%s: report present %v, genuine %v", tc.name, v.Report != nil, v.Genuine)
		}
		if tc.exit == verdict.ExitNotGenuine && v.FailedStep == "" {
			t.Errorf("%s: no failed step", tc.name)
		}
	}
}

// simRootErr is the error the verifier gives for a simulated quote
// checked against Intel's root.
func simRootErr(t *testing.T) error {
	t.Helper()
	p, err := sim.Init(filepath.Join(t.TempDir(), "sim"), sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.Quote(sim.Identity{MREnclave: [32]byte{1}}, [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := dcap.New(dcap.Options{Roots: []*x509.Certificate{dcap.IntelRoot()}, Collateral: p.Collateral()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), q)
	var de *dcap.Error
	if !errors.As(err, &de) {
		t.Fatalf("simulated quote under Intel's root: %v", err)
	}
	return de.Err
}
