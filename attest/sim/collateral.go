package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

func (p *Platform) tcbInfoBody(issued, next time.Time) ([]byte, error) {
	level := func(svn [16]uint8, pcesvn int, status string, advisories []string) dcap.TCBLevel {
		var l dcap.TCBLevel
		for _, s := range svn {
			l.TCB.SGXTCBComponents = append(l.TCB.SGXTCBComponents, dcap.TCBComponent{SVN: int(s)})
		}
		l.TCB.PCESVN = pcesvn
		l.TCBDate = issued.Format(time.RFC3339)
		l.TCBStatus = status
		l.AdvisoryIDs = advisories
		return l
	}
	ti := dcap.TCBInfo{
		ID: "SGX", Version: 3, IssueDate: issued, NextUpdate: next,
		FMSPC: strings.ToUpper(hex.EncodeToString(FMSPC[:])), PCEID: hex.EncodeToString(PCEID[:]),
		TCBType: 0, TCBEvaluationDataNumber: 1,
		TCBLevels: []dcap.TCBLevel{
			level(upToDateSVN, upToDatePCESVN, "UpToDate", nil),
			level(outOfDateSVN, outOfDatePCESVN, "OutOfDate", []string{OutOfDateAdvisory}),
		},
	}
	signed, err := json.Marshal(ti)
	if err != nil {
		return nil, err
	}
	return dcap.SignBody("tcbInfo", signed, p.tcbKey)
}

func (p *Platform) qeIdentityBody(issued, next time.Time) ([]byte, error) {
	level := func(isvsvn int, status string, advisories []string) dcap.QETCBLevel {
		var l dcap.QETCBLevel
		l.TCB.ISVSVN = isvsvn
		l.TCBDate, l.TCBStatus, l.AdvisoryIDs = issued.Format(time.RFC3339), status, advisories
		return l
	}
	qi := dcap.QEIdentity{
		ID: "QE", Version: 2, IssueDate: issued, NextUpdate: next, TCBEvaluationDataNumber: 1,
		MiscSelect: "00000000", MiscSelectMask: "FFFFFFFF",
		Attributes: "11000000000000000000000000000000", AttributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
		MRSigner: strings.ToUpper(hex.EncodeToString(qeMRSigner[:])), ISVProdID: qeISVProdID,
		TCBLevels: []dcap.QETCBLevel{level(qeISVSVN, "UpToDate", nil), level(0, "OutOfDate", []string{OutOfDateAdvisory})},
	}
	signed, err := json.Marshal(qi)
	if err != nil {
		return nil, err
	}
	return dcap.SignBody("enclaveIdentity", signed, p.tcbKey)
}

func crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, issued, next time.Time, revoked []*x509.Certificate) ([]byte, error) {
	tmpl := &x509.RevocationList{Number: big.NewInt(issued.Unix()), ThisUpdate: issued, NextUpdate: next}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: issued})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		return nil, fmt.Errorf("sim: CRL of %q: %w", issuer.Subject.CommonName, err)
	}
	return der, nil
}
