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
	type level struct {
		TCB struct {
			ISVSVN int `json:"isvsvn"`
		} `json:"tcb"`
		TCBDate     string   `json:"tcbDate"`
		TCBStatus   string   `json:"tcbStatus"`
		AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
	}
	up := level{TCBDate: issued.Format(time.RFC3339), TCBStatus: "UpToDate"}
	up.TCB.ISVSVN = qeISVSVN
	old := level{TCBDate: issued.Format(time.RFC3339), TCBStatus: "OutOfDate", AdvisoryIDs: []string{OutOfDateAdvisory}}
	qi := struct {
		ID                      string    `json:"id"`
		Version                 int       `json:"version"`
		IssueDate               time.Time `json:"issueDate"`
		NextUpdate              time.Time `json:"nextUpdate"`
		TCBEvaluationDataNumber int       `json:"tcbEvaluationDataNumber"`
		MiscSelect              string    `json:"miscselect"`
		MiscSelectMask          string    `json:"miscselectMask"`
		Attributes              string    `json:"attributes"`
		AttributesMask          string    `json:"attributesMask"`
		MRSigner                string    `json:"mrsigner"`
		ISVProdID               int       `json:"isvprodid"`
		TCBLevels               []level   `json:"tcbLevels"`
	}{
		ID: "QE", Version: 2, IssueDate: issued, NextUpdate: next, TCBEvaluationDataNumber: 1,
		MiscSelect: "00000000", MiscSelectMask: "FFFFFFFF",
		Attributes: "11000000000000000000000000000000", AttributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
		MRSigner: strings.ToUpper(hex.EncodeToString(qeMRSigner[:])), ISVProdID: qeISVProdID,
		TCBLevels: []level{up, old},
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
