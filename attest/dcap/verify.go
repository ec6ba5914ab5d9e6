package dcap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// Options configure a Verifier. Roots and Collateral are required: there
// is no default that silently trusts something.
type Options struct {
	// Roots are the trusted root CAs. Use []*x509.Certificate{IntelRoot()}
	// for real SGX; a simulated platform's root for simulation.
	Roots []*x509.Certificate
	// Collateral fetches TCB info, QE identity and CRLs.
	Collateral Getter
	// Now returns the verification time; nil means time.Now.
	Now func() time.Time
	// RequireCRLs fails verification when the collateral lacks the root CA
	// CRL or the PCK CRL. Without it, CRLs are checked when present.
	RequireCRLs bool
}

// Verifier verifies SGX ECDSA quotes v3 (DCAP). It is safe for concurrent
// use.
type Verifier struct {
	opts Options
	pool *x509.CertPool
	memo memo
}

// New returns a Verifier, or an error if Options lack roots or collateral.
func New(opts Options) (*Verifier, error) {
	if len(opts.Roots) == 0 {
		return nil, ErrNoRoots
	}
	if opts.Collateral == nil {
		return nil, errors.New("dcap: no collateral source configured")
	}
	pool := x509.NewCertPool()
	for _, r := range opts.Roots {
		if r == nil {
			return nil, ErrNoRoots
		}
		pool.AddCert(r)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Verifier{opts: opts, pool: pool}, nil
}

var _ attest.Verifier = (*Verifier)(nil)

// Verify checks that quote is genuine and returns what it attests. The
// steps, each failing with a *Error naming it:
//
//  1. parse (sgxquote.Parse: version 3, ECDSA-256, SGX, exact lengths);
//  2. the PCK chain in the certification data verifies to a trusted root,
//     every certificate valid at the verification time;
//  3. CRLs, when present (or required): the PCK CA is not on the root CA
//     CRL, the PCK leaf is not on the PCK CRL, each CRL signed by its
//     issuer and current;
//  4. the QE report is signed by the PCK leaf key;
//  5. QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zeros;
//  6. the ISV report (header and body) is signed by the attestation key;
//  7. TCB info: signature by a non-CA certificate chaining to the same
//     roots, id SGX, version 3, FMSPC and PCE-ID equal to the PCK
//     certificate's, current; the platform level is the first whose 16
//     component SVNs and PCESVN are all ≤ the PCK certificate's;
//  8. QE identity: signature, id QE, version 2, current; MISCSELECT and
//     ATTRIBUTES under their masks, MRSIGNER and ISVPRODID equal; the QE
//     level is the first whose ISVSVN ≤ the QE's;
//  9. the status is the worse of the two (the rule @phala/dcap-qvl
//     follows), advisory ids are their union, and Revoked is an error.
//
// Verify applies no policy: the caller checks the Report with attest.Policy.
func (v *Verifier) Verify(ctx context.Context, quote []byte) (*attest.Report, error) {
	now := v.opts.Now()
	q, err := sgxquote.Parse(quote)
	if err != nil {
		return nil, &Error{Step: StepParse, Err: err}
	}

	// 2. PCK chain.
	if q.CertDataType != sgxquote.CertDataPCKChain {
		return nil, fail(StepPCKChain, "certification data type %d, want %d (PEM PCK chain)", q.CertDataType, sgxquote.CertDataPCKChain)
	}
	chain, err := v.verifyExactChain("PCK chain", q.CertData, pckRoles, true, now)
	if err != nil {
		return nil, &Error{Step: StepPCKChain, Err: err}
	}
	leaf, pckCA, root := chain[0], chain[1], chain[2]
	leafKey, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || leafKey.Curve != elliptic.P256() {
		return nil, fail(StepPCKChain, "PCK leaf key is not ECDSA P-256")
	}
	ext, err := ParsePCKExtensions(leaf)
	if err != nil {
		return nil, &Error{Step: StepPCKChain, Err: err}
	}
	var ca CA
	switch cn := pckCA.Subject.CommonName; {
	case strings.Contains(cn, "Processor"):
		ca = CAProcessor
	case strings.Contains(cn, "Platform"):
		ca = CAPlatform
	default:
		return nil, fail(StepPCKChain, "PCK CA %q is neither a Processor nor a Platform CA", cn)
	}

	col, err := v.opts.Collateral.GetCollateral(ctx, ext.FMSPC, ca)
	if err != nil {
		return nil, &Error{Step: StepCollateral, Err: err}
	}

	// 3. CRLs.
	if err := v.checkCRLs(col, root, pckCA, leaf, now); err != nil {
		return nil, &Error{Step: StepCRL, Err: err}
	}

	// 4. QE report signature.
	// The QE report is the same in every quote of a platform, so its
	// signature check is remembered like the collateral's.
	qeBody := q.QEReport.Marshal(nil)
	if !v.verifyDoc(leafKey, qeBody, q.QESignature[:]) {
		return nil, fail(StepQESignature, "QE report signature does not verify with the PCK key")
	}

	// 5. QE report data binds the attestation key.
	h := sha256.New()
	h.Write(q.AttestationKey[:])
	h.Write(q.QEAuthData)
	want := h.Sum(nil)
	if subtle.ConstantTimeCompare(want, q.QEReport.ReportData[:32]) != 1 {
		return nil, fail(StepQEReportData, "QE report data is not SHA-256(attestation key ‖ auth data)")
	}
	if !allZero(q.QEReport.ReportData[32:]) {
		return nil, fail(StepQEReportData, "QE report data bytes 32..63 are not zero")
	}

	// 6. ISV report signature.
	attKey, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.AttestationKey[:]...))
	if err != nil {
		return nil, fail(StepISVSignature, "attestation key is not a P-256 point: %v", err)
	}
	if !verifyRaw(attKey, q.SignedBytes(), q.ISVSignature[:]) {
		return nil, fail(StepISVSignature, "ISV report signature does not verify with the attestation key")
	}

	// 7. TCB info.
	ti, err := v.verifyTCBInfo(col, root, now)
	if err != nil {
		return nil, &Error{Step: StepTCBInfo, Err: err}
	}
	if !strings.EqualFold(ti.FMSPC, hex.EncodeToString(ext.FMSPC[:])) {
		return nil, fail(StepTCBInfo, "FMSPC %s, but the PCK certificate says %x", ti.FMSPC, ext.FMSPC)
	}
	if !strings.EqualFold(ti.PCEID, hex.EncodeToString(ext.PCEID[:])) {
		return nil, fail(StepTCBInfo, "PCE-ID %s, but the PCK certificate says %x", ti.PCEID, ext.PCEID)
	}
	platIdx, err := MatchTCBLevel(ti, ext)
	if err != nil {
		return nil, &Error{Step: StepTCBInfo, Err: err}
	}
	platLevel := &ti.TCBLevels[platIdx]

	// 8. QE identity.
	qi, err := v.verifyQEIdentity(col, root, now)
	if err != nil {
		return nil, &Error{Step: StepQEIdentity, Err: err}
	}
	qeStatus, qeAdvisories, err := matchQEIdentity(qi, &q.QEReport)
	if err != nil {
		return nil, &Error{Step: StepQEIdentity, Err: err}
	}

	// 9. Status.
	platStatus := attest.TCBStatus(platLevel.TCBStatus)
	if !platStatus.Known() {
		return nil, fail(StepTCBStatus, "unknown platform TCB status %q", platLevel.TCBStatus)
	}
	status := attest.Worse(platStatus, qeStatus)
	advisories := union(platLevel.AdvisoryIDs, qeAdvisories)
	if status == attest.Revoked {
		return nil, &Error{Step: StepTCBStatus, Err: fmt.Errorf("%w: TCB status Revoked (platform %s, QE %s)", ErrRevoked, platStatus, qeStatus)}
	}

	expiry := ti.NextUpdate
	if qi.NextUpdate.Before(expiry) {
		expiry = qi.NextUpdate
	}
	body := &q.Body
	return &attest.Report{
		MREnclave:        body.MREnclave,
		MRSigner:         body.MRSigner,
		ISVProdID:        body.ISVProdID,
		ISVSVN:           body.ISVSVN,
		Attributes:       slices.Clone(body.Attributes[:]),
		Debug:            body.Debug(),
		ReportData:       slices.Clone(body.ReportData[:]),
		TCBStatus:        status,
		AdvisoryIDs:      advisories,
		FMSPC:            slices.Clone(ext.FMSPC[:]),
		PlatformStatus:   platStatus,
		QEStatus:         qeStatus,
		CollateralExpiry: expiry,
		Simulated:        strings.Contains(root.Subject.String(), SimulatedMarker),
		RootSubject:      root.Subject.String(),
	}, nil
}

func (v *Verifier) checkCRLs(col *Collateral, root, pckCA, leaf *x509.Certificate, now time.Time) error {
	if v.opts.RequireCRLs && (col.RootCACRL == nil || col.PCKCRL == nil) {
		return errors.New("CRLs are required and the collateral lacks the root CA CRL or the PCK CRL")
	}
	if col.RootCACRL != nil {
		if err := v.checkCRL("root CA CRL", col.RootCACRL, root, pckCA, now); err != nil {
			return err
		}
	}
	if col.PCKCRL != nil {
		if err := v.checkCRL("PCK CRL", col.PCKCRL, pckCA, leaf, now); err != nil {
			return err
		}
	}
	// PCS sends the PCK CRL's issuer chain beside it. The CRL is checked
	// against the quote's own PCK CA above; a chain that names another CA
	// or root is refused rather than ignored.
	if col.PCKCRLIssuerChain != nil {
		const name = "PCK CRL issuer chain"
		chain, err := v.verifyExactChain(name, col.PCKCRLIssuerChain, crlRoles, false, now)
		if err != nil {
			return err
		}
		if !bytes.Equal(chain[0].Raw, pckCA.Raw) {
			return &ChainError{Chain: name, Index: 1, Role: crlRoles[0], Err: fmt.Errorf("%w: %q is not the PCK CA of the quote's chain", ErrChainShape, chain[0].Subject.CommonName)}
		}
		if !bytes.Equal(chain[1].Raw, root.Raw) {
			return &ChainError{Chain: name, Index: 2, Role: crlRoles[1], Err: fmt.Errorf("%w: not the root of the quote's PCK chain", ErrUntrustedRoot)}
		}
	}
	return nil
}

// checkCRL parses a DER CRL, checks it is signed by issuer and current at
// now, and fails if subject is on it.
func (v *Verifier) checkCRL(name string, der []byte, issuer, subject *x509.Certificate, now time.Time) error {
	key := memoKey("crl", der, issuer.Raw)
	var crl *x509.RevocationList
	if c, ok := v.memo.get(key, now); ok {
		crl = c.(*x509.RevocationList)
	} else {
		var err error
		if crl, err = x509.ParseRevocationList(der); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%s is not signed by %q: %v", name, issuer.Subject.CommonName, err)
		}
		// The signature holds forever; dates are checked below on every call.
		v.memo.put(key, crl, time.Time{}, maxTime)
	}
	if now.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && now.After(crl.NextUpdate)) {
		return fmt.Errorf("%w: %s valid from %s to %s", ErrExpired, name, crl.ThisUpdate.Format(time.RFC3339), crl.NextUpdate.Format(time.RFC3339))
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(subject.SerialNumber) == 0 {
			return fmt.Errorf("%w: %q (serial %x) is on the %s", ErrRevoked, subject.Subject.CommonName, subject.SerialNumber, name)
		}
	}
	return nil
}

// verifySigner verifies a PCS issuer chain: exactly [signing certificate,
// root], the root the same as the quote's, the signer valid now, not a
// CA, and not on the root CA CRL when one is given.
func (v *Verifier) verifySigner(name string, chainPEM []byte, root *x509.Certificate, col *Collateral, now time.Time) (*ecdsa.PublicKey, error) {
	chain, err := v.verifyExactChain(name, chainPEM, signerRoles, false, now)
	if err != nil {
		return nil, err
	}
	signer := chain[0]
	if !bytes.Equal(chain[1].Raw, root.Raw) {
		return nil, &ChainError{Chain: name, Index: 2, Role: "root", Err: fmt.Errorf("%w: %q is trusted, but it is not the root of the quote's PCK chain", ErrUntrustedRoot, chain[1].Subject.CommonName)}
	}
	if col.RootCACRL != nil {
		if err := v.checkCRL("root CA CRL", col.RootCACRL, root, signer, now); err != nil {
			return nil, err
		}
	}
	key, ok := signer.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("signing key is not ECDSA P-256")
	}
	return key, nil
}

var maxTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// verifyDoc checks a signature over a document that recurs across quotes
// (collateral, the QE report), remembering successes.
func (v *Verifier) verifyDoc(key *ecdsa.PublicKey, signed, sig []byte) bool {
	pub, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return false
	}
	_, err = memoized(&v.memo, memoKey("doc", pub, signed, sig), func() (bool, error) {
		if !verifyRaw(key, signed, sig) {
			return false, errors.New("bad signature")
		}
		return true, nil
	})
	return err == nil
}

func checkDates(issue, next, now time.Time) error {
	if now.Before(issue) {
		return fmt.Errorf("%w: issued %s, after the verification time %s", ErrExpired, issue.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if now.After(next) {
		return fmt.Errorf("%w: next update was due %s, before the verification time %s", ErrExpired, next.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return nil
}

func (v *Verifier) verifyTCBInfo(col *Collateral, root *x509.Certificate, now time.Time) (*TCBInfo, error) {
	pd, err := memoized(&v.memo, memoKey("tcbinfo", col.TCBInfo), func() (parsedDoc[TCBInfo], error) {
		ti, signed, sig, err := parseTCBInfoBody(col.TCBInfo)
		return parsedDoc[TCBInfo]{ti, signed, sig}, err
	})
	if err != nil {
		return nil, err
	}
	ti, signed, sig := pd.doc, pd.signed, pd.sig
	key, err := v.verifySigner("TCB info issuer chain", col.TCBInfoIssuerChain, root, col, now)
	if err != nil {
		return nil, err
	}
	if !v.verifyDoc(key, signed, sig) {
		return nil, errors.New("signature does not verify over tcbInfo")
	}
	if ti.ID != "SGX" || ti.Version != 3 {
		return nil, fmt.Errorf("id %q version %d, want SGX version 3", ti.ID, ti.Version)
	}
	if err := checkDates(ti.IssueDate, ti.NextUpdate, now); err != nil {
		return nil, err
	}
	return ti, nil
}

func (v *Verifier) verifyQEIdentity(col *Collateral, root *x509.Certificate, now time.Time) (*QEIdentity, error) {
	pd, err := memoized(&v.memo, memoKey("qeidentity", col.QEIdentity), func() (parsedDoc[QEIdentity], error) {
		qi, signed, sig, err := parseQEIdentityBody(col.QEIdentity)
		return parsedDoc[QEIdentity]{qi, signed, sig}, err
	})
	if err != nil {
		return nil, err
	}
	qi, signed, sig := pd.doc, pd.signed, pd.sig
	key, err := v.verifySigner("QE identity issuer chain", col.QEIdentityIssuerChain, root, col, now)
	if err != nil {
		return nil, err
	}
	if !v.verifyDoc(key, signed, sig) {
		return nil, errors.New("signature does not verify over enclaveIdentity")
	}
	if qi.ID != "QE" || qi.Version != 2 {
		return nil, fmt.Errorf("id %q version %d, want QE version 2", qi.ID, qi.Version)
	}
	if err := checkDates(qi.IssueDate, qi.NextUpdate, now); err != nil {
		return nil, err
	}
	return qi, nil
}

// MatchTCBLevel returns the index in ti.TCBLevels of the platform's TCB
// level: the first whose 16 component SVNs and PCESVN are all ≤ those of
// the PCK certificate. Verify uses it; tools that show the levels table
// use it to highlight the same level.
func MatchTCBLevel(ti *TCBInfo, ext *PCKExtensions) (int, error) {
	for i := range ti.TCBLevels {
		lvl := &ti.TCBLevels[i]
		comps := lvl.TCB.SGXTCBComponents
		if len(comps) != 16 {
			return -1, fmt.Errorf("TCB level %d has %d components, want 16", i, len(comps))
		}
		ok := lvl.TCB.PCESVN <= int(ext.PCESVN)
		for j := 0; ok && j < 16; j++ {
			ok = comps[j].SVN <= int(ext.CompSVN[j])
		}
		if ok {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no TCB level matches the platform (component SVNs %v, PCESVN %d): status unknown", ext.CompSVN, ext.PCESVN)
}

func matchQEIdentity(qi *QEIdentity, qe *sgxquote.ReportBody) (attest.TCBStatus, []string, error) {
	misc, err1 := hex.DecodeString(qi.MiscSelect)
	miscMask, err2 := hex.DecodeString(qi.MiscSelectMask)
	attr, err3 := hex.DecodeString(qi.Attributes)
	attrMask, err4 := hex.DecodeString(qi.AttributesMask)
	mrsigner, err5 := hex.DecodeString(qi.MRSigner)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || len(misc) != 4 || len(miscMask) != 4 || len(attr) != 16 || len(attrMask) != 16 || len(mrsigner) != 32 {
		return "", nil, errors.New("malformed miscselect, attributes or mrsigner")
	}
	// MISCSELECT is written as a big-endian hex number; the report holds
	// it as a little-endian u32.
	if qe.MiscSelect&binary.BigEndian.Uint32(miscMask) != binary.BigEndian.Uint32(misc) {
		return "", nil, fmt.Errorf("QE MISCSELECT %08x does not match %s under mask %s", qe.MiscSelect, qi.MiscSelect, qi.MiscSelectMask)
	}
	// ATTRIBUTES are compared as the bytes of the report.
	for i := range attr {
		if qe.Attributes[i]&attrMask[i] != attr[i] {
			return "", nil, fmt.Errorf("QE ATTRIBUTES %x do not match %s under mask %s", qe.Attributes, qi.Attributes, qi.AttributesMask)
		}
	}
	if !bytes.Equal(mrsigner, qe.MRSigner[:]) {
		return "", nil, fmt.Errorf("QE MRSIGNER %x, want %s", qe.MRSigner, qi.MRSigner)
	}
	if int(qe.ISVProdID) != qi.ISVProdID {
		return "", nil, fmt.Errorf("QE ISVPRODID %d, want %d", qe.ISVProdID, qi.ISVProdID)
	}
	for _, lvl := range qi.TCBLevels {
		if lvl.TCB.ISVSVN <= int(qe.ISVSVN) {
			s := attest.TCBStatus(lvl.TCBStatus)
			if s != attest.UpToDate && s != attest.OutOfDate && s != attest.Revoked {
				return "", nil, fmt.Errorf("unknown QE TCB status %q", lvl.TCBStatus)
			}
			return s, lvl.AdvisoryIDs, nil
		}
	}
	return "", nil, fmt.Errorf("no QE TCB level matches ISVSVN %d: status unknown", qe.ISVSVN)
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func allZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return acc == 0
}
