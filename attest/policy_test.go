package attest

import (
	"errors"
	"testing"
)

func goodReport() *Report {
	return &Report{
		MREnclave: Hash32{1}, MRSigner: Hash32{2}, ISVProdID: 3, ISVSVN: 4,
		TCBStatus: UpToDate, ReportData: make([]byte, 64),
	}
}

func TestZeroPolicyAcceptsNothing(t *testing.T) {
	var p Policy
	if err := p.Check(goodReport()); !errors.Is(err, ErrPolicy) {
		t.Fatalf("zero policy: %v", err)
	}
	var nilp *Policy
	if err := nilp.Check(goodReport()); !errors.Is(err, ErrPolicy) {
		t.Fatalf("nil policy: %v", err)
	}
}

func TestPolicyRules(t *testing.T) {
	pid := uint16(3)
	base := Policy{MREnclave: []Hash32{{1}}, MRSigner: []Hash32{{2}}, ProductID: &pid, MinISVSVN: 4}
	if err := base.Check(goodReport()); err != nil {
		t.Fatalf("matching report refused: %v", err)
	}
	other := uint16(9)
	for _, tc := range []struct {
		rule   string
		policy func(p *Policy)
		report func(r *Report)
	}{
		{"mrenclave", nil, func(r *Report) { r.MREnclave = Hash32{9} }},
		{"mrsigner", nil, func(r *Report) { r.MRSigner = Hash32{9} }},
		{"isvprodid", func(p *Policy) { p.ProductID = &other }, nil},
		{"isvsvn", nil, func(r *Report) { r.ISVSVN = 3 }},
		{"debug", nil, func(r *Report) { r.Debug = true }},
		{"tcb-status", nil, func(r *Report) { r.TCBStatus = OutOfDate }},
		{"tcb-status", func(p *Policy) { p.TCBStatuses = []TCBStatus{Revoked} }, func(r *Report) { r.TCBStatus = Revoked }},
		{"tcb-status", nil, func(r *Report) { r.TCBStatus = "Whatever" }},
		{"simulated", nil, func(r *Report) { r.Simulated = true }},
		{"report-data", func(p *Policy) { p.ReportData = make([]byte, 64); p.ReportData[0] = 1 }, nil},
		{"report-data", func(p *Policy) { p.ReportData = make([]byte, 32) }, nil},
	} {
		p, r := base, goodReport()
		if tc.policy != nil {
			tc.policy(&p)
		}
		if tc.report != nil {
			tc.report(r)
		}
		var pe *PolicyError
		if err := p.Check(r); !errors.As(err, &pe) || pe.Rule != tc.rule {
			t.Errorf("rule %s: got %v", tc.rule, err)
		}
	}
	// Explicit allowances.
	p := base
	p.AllowDebug, p.AllowSimulated = true, true
	p.TCBStatuses = []TCBStatus{OutOfDate}
	r := goodReport()
	r.Debug, r.Simulated, r.TCBStatus = true, true, OutOfDate
	if err := p.Check(r); err != nil {
		t.Fatalf("allowed debug/simulated/OutOfDate refused: %v", err)
	}
}

func TestSeverityOrder(t *testing.T) {
	order := []TCBStatus{UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked}
	for i := 1; i < len(order); i++ {
		if Worse(order[i-1], order[i]) != order[i] || Worse(order[i], order[i-1]) != order[i] {
			t.Errorf("%s vs %s", order[i-1], order[i])
		}
	}
	if Worse(Revoked, "Unknown") != "Unknown" {
		t.Error("an unknown status must rank worse than any known one")
	}
}

func TestCheckPlatform(t *testing.T) {
	good := &Report{TCBStatus: UpToDate}
	var zero Policy
	if err := zero.CheckPlatform(good); err != nil {
		t.Errorf("zero policy, non-debug UpToDate SGX report: %v", err)
	}
	if err := zero.Check(good); err == nil {
		t.Error("Check with a zero policy accepted a report")
	}
	var nilPolicy *Policy
	if err := nilPolicy.CheckPlatform(good); err == nil {
		t.Error("nil policy accepted a report")
	}
	for _, tc := range []struct {
		p    Policy
		r    Report
		rule string
	}{
		{Policy{}, Report{TCBStatus: UpToDate, Debug: true}, "debug"},
		{Policy{}, Report{TCBStatus: UpToDate, Simulated: true}, "simulated"},
		{Policy{}, Report{TCBStatus: OutOfDate}, "tcb-status"},
		{Policy{TCBStatuses: []TCBStatus{Revoked}}, Report{TCBStatus: Revoked}, "tcb-status"},
		{Policy{AllowDebug: true, AllowSimulated: true, TCBStatuses: []TCBStatus{OutOfDate}}, Report{TCBStatus: OutOfDate, Debug: true, Simulated: true}, ""},
	} {
		err := tc.p.CheckPlatform(&tc.r)
		var pe *PolicyError
		switch {
		case tc.rule == "" && err != nil:
			t.Errorf("%+v %+v: %v", tc.p, tc.r, err)
		case tc.rule != "" && (!errors.As(err, &pe) || pe.Rule != tc.rule):
			t.Errorf("%+v %+v: %v, want rule %s", tc.p, tc.r, err, tc.rule)
		}
	}
}
