package dcap_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// TestDifferentialWalk is the byte walk of issue 11: for a real Intel
// quote and a simulated one (with CRLs), every byte of the whole quote is
// flipped with XOR 0x01 and with XOR 0x80, every strict prefix and some
// extensions are tried, the certification data is rebuilt in every wrong
// shape we could think of, and every byte of each collateral issuer chain
// is flipped too. Each case goes to dcap.Verifier and to @phala/dcap-qvl.
//
// The rule: the project never accepts what dcap-qvl refuses. Where the
// project is stricter, the case must fall in one of the documented classes
// below (docs/SECURITY.md, "What the verifier refuses that dcap-qvl
// accepts"); a stricter case outside them fails the test, so a new
// difference cannot go unnoticed.
func TestDifferentialWalk(t *testing.T) {
	requireQVL(t)
	var cases []walkCase
	bases := walkBases(t)
	for _, b := range bases {
		cases = append(cases, quoteWalk(t, b)...)
		cases = append(cases, certDataShapes(t, b)...)
		cases = append(cases, collateralWalk(t, b)...)
	}

	// dcap-qvl runs in two node processes while Go verifies.
	var res []qvlResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res = runQVLParallel(t, bases, cases, 2)
	}()
	goOK := make([]bool, len(cases))
	goErr := make([]error, len(cases))
	status := make([]string, len(cases))
	advisories := make([][]string, len(cases))
	var next atomic.Int64
	var gw sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		gw.Add(1)
		go func() {
			defer gw.Done()
			for i := int(next.Add(1) - 1); i < len(cases); i = int(next.Add(1) - 1) {
				c := &cases[i]
				ctx := context.WithValue(context.Background(), walkCollateral{}, c.col)
				r, err := c.base.v.Verify(ctx, c.raw)
				goErr[i] = err
				// dcap-qvl refuses debug enclaves inside verification; the
				// project reports them genuine and refuses them by policy
				// (and `quote verify` refuses them by default).
				goOK[i] = err == nil && !r.Debug
				if err == nil {
					status[i], advisories[i] = string(r.TCBStatus), r.AdvisoryIDs
				}
			}
		}()
	}
	gw.Wait()
	wg.Wait()
	if t.Failed() {
		return
	}

	stricter := map[string]int{}
	stricterExample := map[string]string{}
	looser, agree := 0, 0
	for i, c := range cases {
		q := res[i]
		switch {
		case goOK[i] && !q.OK:
			looser++
			if looser <= 20 {
				t.Errorf("LOOSER than dcap-qvl: %s: Go accepts, dcap-qvl refuses (%s)", c.name, q.Error)
			}
		case goOK[i] && q.OK:
			adv := slices.Clone(q.AdvisoryIDs)
			slices.Sort(adv)
			if status[i] != q.Status || !slices.Equal(advisories[i], adv) {
				t.Errorf("%s: Go %s %v, dcap-qvl %s %v", c.name, status[i], advisories[i], q.Status, adv)
			} else {
				agree++
			}
		case !goOK[i] && q.OK:
			class := stricterClass(c, goErr[i])
			if class == "" {
				t.Errorf("%s: Go refuses (%v) and dcap-qvl accepts, in no documented class", c.name, goErr[i])
				continue
			}
			stricter[class]++
			if _, ok := stricterExample[class]; !ok {
				stricterExample[class] = fmt.Sprintf("%s: %v", c.name, goErr[i])
			}
		default:
			agree++
		}
	}
	if looser > 20 {
		t.Errorf("… %d cases in all where Go accepts what dcap-qvl refuses", looser)
	}
	t.Logf("%d cases: %d agree, %d where the project is stricter, %d looser", len(cases), agree, len(cases)-agree-looser, looser)
	classes := make([]string, 0, len(stricter))
	for k := range stricter {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	for _, k := range classes {
		t.Logf("stricter, %-28s %5d cases, e.g. %s", k, stricter[k], stricterExample[k])
	}
}

// The classes of input the project refuses and dcap-qvl accepts, each
// argued for in docs/SECURITY.md.
const (
	classPEMFraming = "pem-framing"       // non-canonical PEM, bytes between or after blocks
	classChainShape = "chain-shape"       // extra, duplicated or foreign certificates dcap-qvl skips
	classCRL        = "crl"               // CRL signatures, dates and issuer chains dcap-qvl does not check
	classTrailing   = "trailing-bytes"    // bytes after the quote's certification data
	classDebug      = "debug-enclave"     // reported genuine (debug), refused by policy: never counted as accepted
	classX509       = "x509-strict-parse" // DER dcap-qvl's parser tolerates and Go's x509 refuses
)

func stricterClass(c walkCase, err error) string {
	var de *dcap.Error
	if !errors.As(err, &de) {
		return ""
	}
	switch {
	case errors.Is(err, dcap.ErrPEMFraming):
		return classPEMFraming
	case errors.Is(err, dcap.ErrChainShape), errors.Is(err, dcap.ErrUntrustedRoot):
		return classChainShape
	case de.Step == dcap.StepCRL:
		return classCRL
	case errors.Is(err, sgxquote.ErrTrailingBytes):
		return classTrailing
	case de.Step == dcap.StepPCKChain || de.Step == dcap.StepTCBInfo || de.Step == dcap.StepQEIdentity:
		var ce *dcap.ChainError
		if errors.As(err, &ce) && ce.Index > 0 && strings.HasPrefix(ce.Err.Error(), "x509: ") {
			return classX509
		}
	}
	return ""
}

// walkBase is one quote with everything needed to verify it.
type walkBase struct {
	name      string
	simulated bool
	quote     []byte
	col       *dcap.Collateral
	root      *x509.Certificate
	now       time.Time
	v         *dcap.Verifier
	// certificates to build wrong chains from
	leaf, pckCA, tcbSigner *x509.Certificate
}

// walkCase is one input: a base's quote or collateral, changed.
type walkCase struct {
	name string
	base *walkBase
	raw  []byte
	col  *dcap.Collateral
	flip []int // the byte and mask, when raw is the base's quote with one byte flipped
}

// walkGetter returns the collateral the context carries: the cases of a
// base share one Verifier (and so its memo), and run in parallel.
type walkGetter struct{}

type walkCollateral struct{}

func (walkGetter) GetCollateral(ctx context.Context, _ [6]byte, _ dcap.CA) (*dcap.Collateral, error) {
	c := *ctx.Value(walkCollateral{}).(*dcap.Collateral)
	return &c, nil
}

func walkBases(t *testing.T) []*walkBase {
	t.Helper()
	var bases []*walkBase

	// Every real quote in testdata/: a directory with quote.bin, its
	// collateral in the layout of DESIGN.md, and a file verify-at holding
	// the RFC 3339 time at which the collateral was current.
	dirs, err := filepath.Glob("../../testdata/*/verify-at")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no real quote in testdata (looked for testdata/*/verify-at): %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		at, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		when, err := time.Parse(time.RFC3339, strings.TrimSpace(string(at)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		quote, err := os.ReadFile(filepath.Join(dir, "quote.bin"))
		if err != nil {
			t.Fatal(err)
		}
		fmspc, ca := quoteFMSPC(t, quote)
		col, err := pcs.Dir(dir).GetCollateral(context.Background(), fmspc, ca)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		bases = append(bases, newWalkBase(t, filepath.Base(dir), quote, col, dcap.IntelRoot(), when))
	}

	// A simulated quote, with CRLs and the PCK CRL issuer chain.
	p := newSim(t, sim.InitOptions{})
	sq, err := p.Quote(sim.Identity{MREnclave: [32]byte{9}, ISVProdID: 1, ISVSVN: 2}, [64]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := p.Collateral().GetCollateral(context.Background(), sim.FMSPC, dcap.CAProcessor)
	if err != nil {
		t.Fatal(err)
	}
	if sc.PCKCRL == nil || sc.RootCACRL == nil || sc.PCKCRLIssuerChain == nil {
		t.Fatal("the simulated platform's collateral lacks CRLs")
	}
	sb := newWalkBase(t, "sim", sq, sc, p.Root(), time.Now())
	sb.simulated = true
	return append(bases, sb)
}

// quoteFMSPC reads the FMSPC and PCK CA kind from a quote's PCK leaf.
func quoteFMSPC(t *testing.T, quote []byte) ([6]byte, dcap.CA) {
	t.Helper()
	q, err := sgxquote.Parse(quote)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := dcap.ParsePEMChain(q.CertData)
	if err != nil || len(certs) < 2 {
		t.Fatalf("PCK chain: %v", err)
	}
	ext, err := dcap.ParsePCKExtensions(certs[0])
	if err != nil {
		t.Fatal(err)
	}
	ca := dcap.CAProcessor
	if strings.Contains(certs[1].Subject.CommonName, "Platform") {
		ca = dcap.CAPlatform
	}
	return ext.FMSPC, ca
}

func newWalkBase(t *testing.T, name string, quote []byte, col *dcap.Collateral, root *x509.Certificate, now time.Time) *walkBase {
	t.Helper()
	v, err := dcap.New(dcap.Options{Roots: []*x509.Certificate{root}, Collateral: walkGetter{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	b := &walkBase{name: name, quote: quote, col: col, root: root, now: now, v: v}
	q, err := sgxquote.Parse(quote)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := dcap.ParsePEMChain(q.CertData)
	if err != nil || len(chain) != 3 {
		t.Fatalf("%s: PCK chain: %v", name, err)
	}
	b.leaf, b.pckCA = chain[0], chain[1]
	signer, err := dcap.ParsePEMChain(col.TCBInfoIssuerChain)
	if err != nil {
		t.Fatal(err)
	}
	b.tcbSigner = signer[0]
	// The unmodified quote must verify, or the walk proves nothing.
	if _, err := v.Verify(context.WithValue(context.Background(), walkCollateral{}, col), quote); err != nil {
		t.Fatalf("%s: the unmodified quote does not verify: %v", name, err)
	}
	return b
}

func (b *walkBase) newCase(_ *testing.T, name string, quote []byte, col *dcap.Collateral) walkCase {
	return walkCase{name: b.name + ": " + name, base: b, raw: quote, col: col}
}

// quoteWalk: every byte flipped two ways, every strict prefix, appended
// bytes.
func quoteWalk(t *testing.T, b *walkBase) []walkCase {
	var cases []walkCase
	for i := 0; i < len(b.quote); i += walkStep() {
		for _, mask := range []byte{0x01, 0x80} {
			m := slices.Clone(b.quote)
			m[i] ^= mask
			c := b.newCase(t, fmt.Sprintf("byte %d ^ %#02x (%s)", i, mask, region(b.quote, i)), m, b.col)
			c.flip = []int{i, int(mask)}
			cases = append(cases, c)
		}
	}
	for n := 0; n < len(b.quote); n += walkStep() {
		cases = append(cases, b.newCase(t, fmt.Sprintf("truncated to %d bytes", n), b.quote[:n], b.col))
	}
	for _, tail := range [][]byte{{0}, {0x0a}, []byte("-----BEGIN CERTIFICATE-----\n"), bytes.Repeat([]byte{0xff}, 64)} {
		cases = append(cases, b.newCase(t, fmt.Sprintf("%d bytes appended", len(tail)), append(slices.Clone(b.quote), tail...), b.col))
	}
	return cases
}

// walkStep is 1 (every byte), or 7 with -short.
func walkStep() int {
	if testing.Short() {
		return 7
	}
	return 1
}

// region names the part of a quote that byte i belongs to.
func region(q []byte, i int) string {
	authLen := int(q[1012]) | int(q[1013])<<8
	switch {
	case i < 48:
		return "header"
	case i < 432:
		return "report body"
	case i < 436:
		return "signature data length"
	case i < 500:
		return "ISV signature"
	case i < 564:
		return "attestation key"
	case i < 948:
		return "QE report"
	case i < 1012:
		return "QE report signature"
	case i < 1014:
		return "QE auth data length"
	case i < 1014+authLen:
		return "QE auth data"
	case i < 1014+authLen+2:
		return "certification data type"
	case i < 1014+authLen+6:
		return "certification data length"
	default:
		return "certification data"
	}
}

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// impostor returns a self-signed certificate with root's exact subject
// (and serial and dates) and another key.
func impostor(t *testing.T, root *x509.Certificate) *x509.Certificate {
	t.Helper()
	return selfSign(t, &x509.Certificate{
		SerialNumber: root.SerialNumber, RawSubject: root.RawSubject, RawIssuer: root.RawSubject,
		NotBefore: root.NotBefore, NotAfter: root.NotAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: root.KeyUsage, SubjectKeyId: root.SubjectKeyId,
	})
}

// reframe re-encodes PEM text with other line lengths or line ends.
func reframe(p []byte, lineLen int, eol string) []byte {
	var out bytes.Buffer
	for rest := p; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		body := base64.StdEncoding.EncodeToString(blk.Bytes)
		out.WriteString("-----BEGIN CERTIFICATE-----" + eol)
		for len(body) > 0 {
			n := min(lineLen, len(body))
			out.WriteString(body[:n] + eol)
			body = body[n:]
		}
		out.WriteString("-----END CERTIFICATE-----" + eol)
	}
	return out.Bytes()
}

// certDataShapes rebuilds the certification data: reordered, duplicated,
// missing, extra and foreign certificates, and other PEM framings.
func certDataShapes(t *testing.T, b *walkBase) []walkCase {
	q, err := sgxquote.Parse(b.quote)
	if err != nil {
		t.Fatal(err)
	}
	fake := impostor(t, b.root)
	leaf, ca, root, signer := b.leaf, b.pckCA, b.root, b.tcbSigner
	canonical := pemOf(leaf, ca, root)
	shapes := []struct {
		name string
		data []byte
	}{
		{"certs: as given, no trailing NUL", canonical},
		{"certs: reordered CA leaf root", pemOf(ca, leaf, root)},
		{"certs: reordered leaf root CA", pemOf(leaf, root, ca)},
		{"certs: leaf duplicated", pemOf(leaf, leaf, ca, root)},
		{"certs: CA duplicated", pemOf(leaf, ca, ca, root)},
		{"certs: root duplicated", pemOf(leaf, ca, root, root)},
		{"certs: root missing", pemOf(leaf, ca)},
		{"certs: CA missing", pemOf(leaf, root)},
		{"certs: leaf only", pemOf(leaf)},
		{"certs: TCB signing certificate appended", pemOf(leaf, ca, root, signer)},
		{"certs: TCB signing certificate for the root", pemOf(leaf, ca, signer)},
		{"certs: impostor root (same subject, other key) for the root", pemOf(leaf, ca, fake)},
		{"certs: impostor root appended", pemOf(leaf, ca, root, fake)},
		{"certs: impostor root before the root", pemOf(leaf, ca, fake, root)},
		{"framing: CRLF line ends", reframe(canonical, 64, "\r\n")},
		{"framing: 76-character lines", reframe(canonical, 76, "\n")},
		{"framing: blank line between blocks", bytes.Replace(canonical, []byte("-----\n-----BEGIN"), []byte("-----\n\n-----BEGIN"), 1)},
		{"framing: text before the first block", append([]byte("PCK chain\n"), canonical...)},
		{"framing: text after the last block", append(slices.Clone(canonical), "end\n"...)},
		{"framing: two trailing NULs", append(slices.Clone(canonical), 0, 0)},
		{"framing: no final newline", canonical[:len(canonical)-1]},
		{"framing: PEM header line", bytes.Replace(canonical, []byte("CERTIFICATE-----\nMII"), []byte("CERTIFICATE-----\nComment: x\n\nMII"), 1)},
		{"framing: X509 CERTIFICATE blocks", bytes.ReplaceAll(canonical, []byte(" CERTIFICATE-----"), []byte(" X509 CERTIFICATE-----"))},
		{"framing: empty", nil},
	}
	var cases []walkCase
	for _, s := range shapes {
		q2 := *q
		q2.CertData = s.data
		raw, err := q2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, b.newCase(t, s.name, raw, b.col))
	}
	return cases
}

// collateralWalk flips every byte of each issuer chain, and rebuilds the
// chains in wrong shapes.
func collateralWalk(t *testing.T, b *walkBase) []walkCase {
	var cases []walkCase
	fields := []struct {
		name string
		get  func(*dcap.Collateral) *[]byte
	}{
		{"TCB info issuer chain", func(c *dcap.Collateral) *[]byte { return &c.TCBInfoIssuerChain }},
		{"QE identity issuer chain", func(c *dcap.Collateral) *[]byte { return &c.QEIdentityIssuerChain }},
		{"PCK CRL issuer chain", func(c *dcap.Collateral) *[]byte { return &c.PCKCRLIssuerChain }},
	}
	fake := impostor(t, b.root)
	for _, f := range fields {
		orig := *f.get(b.col)
		if orig == nil {
			continue
		}
		with := func(name string, data []byte) {
			col := *b.col
			*f.get(&col) = data
			cases = append(cases, b.newCase(t, f.name+": "+name, b.quote, &col))
		}
		for i := 0; i < len(orig); i += walkStep() {
			for _, mask := range []byte{0x01, 0x80} {
				m := slices.Clone(orig)
				m[i] ^= mask
				with(fmt.Sprintf("byte %d ^ %#02x", i, mask), m)
			}
		}
		first := b.tcbSigner
		if f.name == "PCK CRL issuer chain" {
			first = b.pckCA
		}
		with("first certificate only", pemOf(first))
		with("first certificate and an impostor root", pemOf(first, fake))
		with("impostor root appended", pemOf(first, b.root, fake))
		with("extra certificate appended", pemOf(first, b.root, b.leaf))
		with("root duplicated", pemOf(first, b.root, b.root))
		with("reordered", pemOf(b.root, first))
		with("PCK CA inserted", pemOf(first, b.pckCA, b.root))
		with("CRLF line ends", reframe(orig, 64, "\r\n"))
		with("trailing NUL", append(slices.Clone(orig), 0))
		with("text after the last block", append(slices.Clone(orig), "x\n"...))
	}
	return cases
}

// walkWire is a case as verify.js reads it: what differs from its base.
type walkWire struct {
	Base       int               `json:"base"`
	Quote      *string           `json:"quote,omitempty"`
	Flip       []int             `json:"flip,omitempty"` // [offset, mask]
	Collateral map[string]string `json:"collateral,omitempty"`
}

type walkRequest struct {
	Bases []qvlCase  `json:"bases"`
	Cases []walkWire `json:"cases"`
}

// runQVLParallel splits cases across n node processes.
func runQVLParallel(t *testing.T, bases []*walkBase, cases []walkCase, n int) []qvlResult {
	var req walkRequest
	index := map[*walkBase]int{}
	for i, b := range bases {
		req.Bases = append(req.Bases, caseOf(t, b.name, b.quote, b.root.Raw, b.col, b.now, nil))
		index[b] = i
	}
	wires := make([]walkWire, len(cases))
	for i, c := range cases {
		w := walkWire{Base: index[c.base]}
		if c.flip != nil {
			w.Flip = c.flip
		} else if !bytes.Equal(c.raw, c.base.quote) {
			q := hex.EncodeToString(c.raw)
			w.Quote = &q
		}
		set := func(k string, v []byte) {
			if w.Collateral == nil {
				w.Collateral = map[string]string{}
			}
			w.Collateral[k] = string(v)
		}
		if !bytes.Equal(c.col.TCBInfoIssuerChain, c.base.col.TCBInfoIssuerChain) {
			set("tcb_info_issuer_chain", c.col.TCBInfoIssuerChain)
		}
		if !bytes.Equal(c.col.QEIdentityIssuerChain, c.base.col.QEIdentityIssuerChain) {
			set("qe_identity_issuer_chain", c.col.QEIdentityIssuerChain)
		}
		wires[i] = w
	}
	out := make([]qvlResult, len(cases))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	size := (len(cases) + n - 1) / n
	for lo := 0; lo < len(cases); lo += size {
		hi := min(lo+size, len(cases))
		part := walkRequest{Bases: req.Bases, Cases: wires[lo:hi]}
		wg.Add(1)
		go func(lo int) {
			defer wg.Done()
			res, err := runQVLRequest(part, hi-lo)
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
				return
			}
			copy(out[lo:], res)
		}(lo)
	}
	wg.Wait()
	if failed != nil {
		t.Error(failed)
		return nil
	}
	return out
}
