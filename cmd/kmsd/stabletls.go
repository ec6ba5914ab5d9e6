package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/store"
)

// With --stable-tls-ca kmsd keeps a CA key sealed in its store and issues
// itself a new RA-TLS certificate under it at every start: clients pin the
// CA once (VAULT_CACERT) and it survives restarts, while the certificate
// they are served has a new key and a quote made at this start.

const (
	kindTLSCA    = "kmsd/tls-ca"
	tlsCAName    = "ca"
	caCommonName = "Shared Enclave KMS CA"
	caValidity   = 10 * 365 * 24 * time.Hour
	caRenewBest  = 30 * 24 * time.Hour // a CA closer to its end than this is replaced
)

// caRecord is the sealed record of the CA: its PKCS #8 key and its
// certificate (DER).
type caRecord struct {
	Key  []byte `json:"key"`
	Cert []byte `json:"cert"`
}

// stableCA returns the store's TLS CA, made (and stored, synced) on first
// use; one that expires within caRenewBest is replaced, which clients
// must then pin again (kmsd logs it).
func stableCA(st *store.Store, now time.Time) (ca *tls.Certificate, made bool, err error) {
	b, err := st.Get(kindTLSCA, []byte(tlsCAName))
	switch {
	case err == nil:
		var rec caRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, false, fmt.Errorf("--stable-tls-ca: the stored TLS CA is unreadable: %w", err)
		}
		key, err := x509.ParsePKCS8PrivateKey(rec.Key)
		if err != nil {
			return nil, false, fmt.Errorf("--stable-tls-ca: the stored TLS CA key is unreadable: %w", err)
		}
		cert, err := x509.ParseCertificate(rec.Cert)
		if err != nil {
			return nil, false, fmt.Errorf("--stable-tls-ca: the stored TLS CA certificate is unreadable: %w", err)
		}
		if now.Add(caRenewBest).Before(cert.NotAfter) {
			return &tls.Certificate{Certificate: [][]byte{rec.Cert}, PrivateKey: key, Leaf: cert}, false, nil
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, fmt.Errorf("--stable-tls-ca: reading the TLS CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	c, err := atls.NewCACertificate(key, atls.CertOptions{CommonName: caCommonName, Now: now, Validity: caValidity})
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	rec, err := json.Marshal(caRecord{Key: der, Cert: c.Certificate[0]})
	if err != nil {
		return nil, false, err
	}
	if err := st.Put(kindTLSCA, []byte(tlsCAName), rec, store.Sync); err != nil {
		return nil, false, fmt.Errorf("--stable-tls-ca: storing the TLS CA: %w", err)
	}
	return &c, true, nil
}
