package pcs

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

// IntelPCS is the base URL of Intel's Provisioning Certification Service,
// API version 4. A PCCS serves the same paths.
const IntelPCS = "https://api.trustedservices.intel.com/sgx/certification/v4/"

// IntelRootCACRL is where Intel publishes the SGX root CA's CRL (the CRL
// distribution point of the root certificate).
const IntelRootCACRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// HTTP header names of the issuer chains PCS returns (URL-encoded PEM).
const (
	HeaderTCBInfoIssuerChain    = "TCB-Info-Issuer-Chain"
	HeaderQEIdentityIssuerChain = "SGX-Enclave-Identity-Issuer-Chain"
	HeaderPCKCRLIssuerChain     = "SGX-PCK-CRL-Issuer-Chain"
)

// Client fetches collateral from Intel PCS v4 or a PCCS on every call;
// wrap it in a Cache to keep collateral while it is current. Signatures
// are not checked here: dcap.Verifier checks everything it is given.
type Client struct {
	// BaseURL ends in "/sgx/certification/v4/"; empty means IntelPCS.
	BaseURL string
	// HTTP is the client to use; nil means one with a 30 s timeout.
	HTTP *http.Client
	// RootCACRL fetches the root CA CRL from BaseURL + "rootcacrl" (a
	// PCCS path; Intel PCS itself does not serve it).
	RootCACRL bool
	// RootCACRLURL, when RootCACRL is false, is where to fetch the root CA
	// CRL instead (for Intel PCS: IntelRootCACRL).
	RootCACRLURL string
}

var _ dcap.Getter = (*Client)(nil)

// GetCollateral fetches TCB info, QE identity, the PCK CRL and, with
// RootCACRL, the root CA CRL.
func (c *Client) GetCollateral(ctx context.Context, fmspc [6]byte, ca dcap.CA) (*dcap.Collateral, error) {
	if ca != dcap.CAProcessor && ca != dcap.CAPlatform {
		return nil, fmt.Errorf("pcs: unknown PCK CA %q", ca)
	}
	var col dcap.Collateral
	var err error
	if col.TCBInfo, col.TCBInfoIssuerChain, err = c.get(ctx, "tcb?fmspc="+strings.ToUpper(hex.EncodeToString(fmspc[:])), HeaderTCBInfoIssuerChain); err != nil {
		return nil, err
	}
	if col.QEIdentity, col.QEIdentityIssuerChain, err = c.get(ctx, "qe/identity", HeaderQEIdentityIssuerChain); err != nil {
		return nil, err
	}
	if col.PCKCRL, col.PCKCRLIssuerChain, err = c.get(ctx, "pckcrl?ca="+string(ca)+"&encoding=der", HeaderPCKCRLIssuerChain); err != nil {
		return nil, err
	}
	col.PCKCRL = maybeHex(col.PCKCRL)
	if c.RootCACRL {
		if col.RootCACRL, _, err = c.get(ctx, "rootcacrl", ""); err != nil {
			return nil, err
		}
		col.RootCACRL = maybeHex(col.RootCACRL)
	} else if c.RootCACRLURL != "" {
		if col.RootCACRL, _, err = c.getURL(ctx, c.RootCACRLURL, ""); err != nil {
			return nil, err
		}
	}
	if err := checkFMSPC(col.TCBInfo, fmspc); err != nil {
		return nil, err
	}
	return &col, nil
}

// maybeHex decodes a CRL that a PCCS returned hex-encoded; DER (which
// starts with 0x30, not a hex digit) is returned as is.
func maybeHex(b []byte) []byte {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] == 0x30 {
		return b
	}
	if d, err := hex.DecodeString(string(t)); err == nil {
		return d
	}
	return b
}

func (c *Client) get(ctx context.Context, path, chainHeader string) (body, chain []byte, err error) {
	base := c.BaseURL
	if base == "" {
		base = IntelPCS
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return c.getURL(ctx, base+path, chainHeader)
}

func (c *Client) getURL(ctx context.Context, u, chainHeader string) (body, chain []byte, err error) {
	path := u
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("pcs: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("pcs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("pcs: GET %s: %s", req.URL.Redacted(), resp.Status)
	}
	if resp.ContentLength > maxFile {
		return nil, nil, fmt.Errorf("pcs: GET %s: %d bytes, over the %d-byte limit", path, resp.ContentLength, maxFile)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("pcs: GET %s: %w", path, err)
	}
	if len(body) > maxFile {
		return nil, nil, fmt.Errorf("pcs: GET %s: body over the %d-byte limit", path, maxFile)
	}
	if chainHeader != "" {
		h := resp.Header.Get(chainHeader)
		if h == "" {
			return nil, nil, fmt.Errorf("pcs: GET %s: no %s header", path, chainHeader)
		}
		// PathUnescape, not QueryUnescape: a literal '+' is base64, not a space.
		s, err := url.PathUnescape(h)
		if err != nil {
			return nil, nil, fmt.Errorf("pcs: GET %s: %s: %v", path, chainHeader, err)
		}
		chain = []byte(s)
	}
	return body, chain, nil
}

// EscapeChain URL-encodes a PEM chain for an issuer-chain header, the way
// PCS does (spaces as %20, never '+').
func EscapeChain(pem []byte) string {
	return strings.ReplaceAll(url.QueryEscape(string(pem)), "+", "%20")
}
