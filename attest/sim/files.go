package sim

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
)

func certPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// write lays the platform out under dir (which exists and is empty).
func (p *Platform) write(dir string, opts InitOptions) error {
	priv := filepath.Join(dir, DirPrivate)
	col := filepath.Join(dir, DirCollateral)
	if err := os.Mkdir(priv, 0o700); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := os.Mkdir(col, 0o755); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	for name, k := range map[string]*ecdsa.PrivateKey{
		keyRoot: p.rootKey, keyPCKCA: p.pckCAKey, keyPCK: p.pckKey, keyTCB: p.tcbKey, keyQE: p.qeKey, keySigner: p.signerKey,
	} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(priv, name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(priv, fileSecret), pem.EncodeToMemory(&pem.Block{Type: secretPEM, Bytes: p.secret}), 0o600); err != nil {
		return err
	}
	info, err := marshalInfo(p.info())
	if err != nil {
		return err
	}
	files := map[string][]byte{
		filepath.Join(dir, FileRootCA):   certPEM(p.root),
		filepath.Join(dir, FilePCKChain): certPEM(p.pck, p.pckCA, p.root),
		filepath.Join(dir, FileInfo):     info,
	}
	for path, data := range files {
		if err := writeFile(path, data, 0o644); err != nil {
			return err
		}
	}
	for name, data := range map[string][]byte{certTCB: certPEM(p.tcbCert), certPCKCA: certPEM(p.pckCA)} {
		if err := writeFile(filepath.Join(priv, name), data, 0o600); err != nil {
			return err
		}
	}
	return p.writeCollateral(col, opts.Now, opts.CollateralValidity, nil)
}

// writeCollateral signs and writes TCB info, QE identity and both CRLs,
// issued at now and current for validity. revoked lists PCK serials to
// put on the PCK CRL.
func (p *Platform) writeCollateral(col string, now time.Time, validity time.Duration, revoked []*x509.Certificate) error {
	issued := now.Add(-time.Minute).UTC().Truncate(time.Second)
	next := issued.Add(validity)
	tcbInfo, err := p.tcbInfoBody(issued, next)
	if err != nil {
		return err
	}
	qeID, err := p.qeIdentityBody(issued, next)
	if err != nil {
		return err
	}
	rootCRL, err := crl(p.root, p.rootKey, issued, next, nil)
	if err != nil {
		return err
	}
	pckCRL, err := crl(p.pckCA, p.pckCAKey, issued, next, revoked)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		pcs.FileTCBInfo:               tcbInfo,
		pcs.FileTCBInfoIssuerChain:    certPEM(p.tcbCert, p.root),
		pcs.FileQEIdentity:            qeID,
		pcs.FileQEIdentityIssuerChain: certPEM(p.tcbCert, p.root),
		pcs.FilePCKCRL:                pckCRL,
		pcs.FilePCKCRLIssuerChain:     certPEM(p.pckCA, p.root),
		pcs.FileRootCACRL:             rootCRL,
	} {
		if err := atomicWrite(filepath.Join(col, name), data); err != nil {
			return err
		}
	}
	return nil
}

func atomicWrite(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := writeFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// Load opens a platform created by Init.
func Load(dir string) (*Platform, error) {
	priv := filepath.Join(dir, DirPrivate)
	if _, err := os.Stat(filepath.Join(dir, FileRootCA)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sim: %s holds no simulated platform (create one with: enclavectl sim init %s)", dir, dir)
		}
		return nil, fmt.Errorf("sim: %w", err)
	}
	p := &Platform{dir: dir}
	var err error
	keys := map[string]**ecdsa.PrivateKey{
		keyRoot: &p.rootKey, keyPCKCA: &p.pckCAKey, keyPCK: &p.pckKey, keyTCB: &p.tcbKey, keyQE: &p.qeKey, keySigner: &p.signerKey,
	}
	for name, dst := range keys {
		if *dst, err = readKey(filepath.Join(priv, name)); err != nil {
			return nil, err
		}
	}
	if p.secret, err = readPEM(filepath.Join(priv, fileSecret), secretPEM); err != nil {
		return nil, err
	}
	if len(p.secret) != 32 {
		return nil, fmt.Errorf("sim: platform secret is %d bytes, want 32", len(p.secret))
	}
	chain, err := readCerts(filepath.Join(dir, FilePCKChain))
	if err != nil {
		return nil, err
	}
	if len(chain) != 3 {
		return nil, fmt.Errorf("sim: %s holds %d certificates, want 3", FilePCKChain, len(chain))
	}
	p.pck, p.pckCA, p.root = chain[0], chain[1], chain[2]
	tcb, err := readCerts(filepath.Join(priv, certTCB))
	if err != nil {
		return nil, err
	}
	p.tcbCert = tcb[0]
	roots, err := readCerts(filepath.Join(dir, FileRootCA))
	if err != nil {
		return nil, err
	}
	if !roots[0].Equal(p.root) {
		return nil, fmt.Errorf("sim: %s and %s disagree on the root", FileRootCA, FilePCKChain)
	}
	if !p.root.PublicKey.(*ecdsa.PublicKey).Equal(&p.rootKey.PublicKey) || !p.pck.PublicKey.(*ecdsa.PublicKey).Equal(&p.pckKey.PublicKey) {
		return nil, fmt.Errorf("sim: %s: private keys do not match the certificates", dir)
	}
	if err := p.derive(); err != nil {
		return nil, err
	}
	return p, nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("sim: %s is not a PEM %s", path, typ)
	}
	return block.Bytes, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("sim: %s is not an ECDSA key", path)
	}
	return ek, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	certs, err := dcap.ParsePEMChain(b)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	return certs, nil
}

// RefreshCollateral re-signs the collateral, current from now for
// validity (zero: 365 days), keeping any revocations given.
func (p *Platform) RefreshCollateral(now time.Time, validity time.Duration, revoke ...*x509.Certificate) error {
	if validity == 0 {
		validity = 365 * 24 * time.Hour
	}
	return p.writeCollateral(filepath.Join(p.dir, DirCollateral), now, validity, revoke)
}

// RevokePCK puts the platform's own PCK certificate on its PCK CRL, as
// Intel does for a compromised machine. Quotes from it stop verifying.
func (p *Platform) RevokePCK(now time.Time) error {
	return p.RefreshCollateral(now, 0, p.pck)
}
