package startup

import (
	"bytes"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATSAuth reads the file given as --cluster-nkey-seed: a NATS user nkey
// seed ("SU…", as `nk -gen user` or nsc write it), and returns the
// connect option that answers the server's challenge with it (NATS nkey
// authentication: the seed never leaves this process, the server holds
// only the public key). An empty path means no authentication. Anything
// but a user seed is refused; no error quotes the file's content.
func NATSAuth(seedFile string) (nats.Option, error) {
	if seedFile == "" {
		return nil, nil
	}
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
	return nats.Nkey(pub, kp.Sign), nil
}
