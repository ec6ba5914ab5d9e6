package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
	"github.com/sharedenclave/sharedenclave/seal"
)

// Identity is what a simulated enclave claims to be.
type Identity struct {
	MREnclave attest.Hash32
	// MRSigner, when not zero, names another signer (a build signed with
	// another key); zero means the platform's own signing key, which the
	// default policy trusts.
	MRSigner  attest.Hash32
	ISVProdID uint16
	ISVSVN    uint16
	// Debug sets the DEBUG attribute, as `sgx.debug = true` would.
	Debug bool
}

// Quote returns a quote for an enclave with identity id over reportData,
// signed by the platform's quoting-enclave key: byte for byte an SGX
// ECDSA quote v3 with a PEM PCK chain.
func (p *Platform) Quote(id Identity, reportData [64]byte) ([]byte, error) {
	q := &sgxquote.Quote{
		Header: sgxquote.Header{
			Version: sgxquote.Version3, AttestationKeyType: sgxquote.AttestationKeyECDSA256,
			TEEType: sgxquote.TEETypeSGX, QESVN: qeISVSVN, PCESVN: p.ext.PCESVN, QEVendorID: qeVendorID,
		},
		QEReport:     p.qeReport,
		QESignature:  p.qeSignature,
		QEAuthData:   p.authData,
		CertDataType: sgxquote.CertDataPCKChain,
		CertData:     p.certData,
	}
	b := &q.Body
	copy(b.CPUSVN[:], p.ext.CPUSVN[:])
	b.Attributes[0] = sgxquote.AttrInit | sgxquote.AttrMode64Bit
	if id.Debug {
		b.Attributes[0] |= sgxquote.AttrDebug
	}
	b.Attributes[8] = 0x03 // XFRM: x87, SSE
	b.MREnclave = id.MREnclave
	b.MRSigner = p.mrsigner
	if id.MRSigner != (attest.Hash32{}) {
		b.MRSigner = id.MRSigner
	}
	b.ISVProdID = id.ISVProdID
	b.ISVSVN = id.ISVSVN
	b.ReportData = reportData
	copy(q.AttestationKey[:], p.attestationKey())
	sig, err := dcap.SignRaw(p.qeKey, q.SignedBytes())
	if err != nil {
		return nil, fmt.Errorf("sim: signing quote: %w", err)
	}
	copy(q.ISVSignature[:], sig)
	return q.Marshal()
}

// Attester returns an attest.Attester for an enclave with identity id.
func (p *Platform) Attester(id Identity) attest.Attester { return &attester{p: p, id: id} }

type attester struct {
	p  *Platform
	id Identity
}

func (a *attester) Quote(ctx context.Context, reportData [64]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return a.p.Quote(a.id, reportData)
}

// Simulated reports that quotes come from a simulated platform; callers
// find it by type assertion to show it in logs and metrics.
func (a *attester) Simulated() bool { return true }

var (
	exeOnce sync.Once
	exeHash attest.Hash32
	exeErr  error
)

// ExecutableMeasurement is the simulated MRENCLAVE of the running
// program: the SHA-256 of its executable file. (A real MRENCLAVE measures
// the enclave's pages and layout; the point here is that a different binary
// gets a different measurement.)
func ExecutableMeasurement() (attest.Hash32, error) {
	exeOnce.Do(func() {
		var path string
		path, exeErr = os.Executable()
		if exeErr != nil {
			return
		}
		exeHash, exeErr = FileMeasurement(path)
	})
	return exeHash, exeErr
}

// FileMeasurement is the SHA-256 of a file, the simulated MRENCLAVE of
// the program it holds.
func FileMeasurement(path string) (attest.Hash32, error) {
	var h attest.Hash32
	f, err := os.Open(path)
	if err != nil {
		return h, fmt.Errorf("sim: measuring %s: %w", path, err)
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, f); err != nil {
		return h, fmt.Errorf("sim: measuring %s: %w", path, err)
	}
	copy(h[:], d.Sum(nil))
	return h, nil
}

// SealRoot is the seal root of a simulated enclave on this platform,
// bound to bind (its MRENCLAVE, or MRSIGNER for the signer policy): the
// simulation's stand-in for the SGX seal key. It comes from the platform
// secret in DIR/private, so anyone who can read that directory can unseal:
// simulation protects nothing from the host.
func (p *Platform) SealRoot(bind attest.Hash32) (*seal.Root, error) {
	return seal.SimulatedRoot(p.secret, bind)
}
