package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

// Files of a platform directory.
const (
	FileRootCA    = "root_ca.pem"   // the simulated root: trust this to accept the platform's quotes
	FilePCKChain  = "pck_chain.pem" // PCK leaf ‖ PCK CA ‖ root, as quotes carry it
	DirCollateral = "collateral"    // PCS layout, see package pcs
	DirPrivate    = "private"       // keys, mode 0700; files 0600
	FileInfo      = "platform.json" // public facts: FMSPC, MRSIGNER, TCB
)

const (
	keyRoot      = "root_ca.key"
	keyPCKCA     = "pck_ca.key"
	keyPCK       = "pck.key"
	keyTCB       = "tcb_signing.key"
	keyQE        = "qe_attestation.key"
	keySigner    = "enclave_signer.key"
	fileSecret   = "platform_secret"
	certTCB      = "tcb_signing.pem"
	certPCKCA    = "pck_ca.pem"
	secretPEM    = "SIMULATED PLATFORM SECRET"
	rootCN       = dcap.SimulatedMarker + " SGX Root CA"
	organization = "Shared Enclave simulated platform (" + dcap.SimulatedMarker + ", not Intel)"
)

// Simulated platform constants. The QE vendor id is Intel's, so quotes are
// shaped exactly like real ones.
var (
	FMSPC        = [6]byte{0x53, 0x49, 0x4D, 0x00, 0x00, 0x01} // "SIM" 00 00 01
	PCEID        = [2]byte{0x00, 0x00}
	qeVendorID   = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}
	qeMRSigner   = sha256.Sum256([]byte("Shared Enclave simulated quoting enclave signer"))
	qeMREnclave  = sha256.Sum256([]byte("Shared Enclave simulated quoting enclave"))
	upToDateSVN  = [16]uint8{5, 5, 3, 3, 255, 255, 1}
	outOfDateSVN = [16]uint8{4, 4, 3, 3, 255, 255, 0}
)

const (
	upToDatePCESVN  = 13
	outOfDatePCESVN = 11
	qeISVSVN        = 8
	qeISVProdID     = 1
	// OutOfDateAdvisory is the advisory id the simulated TCB info gives
	// its OutOfDate level.
	OutOfDateAdvisory = "SIM-SA-00001"
)

// InitOptions configure Init. The zero value makes an up-to-date
// platform with collateral valid for a year from now.
type InitOptions struct {
	Rand io.Reader // nil: crypto/rand
	Now  time.Time // zero: time.Now()
	// CollateralValidity is how long TCB info, QE identity and CRLs stay
	// current (Intel: 30 days). Zero: 365 days.
	CollateralValidity time.Duration
	// OutOfDate gives the PCK certificate the SVNs of the TCB info's
	// OutOfDate level, as an unpatched machine would have.
	OutOfDate bool
}

// Platform is a simulated SGX platform: keys and certificates shaped like
// Intel's, under a root marked SIMULATED.
type Platform struct {
	dir string

	root, pckCA, pck, tcbCert         *x509.Certificate
	rootKey, pckCAKey, pckKey, tcbKey *ecdsa.PrivateKey
	qeKey, signerKey                  *ecdsa.PrivateKey
	secret                            []byte
	certData                          []byte
	ext                               *dcap.PCKExtensions
	qeReport                          sgxquote.ReportBody
	qeSignature                       [64]byte
	authData                          []byte
	mrsigner                          attest.Hash32
}

// ErrExists is returned by Init when the directory already holds a platform.
var ErrExists = errors.New("sim: directory already holds a simulated platform")

// Init creates a new simulated platform in dir. dir must not exist or be
// empty. The platform is written to a temporary directory beside dir and
// renamed into place, so a failed Init leaves nothing behind.
func Init(dir string, opts InitOptions) (*Platform, error) {
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.CollateralValidity == 0 {
		opts.CollateralValidity = 365 * 24 * time.Hour
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%w: %s is not empty", ErrExists, dir)
	}
	p, err := generate(opts)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".sim-init-*")
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := p.write(tmp, opts); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	_ = os.Remove(dir) // an empty directory may stand in the way
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	p.dir = dir
	return p, nil
}

func genKey(r io.Reader) (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), r)
}

func serial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	b[0] |= 0x01
	return new(big.Int).SetBytes(b), nil
}

func issue(r io.Reader, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	sn, err := serial(r)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = sn
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(r, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("sim: issuing %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func name(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{organization}, Locality: []string{"Nowhere"}, Country: []string{"XX"}}
}

func generate(opts InitOptions) (*Platform, error) {
	r := opts.Rand
	p := &Platform{}
	var err error
	for _, k := range []**ecdsa.PrivateKey{&p.rootKey, &p.pckCAKey, &p.pckKey, &p.tcbKey, &p.qeKey, &p.signerKey} {
		if *k, err = genKey(r); err != nil {
			return nil, fmt.Errorf("sim: generating keys: %w", err)
		}
	}
	p.secret = make([]byte, 32)
	if _, err := io.ReadFull(r, p.secret); err != nil {
		return nil, err
	}
	notBefore := opts.Now.Add(-time.Hour).UTC().Truncate(time.Second)
	notAfter := notBefore.AddDate(25, 0, 0)

	p.root, err = issue(r, &x509.Certificate{
		Subject: name(rootCN), NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, &p.rootKey.PublicKey, p.rootKey)
	if err != nil {
		return nil, err
	}
	p.pckCA, err = issue(r, &x509.Certificate{
		Subject: name(dcap.SimulatedMarker + " SGX PCK Processor CA"), NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.root, &p.pckCAKey.PublicKey, p.rootKey)
	if err != nil {
		return nil, err
	}
	p.tcbCert, err = issue(r, &x509.Certificate{
		Subject: name(dcap.SimulatedMarker + " SGX TCB Signing"), NotBefore: notBefore, NotAfter: notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}, p.root, &p.tcbKey.PublicKey, p.rootKey)
	if err != nil {
		return nil, err
	}

	ext := &dcap.PCKExtensions{CompSVN: upToDateSVN, PCESVN: upToDatePCESVN, PCEID: PCEID, FMSPC: FMSPC}
	if opts.OutOfDate {
		ext.CompSVN, ext.PCESVN = outOfDateSVN, outOfDatePCESVN
	}
	copy(ext.CPUSVN[:], ext.CompSVN[:])
	if _, err := io.ReadFull(r, ext.PPID[:]); err != nil {
		return nil, err
	}
	extDER, err := ext.Marshal()
	if err != nil {
		return nil, err
	}
	p.pck, err = issue(r, &x509.Certificate{
		Subject: name(dcap.SimulatedMarker + " SGX PCK Certificate"), NotBefore: notBefore, NotAfter: notBefore.AddDate(7, 0, 0),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions:       []pkix.Extension{{Id: dcap.OIDSGXExtensions, Value: extDER}},
	}, p.pckCA, &p.pckKey.PublicKey, p.pckCAKey)
	if err != nil {
		return nil, err
	}
	if err := p.derive(); err != nil {
		return nil, err
	}
	return p, nil
}

// derive computes what follows from the keys and certificates: the PCK
// chain as quotes carry it, the QE report and its signature, MRSIGNER.
func (p *Platform) derive() error {
	var err error
	if p.ext, err = dcap.ParsePCKExtensions(p.pck); err != nil {
		return err
	}
	var chain []byte
	for _, c := range []*x509.Certificate{p.pck, p.pckCA, p.root} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	p.certData = append(chain, 0) // Intel's QE ends the chain with a NUL
	p.authData = make([]byte, 32)
	for i := range p.authData {
		p.authData[i] = byte(i)
	}
	p.mrsigner = sha256.Sum256(elliptic.MarshalCompressed(elliptic.P256(), p.signerKey.X, p.signerKey.Y))

	qe := &p.qeReport
	copy(qe.CPUSVN[:], p.ext.CPUSVN[:])
	qe.Attributes[0] = sgxquote.AttrInit | sgxquote.AttrProvisionKey
	qe.MREnclave = qeMREnclave
	qe.MRSigner = qeMRSigner
	qe.ISVProdID = qeISVProdID
	qe.ISVSVN = qeISVSVN
	h := sha256.New()
	h.Write(p.attestationKey())
	h.Write(p.authData)
	copy(qe.ReportData[:32], h.Sum(nil))
	sig, err := dcap.SignRaw(p.pckKey, qe.Marshal(nil))
	if err != nil {
		return err
	}
	copy(p.qeSignature[:], sig)
	return nil
}

func (p *Platform) attestationKey() []byte {
	b := make([]byte, 64)
	p.qeKey.X.FillBytes(b[:32])
	p.qeKey.Y.FillBytes(b[32:])
	return b
}

// Dir returns the directory the platform lives in.
func (p *Platform) Dir() string { return p.dir }

// Root returns the simulated root CA certificate.
func (p *Platform) Root() *x509.Certificate { return p.root }

// Roots returns the root as dcap.Options wants it.
func (p *Platform) Roots() []*x509.Certificate { return []*x509.Certificate{p.root} }

// MRSigner is the MRSIGNER of every enclave this platform simulates: the
// SHA-256 of its enclave signing key (compressed P-256 point).
func (p *Platform) MRSigner() attest.Hash32 { return p.mrsigner }

// PCK returns the platform's PCK certificate.
func (p *Platform) PCK() *x509.Certificate { return p.pck }

// Collateral returns a getter over the platform's collateral directory.
func (p *Platform) Collateral() dcap.Getter { return pcs.Dir(filepath.Join(p.dir, DirCollateral)) }

// Verifier returns a dcap.Verifier that trusts this platform's root and
// reads its collateral; now may be nil.
func (p *Platform) Verifier(now func() time.Time) (*dcap.Verifier, error) {
	return dcap.New(dcap.Options{Roots: p.Roots(), Collateral: p.Collateral(), Now: now})
}

// Info is the public description written to platform.json.
type Info struct {
	Simulated  bool          `json:"simulated"`
	FMSPC      string        `json:"fmspc"`
	MRSigner   attest.Hash32 `json:"mrsigner"`
	PCESVN     uint16        `json:"pcesvn"`
	CompSVN    []int         `json:"tcb_component_svns"`
	RootSHA256 string        `json:"root_ca_sha256"`
}

func (p *Platform) info() Info {
	svn := make([]int, 16)
	for i, v := range p.ext.CompSVN {
		svn[i] = int(v)
	}
	sum := sha256.Sum256(p.root.Raw)
	return Info{
		Simulated: true, FMSPC: fmt.Sprintf("%X", p.ext.FMSPC), MRSigner: p.mrsigner,
		PCESVN: p.ext.PCESVN, CompSVN: svn, RootSHA256: fmt.Sprintf("%x", sum),
	}
}

func marshalInfo(i Info) ([]byte, error) {
	b, err := json.MarshalIndent(i, "", "  ")
	return append(b, '\n'), err
}
