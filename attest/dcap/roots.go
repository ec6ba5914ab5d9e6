package dcap

import (
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// IntelRootFingerprint is the SHA-256 of the DER of Intel's SGX Root CA.
const IntelRootFingerprint = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"

// IntelRoot returns Intel's SGX Root CA, the default trust anchor. The
// embedded certificate is checked against its pinned fingerprint.
func IntelRoot() *x509.Certificate {
	block, _ := pem.Decode(intelRootPEM)
	if block == nil {
		panic("dcap: embedded Intel root is not PEM")
	}
	sum := sha256.Sum256(block.Bytes)
	if hex.EncodeToString(sum[:]) != IntelRootFingerprint {
		panic(fmt.Sprintf("dcap: embedded Intel root has fingerprint %x", sum))
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("dcap: embedded Intel root: " + err.Error())
	}
	return c
}

// SimulatedMarker appears in the subject of every simulated root. A
// report whose chain ends at such a root is marked Simulated.
const SimulatedMarker = "SIMULATED"
