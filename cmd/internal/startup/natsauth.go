package startup

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATSOptions are the connect options that --cluster-nkey-seed and
// --cluster-ca ask for (none when both are empty).
//
// --cluster-nkey-seed FILE: a NATS user nkey seed ("SU…", as `nk -gen
// user` or nsc write it); the connection answers the server's challenge
// with it (NATS nkey authentication: the seed never leaves this process,
// the server holds only the public key). Anything but a user seed is
// refused; no error quotes the file's content.
//
// --cluster-ca FILE: PEM certificates the NATS servers' TLS certificates
// must chain to. The connection then requires TLS: a server that does not
// offer it, or whose certificate does not verify, is refused.
func NATSOptions(seedFile, caFile string) ([]nats.Option, error) {
	var opts []nats.Option
	if seedFile != "" {
		b, err := os.ReadFile(seedFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-nkey-seed: %w", err)
		}
		defer clear(b)
		kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
		if err != nil {
			return nil, fmt.Errorf("--cluster-nkey-seed %s: not an nkey seed (want one line starting with SU, as `nk -gen user` writes)", seedFile)
		}
		pub, err := kp.PublicKey()
		if err != nil || !nkeys.IsValidPublicUserKey(pub) {
			return nil, fmt.Errorf("--cluster-nkey-seed %s: the seed is not a user's (it starts with SU; an account's or operator's seed is refused)", seedFile)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cluster-ca %s: no PEM certificate in it", caFile)
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}
