package startup

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATSAuth names the files that authenticate a node to the NATS servers
// of its cluster (the --cluster-* flags; empty: not used).
type NATSAuth struct {
	// NKeySeed (--cluster-nkey-seed): a NATS user nkey seed ("SU…", as
	// `nk -gen user` or nsc write it); the connection answers the
	// server's challenge with it (NATS nkey authentication: the seed
	// never leaves this process, the server holds only the public key).
	NKeySeed string
	// Creds (--cluster-creds): a NATS credentials file (a user JWT and
	// its nkey seed, as nsc writes it), for servers in operator mode
	// (decentralized JWT authentication). Not with NKeySeed.
	Creds string
	// CA (--cluster-ca): PEM certificates the NATS servers' TLS
	// certificates must chain to. The connection then requires TLS: a
	// server that does not offer it, or whose certificate does not
	// verify, is refused.
	CA string
	// Cert and Key (--cluster-cert, --cluster-key): a PEM client
	// certificate and its key, for servers that verify clients' TLS
	// certificates. Both or neither; they too make TLS required.
	Cert, Key string
}

// NATSOptions checks the files a (all read now, so that a mistake stops
// the start, not the first connection) and returns the connect options
// they ask for. No error quotes a file's content.
func NATSOptions(a NATSAuth) ([]nats.Option, error) {
	var opts []nats.Option
	if a.NKeySeed != "" && a.Creds != "" {
		return nil, errors.New("--cluster-nkey-seed and --cluster-creds are two ways to authenticate; give one")
	}
	if a.NKeySeed != "" {
		b, err := os.ReadFile(a.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("--cluster-nkey-seed: %w", err)
		}
		defer clear(b)
		kp, err := userKey(bytes.TrimSpace(b))
		if err != nil {
			return nil, fmt.Errorf("--cluster-nkey-seed %s: %w", a.NKeySeed, err)
		}
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	if a.Creds != "" {
		if err := checkCreds(a.Creds); err != nil {
			return nil, fmt.Errorf("--cluster-creds %s: %w", a.Creds, err)
		}
		// nats.go reads the file again at each (re)connection, so
		// that a rotated credentials file is taken up.
		opts = append(opts, nats.UserCredentials(a.Creds))
	}
	var tc *tls.Config
	if a.CA != "" {
		b, err := os.ReadFile(a.CA)
		if err != nil {
			return nil, fmt.Errorf("--cluster-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cluster-ca %s: no PEM certificate in it", a.CA)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	switch {
	case a.Cert == "" && a.Key == "":
	case a.Cert == "" || a.Key == "":
		return nil, errors.New("--cluster-cert and --cluster-key go together: give both, or neither")
	default:
		cert, err := tls.LoadX509KeyPair(a.Cert, a.Key)
		if err != nil {
			return nil, fmt.Errorf("--cluster-cert %s / --cluster-key %s: not a PEM certificate and its private key (%s)", a.Cert, a.Key, keyPairProblem(err))
		}
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12} // the system's roots
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// userKey parses a user nkey seed; an account's or operator's is refused.
func userKey(seed []byte) (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, errors.New("not an nkey seed (want one line starting with SU, as `nk -gen user` writes)")
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, errors.New("the seed is not a user's (it starts with SU; an account's or operator's seed is refused)")
	}
	return kp, nil
}

// checkCreds checks that file is a credentials file: a user JWT, and the
// user seed whose public key the JWT names.
func checkCreds(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	defer clear(b)
	// ParseDecoratedJWT takes undecorated input as the JWT itself: the
	// decoding below is the check.
	token, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return errors.New("no user JWT in it (want a credentials file as `nsc generate creds` writes)")
	}
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return errors.New("no user JWT in it (want a credentials file as `nsc generate creds` writes)")
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		return errors.New("no user nkey seed in it (want a credentials file as `nsc generate creds` writes)")
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return errors.New("its seed is not a user's")
	}
	if pub != claims.Subject {
		return errors.New("its seed is not the key its JWT names")
	}
	return nil
}

// keyPairProblem says what tls.LoadX509KeyPair found wrong, without the
// files' content (its errors do not quote keys, but may name PEM types).
func keyPairProblem(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error() + " reading " + pe.Path
	}
	return err.Error()
}

// NATSConnectError is the error for a failed connection to the NATS
// servers, with what to try next when the failure points at a flag:
// a TLS failure without a client certificate (the servers may verify
// clients), an authorization violation (the servers want other
// credentials).
func NATSConnectError(err error, a NATSAuth) error {
	msg := err.Error()
	switch {
	case a.Cert == "" && (strings.Contains(msg, "certificate required") || strings.Contains(msg, "tls error")):
		return fmt.Errorf("--cluster: connecting to NATS: %w (if the servers verify clients' TLS certificates, give --cluster-cert and --cluster-key)", err)
	case strings.Contains(msg, "Authorization Violation"):
		return fmt.Errorf("--cluster: connecting to NATS: %w (the servers refused this node's credentials: check --cluster-creds or --cluster-nkey-seed against the servers' users)", err)
	}
	return fmt.Errorf("--cluster: connecting to NATS: %w", err)
}
