package dcap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Collateral is what Intel PCS (or a PCCS) serves for one platform, as raw
// bytes: JSON bodies exactly as received, PEM chains, DER CRLs.
type Collateral struct {
	TCBInfo               []byte // {"tcbInfo": {...}, "signature": "hex"}
	TCBInfoIssuerChain    []byte // PEM: TCB signing certificate, root
	QEIdentity            []byte // {"enclaveIdentity": {...}, "signature": "hex"}
	QEIdentityIssuerChain []byte // PEM
	PCKCRL                []byte // DER, optional
	PCKCRLIssuerChain     []byte // PEM, optional
	RootCACRL             []byte // DER, optional
}

// CA names the PCK CA that issued a PCK certificate, as PCS names it in
// pckcrl?ca=….
type CA string

// The two PCK CAs.
const (
	CAProcessor CA = "processor"
	CAPlatform  CA = "platform"
)

// Getter fetches collateral for a platform.
type Getter interface {
	GetCollateral(ctx context.Context, fmspc [6]byte, ca CA) (*Collateral, error)
}

// TCBInfo is Intel's TCB info, version 3 (PCS v4).
type TCBInfo struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	IssueDate               time.Time  `json:"issueDate"`
	NextUpdate              time.Time  `json:"nextUpdate"`
	FMSPC                   string     `json:"fmspc"`
	PCEID                   string     `json:"pceId"`
	TCBType                 int        `json:"tcbType"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	TCBLevels               []TCBLevel `json:"tcbLevels"`
}

// TCBLevel is one entry of TCBInfo.TCBLevels.
type TCBLevel struct {
	TCB struct {
		SGXTCBComponents []TCBComponent `json:"sgxtcbcomponents"`
		PCESVN           int            `json:"pcesvn"`
	} `json:"tcb"`
	TCBDate     string   `json:"tcbDate"`
	TCBStatus   string   `json:"tcbStatus"`
	AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
}

// TCBComponent is one of the 16 SGX TCB components of a level.
type TCBComponent struct {
	SVN      int    `json:"svn"`
	Category string `json:"category,omitempty"`
	Type     string `json:"type,omitempty"`
}

// QEIdentity is Intel's enclave identity of the quoting enclave, version 2.
type QEIdentity struct {
	ID                      string       `json:"id"`
	Version                 int          `json:"version"`
	IssueDate               time.Time    `json:"issueDate"`
	NextUpdate              time.Time    `json:"nextUpdate"`
	TCBEvaluationDataNumber int          `json:"tcbEvaluationDataNumber"`
	MiscSelect              string       `json:"miscselect"`
	MiscSelectMask          string       `json:"miscselectMask"`
	Attributes              string       `json:"attributes"`
	AttributesMask          string       `json:"attributesMask"`
	MRSigner                string       `json:"mrsigner"`
	ISVProdID               int          `json:"isvprodid"`
	TCBLevels               []QETCBLevel `json:"tcbLevels"`
}

// QETCBLevel is one entry of QEIdentity.TCBLevels.
type QETCBLevel struct {
	TCB struct {
		ISVSVN int `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     string   `json:"tcbDate"`
	TCBStatus   string   `json:"tcbStatus"`
	AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
}

// signedBody splits a PCS JSON body into the exact bytes of the signed
// member and the signature (64 bytes, r ‖ s).
func signedBody(body []byte, member string) (signed []byte, sig []byte, err error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("trailing data after the JSON object")
	}
	signed, ok := m[member]
	if !ok {
		return nil, nil, fmt.Errorf("no %q member", member)
	}
	var sigHex string
	if err := json.Unmarshal(m["signature"], &sigHex); err != nil {
		return nil, nil, fmt.Errorf("no signature string: %v", err)
	}
	sig, err = hex.DecodeString(sigHex)
	if err != nil || len(sig) != 64 {
		return nil, nil, fmt.Errorf("signature is not 64 bytes of hex")
	}
	return signed, sig, nil
}

// SignBody builds a PCS-style body {"member": signed, "signature": hex}
// with signed signed by key. The simulated platform uses it; so do tests.
func SignBody(member string, signed []byte, key *ecdsa.PrivateKey) ([]byte, error) {
	sig, err := signRaw(key, signed)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"%s":`, member)
	b.Write(signed)
	fmt.Fprintf(&b, `,"signature":"%s"}`, hex.EncodeToString(sig))
	return b.Bytes(), nil
}

// signRaw returns an ECDSA-P256-SHA256 signature as r ‖ s (32 bytes each).
func signRaw(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// SignRaw is signRaw for packages that build quotes (the simulated
// platform): ECDSA-P256-SHA256 over msg, as r ‖ s.
func SignRaw(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) { return signRaw(key, msg) }

// verifyRaw checks an r ‖ s ECDSA-P256-SHA256 signature.
func verifyRaw(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// ParsePEMChain decodes concatenated PEM certificates. Anything after the
// last certificate other than white space and NUL bytes (Intel's quoting
// enclave ends its chain with a NUL) is an error, as is a non-certificate
// block.
func ParsePEMChain(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(strings.Trim(string(rest), " \t\r\n\x00")) != 0 {
		return nil, fmt.Errorf("%d bytes after the last certificate are not PEM", len(rest))
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	return certs, nil
}

func parseTCBInfoBody(body []byte) (*TCBInfo, []byte, []byte, error) {
	signed, sig, err := signedBody(body, "tcbInfo")
	if err != nil {
		return nil, nil, nil, err
	}
	var ti TCBInfo
	dec := json.NewDecoder(bytes.NewReader(signed))
	if err := dec.Decode(&ti); err != nil {
		return nil, nil, nil, fmt.Errorf("tcbInfo: %v", err)
	}
	return &ti, signed, sig, nil
}

func parseQEIdentityBody(body []byte) (*QEIdentity, []byte, []byte, error) {
	signed, sig, err := signedBody(body, "enclaveIdentity")
	if err != nil {
		return nil, nil, nil, err
	}
	var qi QEIdentity
	if err := json.Unmarshal(signed, &qi); err != nil {
		return nil, nil, nil, fmt.Errorf("enclaveIdentity: %v", err)
	}
	return &qi, signed, sig, nil
}

// ParseTCBInfo decodes a PCS TCB info body without checking its signature
// (for caches that need nextUpdate; Verify checks everything).
func ParseTCBInfo(body []byte) (*TCBInfo, error) {
	ti, _, _, err := parseTCBInfoBody(body)
	return ti, err
}

// ParseQEIdentity decodes a PCS QE identity body without checking its
// signature.
func ParseQEIdentity(body []byte) (*QEIdentity, error) {
	qi, _, _, err := parseQEIdentityBody(body)
	return qi, err
}
