package explorer

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/verdict"
)

// Collateral sources a request may name.
const (
	SourceDir  = "dir"  // a collateral directory (pcs.Dir)
	SourcePCCS = "pccs" // a PCCS or PCS v4 base URL
	SourcePCS  = "pcs"  // Intel PCS itself
	SourceSim  = "sim"  // a simulated platform directory: its root and collateral
)

// Request is one analysis: the evidence and how to check it.
type Request struct {
	// Evidence is the decoded input (decodeInput, or a live fetch).
	Evidence *Evidence
	// Source is one of SourceDir, SourcePCCS, SourcePCS, SourceSim;
	// Location is the directory or URL it names.
	Source, Location string
	// Root is a PEM file of a root to trust instead of Intel's (not with
	// SourceSim, whose root is the platform's).
	Root string
	// At is the verification time; zero means now.
	At time.Time
	// Policy is the text of a policy file; empty means the default of
	// `enclavectl quote verify` without --policy.
	Policy []byte
	// Live describes the server the evidence was fetched from, if any.
	Live *Live
}

// Step is one verification step as the page shows it.
type Step struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Result string `json:"result"` // "passed", "failed", "not run"
	Reason string `json:"reason"`
}

// Result is everything the page shows about one quote.
type Result struct {
	Input     string `json:"input"` // how the input was read
	QuoteSize int    `json:"quote_size"`
	// Simulated: a simulated root or quote is involved (the source is a
	// simulated platform, or the quote chains to a SIMULATED root).
	Simulated   bool            `json:"simulated"`
	ParseError  string          `json:"parse_error,omitempty"`
	Fields      []Field         `json:"fields,omitempty"`
	Steps       []Step          `json:"steps"`
	Certificate *CertInfo       `json:"certificate,omitempty"`
	Live        *Live           `json:"live,omitempty"`
	PCKChain    []ChainCert     `json:"pck_chain,omitempty"`
	PCK         *PCKInfo        `json:"pck_extensions,omitempty"`
	TCB         *TCBTable       `json:"tcb,omitempty"`
	QEIdentity  *QEIdentityInfo `json:"qe_identity,omitempty"`
	// Verdict is exactly what `enclavectl quote verify` prints, and
	// VerdictJSON its bytes (indented the same way).
	Verdict     *verdict.Verdict `json:"verdict"`
	VerdictJSON string           `json:"verdict_json"`
	// PolicySource says which policy judged: "policy file" or the default.
	PolicySource string `json:"policy_source"`
	// PolicyLines is a [peers] table accepting exactly this enclave.
	PolicyLines string `json:"policy_lines,omitempty"`
}

// CertInfo describes the RA-TLS certificate a quote came from.
type CertInfo struct {
	Subject   string   `json:"subject"`
	PublicKey string   `json:"public_key"`
	Formats   []string `json:"formats"`
	Used      string   `json:"used"`
	// Binding says whether the quote's report data binds the
	// certificate's key, as the format defines it.
	Binding bool   `json:"binding"`
	Error   string `json:"error,omitempty"`
}

// ChainCert is one certificate of the quote's PCK chain.
type ChainCert struct {
	Subject   string `json:"subject"`
	Issuer    string `json:"issuer"`
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
}

// PCKInfo is the PCK leaf's SGX extensions (dcap.ParsePCKExtensions).
type PCKInfo struct {
	PPID               string `json:"ppid"`
	CompSVN            []int  `json:"comp_svn"`
	PCESVN             uint16 `json:"pcesvn"`
	CPUSVN             string `json:"cpusvn"`
	PCEID              string `json:"pceid"`
	FMSPC              string `json:"fmspc"`
	SGXType            string `json:"sgx_type"`
	PlatformInstanceID string `json:"platform_instance_id,omitempty"`
	Error              string `json:"error,omitempty"`
}

// TCBTable is the TCB info's levels, the matched one marked.
type TCBTable struct {
	FMSPC                   string     `json:"fmspc"`
	IssueDate               string     `json:"issue_date"`
	NextUpdate              string     `json:"next_update"`
	TCBEvaluationDataNumber int        `json:"tcb_evaluation_data_number"`
	Levels                  []TCBLevel `json:"levels"`
	// Matched is the index of the platform's level, -1 if none.
	Matched int    `json:"matched"`
	Error   string `json:"error,omitempty"`
	// Verified: the TCB info step passed (signature, dates, FMSPC).
	Verified bool `json:"verified"`
}

// TCBLevel is one row of the table.
type TCBLevel struct {
	CompSVN     []int    `json:"comp_svn"`
	PCESVN      int      `json:"pcesvn"`
	TCBDate     string   `json:"tcb_date"`
	Status      string   `json:"status"`
	AdvisoryIDs []string `json:"advisory_ids"`
}

// QEIdentityInfo summarizes the QE identity collateral.
type QEIdentityInfo struct {
	IssueDate  string `json:"issue_date"`
	NextUpdate string `json:"next_update"`
	ISVProdID  int    `json:"isvprodid"`
	MRSigner   string `json:"mrsigner"`
}

// stepInfo describes the dcap steps, in the order Verify runs them.
var stepInfo = []struct {
	step  dcap.Step
	title string
	what  string
}{
	{dcap.StepParse, "Parse", "SGX ECDSA quote v3: version, key type, TEE type, every length exact"},
	{dcap.StepPCKChain, "PCK certificate chain", "the PCK chain in the quote is canonical PEM, [leaf, PCK CA, root], each valid at the verification time, ending in a trusted root"},
	{dcap.StepCollateral, "Collateral", "TCB info, QE identity and CRLs fetched for the PCK certificate's FMSPC"},
	{dcap.StepCRL, "Revocation lists", "the PCK CA and the PCK leaf are not revoked (when CRLs are present)"},
	{dcap.StepQESignature, "QE report signature", "the quoting enclave's report is signed by the PCK leaf key"},
	{dcap.StepQEReportData, "QE report data", "the QE report binds the attestation key: SHA-256(key ‖ auth data) ‖ zeros"},
	{dcap.StepISVSignature, "ISV report signature", "the enclave's report (header and body) is signed by the attestation key"},
	{dcap.StepTCBInfo, "TCB info", "signed by Intel's TCB signing key, current, for this FMSPC and PCE-ID; the platform's level matched"},
	{dcap.StepQEIdentity, "QE identity", "signed, current; the quoting enclave's MRSIGNER, ISVPRODID, attributes match; its level matched"},
	{dcap.StepTCBStatus, "TCB status", "the worse of the platform and QE statuses, advisories merged; Revoked fails"},
}

// recorder remembers what the collateral source returned, so the page
// shows the TCB levels the verifier used, not a second fetch.
type recorder struct {
	g   dcap.Getter
	mu  sync.Mutex
	col *dcap.Collateral
}

func (r *recorder) GetCollateral(ctx context.Context, fmspc [6]byte, ca dcap.CA) (*dcap.Collateral, error) {
	c, err := r.g.GetCollateral(ctx, fmspc, ca)
	r.mu.Lock()
	r.col = c
	r.mu.Unlock()
	return c, err
}

// errRecorder remembers the error Verify returned, so each step's reason
// is the cause itself, not a string taken apart.
type errRecorder struct {
	v   attest.Verifier
	err error
}

func (e *errRecorder) Verify(ctx context.Context, quote []byte) (*attest.Report, error) {
	r, err := e.v.Verify(ctx, quote)
	e.err = err
	return r, err
}

// RequestError is a problem with the request itself (a parameter that is
// missing, unreadable or refused), named so the page can point at it.
type RequestError struct {
	Field string
	Msg   string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Msg }

// verifierFor builds the verifier a request describes, the way
// `enclavectl quote verify` builds it from its flags.
func (s *Server) verifierFor(req *Request) (*dcap.Verifier, *recorder, error) {
	now := s.cfg.Now
	if !req.At.IsZero() {
		at := req.At
		now = func() time.Time { return at }
	}
	root := dcap.IntelRoot()
	var getter dcap.Getter
	switch req.Source {
	case SourceDir:
		if req.Location == "" {
			return nil, nil, &RequestError{"collateral", "give the collateral directory"}
		}
		getter = pcs.Dir(req.Location)
	case SourcePCCS:
		if !strings.HasPrefix(req.Location, "https://") && !strings.HasPrefix(req.Location, "http://") {
			return nil, nil, &RequestError{"collateral", "a PCCS URL starts with https:// (or http:// for a local one)"}
		}
		getter = &pcs.Client{BaseURL: req.Location, RootCACRL: true, HTTP: s.http}
	case SourcePCS:
		getter = &pcs.Client{BaseURL: pcs.IntelPCS, RootCACRLURL: pcs.IntelRootCACRL, HTTP: s.http}
	case SourceSim:
		if req.Location == "" {
			return nil, nil, &RequestError{"collateral", "give the simulated platform directory (from enclavectl sim init)"}
		}
		if req.Root != "" {
			return nil, nil, &RequestError{"root", "a simulated platform brings its own root (DIR/root_ca.pem): leave the root empty"}
		}
		var err error
		if root, err = readRoot(filepath.Join(req.Location, "root_ca.pem")); err != nil {
			return nil, nil, &RequestError{"collateral", fmt.Sprintf("not a simulated platform directory: %v", err)}
		}
		getter = pcs.Dir(filepath.Join(req.Location, "collateral"))
	default:
		return nil, nil, &RequestError{"source", fmt.Sprintf("unknown collateral source %q: want dir, pccs, pcs or sim", req.Source)}
	}
	if req.Root != "" {
		var err error
		if root, err = readRoot(req.Root); err != nil {
			return nil, nil, &RequestError{"root", err.Error()}
		}
	}
	rec := &recorder{g: getter}
	v, err := dcap.New(dcap.Options{Roots: []*x509.Certificate{root}, Collateral: rec, Now: now})
	if err != nil {
		return nil, nil, err
	}
	return v, rec, nil
}

const maxRootFile = 64 << 10

func readRoot(path string) (*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxRootFile+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxRootFile {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxRootFile)
	}
	certs, err := dcap.ParsePEMChain(buf.Bytes())
	if err != nil || len(certs) != 1 {
		return nil, fmt.Errorf("%s must hold exactly one PEM certificate", path)
	}
	return certs[0], nil
}

// Analyze verifies the request's quote and lays out everything about it.
// Problems with the request are *RequestError; a quote that is garbage,
// forged or expired is not an error: the Result says what failed.
func (s *Server) Analyze(ctx context.Context, req *Request) (*Result, error) {
	res := &Result{Input: req.Evidence.Encoding, Live: req.Live, Steps: []Step{}}
	check, src, err := policyCheck(req)
	if err != nil {
		return nil, err
	}
	res.PolicySource = src
	v, rec, err := s.verifierFor(req)
	if err != nil {
		return nil, err
	}
	quote := req.Evidence.Quote
	if c := req.Evidence.Cert; c != nil {
		ci := &CertInfo{Subject: c.Subject.String(), PublicKey: atls.KeyDescription(c.PublicKey), Formats: []string{}}
		found := atls.Extract(c)
		for _, f := range found {
			ci.Formats = append(ci.Formats, f.Format.String())
		}
		switch {
		case len(found) == 0:
			ci.Error = "the certificate carries no RA-TLS extension (Gramine legacy, Gramine standard or EGo)"
		case found[0].Err != nil:
			ci.Used, ci.Error = found[0].Format.String(), found[0].Err.Error()
		default:
			ci.Used, quote = found[0].Format.String(), found[0].Quote
			if q, err := sgxquote.Parse(quote); err == nil {
				ci.Binding = q.Body.ReportData == found[0].ReportData
			}
		}
		res.Certificate = ci
		if quote == nil {
			return nil, &RequestError{"quote", "certificate: " + ci.Error}
		}
	}
	res.QuoteSize = len(quote)

	er := &errRecorder{v: v}
	vd := verdict.Judge(ctx, er, check, quote)
	res.Verdict = vd
	js, err := json.MarshalIndent(vd, "", "  ")
	if err != nil {
		return nil, err
	}
	res.VerdictJSON = string(js) + "\n"
	res.Steps = steps(vd, er.err)

	q, perr := sgxquote.Parse(quote)
	if perr != nil {
		res.ParseError = perr.Error()
	} else {
		res.Fields = layout(quote, q)
		s.describePlatform(res, q, rec, vd)
	}
	if vd.Report != nil {
		res.PolicyLines = PolicyLines(vd.Report)
	}
	res.Simulated = req.Source == SourceSim || (vd.Report != nil && vd.Report.Simulated) || chainSimulated(res.PCKChain)
	return res, nil
}

// policyCheck returns the check a request asks for: its policy file's
// [peers] table, or, without one, what `enclavectl quote verify` applies
// without --policy (platform rules only; simulation allowed when the user
// chose the simulated platform's root).
func policyCheck(req *Request) (verdict.Check, string, error) {
	if len(bytes.TrimSpace(req.Policy)) == 0 {
		p := &attest.Policy{AllowSimulated: req.Source == SourceSim || req.Root != ""}
		return p.CheckPlatform, "default: not DEBUG, TCB status UpToDate or SWHardeningNeeded, not simulated unless its root was given", nil
	}
	f, err := policyfile.Parse(req.Policy)
	if err != nil {
		return nil, "", &RequestError{"policy", err.Error()}
	}
	p, err := f.Peers.Policy()
	if err != nil {
		return nil, "", &RequestError{"policy", err.Error()}
	}
	return p.Check, "policy file ([peers])", nil
}

// steps turns a verdict into the list of steps: before the failed one,
// passed; the failed one, with its cause; after it, not run.
func steps(vd *verdict.Verdict, verr error) []Step {
	var de *dcap.Error
	failed := dcap.Step("")
	if errors.As(verr, &de) {
		failed = de.Step
	}
	out := make([]Step, 0, len(stepInfo)+1)
	state := "passed"
	for _, si := range stepInfo {
		st := Step{ID: string(si.step), Title: si.title, Result: state, Reason: si.what}
		if !vd.Genuine && si.step == failed {
			st.Result, st.Reason = "failed", de.Err.Error()
			state = "not run"
		}
		out = append(out, st)
	}
	pol := Step{ID: "policy", Title: "Policy", Result: "not run", Reason: "applied only to a genuine quote"}
	if vd.Genuine {
		if vd.Acceptable {
			pol.Result, pol.Reason = "passed", "the policy accepts this enclave"
		} else {
			pol.Result, pol.Reason = "failed", vd.Error
		}
	}
	if !vd.Genuine && failed == "" {
		// Not a dcap.Error: say so on the first step rather than claim
		// any step passed.
		out[0] = Step{ID: out[0].ID, Title: out[0].Title, Result: "failed", Reason: vd.Error}
		for i := 1; i < len(out); i++ {
			out[i].Result = "not run"
		}
	}
	return append(out, pol)
}

// describePlatform fills the PCK chain, its SGX extensions and the TCB
// levels, from the quote and the collateral the verifier used.
func (s *Server) describePlatform(res *Result, q *sgxquote.Quote, rec *recorder, vd *verdict.Verdict) {
	certs, err := dcap.ParsePEMChain(q.CertData)
	if err != nil || len(certs) == 0 {
		return
	}
	for _, c := range certs {
		res.PCKChain = append(res.PCKChain, ChainCert{
			Subject: c.Subject.String(), Issuer: c.Issuer.String(),
			NotBefore: c.NotBefore.UTC().Format(time.RFC3339), NotAfter: c.NotAfter.UTC().Format(time.RFC3339),
		})
	}
	ext, err := dcap.ParsePCKExtensions(certs[0])
	if err != nil {
		res.PCK = &PCKInfo{Error: err.Error()}
		return
	}
	res.PCK = &PCKInfo{
		PPID: hex.EncodeToString(ext.PPID[:]), CompSVN: make([]int, 0, 16), PCESVN: ext.PCESVN,
		CPUSVN: hex.EncodeToString(ext.CPUSVN[:]), PCEID: hex.EncodeToString(ext.PCEID[:]),
		FMSPC: hex.EncodeToString(ext.FMSPC[:]), SGXType: sgxType(ext.SGXType),
		PlatformInstanceID: hex.EncodeToString(ext.PlatformInstanceID),
	}
	for _, svn := range ext.CompSVN {
		res.PCK.CompSVN = append(res.PCK.CompSVN, int(svn))
	}
	rec.mu.Lock()
	col := rec.col
	rec.mu.Unlock()
	if col == nil {
		return
	}
	tcbPassed := vd.Genuine || (vd.FailedStep != "" && stepIndex(dcap.Step(vd.FailedStep)) > stepIndex(dcap.StepTCBInfo))
	if ti, err := dcap.ParseTCBInfo(col.TCBInfo); err != nil {
		res.TCB = &TCBTable{Error: err.Error(), Matched: -1}
	} else {
		t := &TCBTable{
			FMSPC: ti.FMSPC, IssueDate: ti.IssueDate.UTC().Format(time.RFC3339), NextUpdate: ti.NextUpdate.UTC().Format(time.RFC3339),
			TCBEvaluationDataNumber: ti.TCBEvaluationDataNumber, Matched: -1, Verified: tcbPassed, Levels: []TCBLevel{},
		}
		for _, l := range ti.TCBLevels {
			row := TCBLevel{PCESVN: l.TCB.PCESVN, TCBDate: l.TCBDate, Status: l.TCBStatus, AdvisoryIDs: l.AdvisoryIDs}
			if row.AdvisoryIDs == nil {
				row.AdvisoryIDs = []string{}
			}
			for _, c := range l.TCB.SGXTCBComponents {
				row.CompSVN = append(row.CompSVN, c.SVN)
			}
			t.Levels = append(t.Levels, row)
		}
		if i, err := dcap.MatchTCBLevel(ti, ext); err != nil {
			t.Error = err.Error()
		} else {
			t.Matched = i
		}
		res.TCB = t
	}
	if qi, err := dcap.ParseQEIdentity(col.QEIdentity); err == nil {
		res.QEIdentity = &QEIdentityInfo{
			IssueDate: qi.IssueDate.UTC().Format(time.RFC3339), NextUpdate: qi.NextUpdate.UTC().Format(time.RFC3339),
			ISVProdID: qi.ISVProdID, MRSigner: qi.MRSigner,
		}
	}
}

func stepIndex(s dcap.Step) int {
	for i, si := range stepInfo {
		if si.step == s {
			return i
		}
	}
	return -1
}

func sgxType(t int) string {
	switch t {
	case 0:
		return "0 (Standard)"
	case 1:
		return "1 (Scalable)"
	case 2:
		return "2 (Scalable with integrity)"
	}
	return fmt.Sprint(t)
}

func chainSimulated(chain []ChainCert) bool {
	for _, c := range chain {
		if strings.Contains(c.Subject, dcap.SimulatedMarker) || strings.Contains(c.Issuer, dcap.SimulatedMarker) {
			return true
		}
	}
	return false
}

// PolicyLines returns a policy file's [peers] table that accepts exactly
// the enclave of r (its MRENCLAVE, MRSIGNER, product id and at least its
// ISVSVN), with comments where r would still be refused by the defaults.
func PolicyLines(r *attest.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# policy for the enclave MRENCLAVE %.16s…, written by enclavectl explore\n", r.MREnclave)
	b.WriteString("[peers]\n")
	fmt.Fprintf(&b, "mrenclave = [%q]\n", r.MREnclave.String())
	fmt.Fprintf(&b, "mrsigner = [%q]\n", r.MRSigner.String())
	fmt.Fprintf(&b, "isvprodid = %d\n", r.ISVProdID)
	fmt.Fprintf(&b, "min_isvsvn = %d\n", r.ISVSVN)
	if r.Debug {
		b.WriteString("# this is a DEBUG enclave: its host can read its memory. It is refused unless\n# allow_debug = true, which belongs in development only.\n")
	}
	statuses := attest.DefaultTCBStatuses
	accepted := false
	for _, s := range statuses {
		accepted = accepted || s == r.TCBStatus
	}
	b.WriteString("tcb_statuses = [\"UpToDate\", \"SWHardeningNeeded\"]\n")
	if !accepted {
		fmt.Fprintf(&b, "# this platform's TCB status is %s (advisories %s): it is refused unless you add\n# %q above, having read those advisories.\n", r.TCBStatus, strings.Join(r.AdvisoryIDs, ", "), string(r.TCBStatus))
	}
	if r.Simulated {
		b.WriteString("# SIMULATED platform: proves nothing about SGX hardware; for tests only.\nallow_simulated = true\n")
	}
	return b.String()
}
