package natstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// operator makes what operator mode needs — an operator, a system
// account, an account with JetStream enabled and a user of it, and a
// user of an account the servers are not told of — writes the two users'
// credentials files into dir (c.CredsFile, c.OtherCredsFile), and returns
// the servers' configuration lines (a memory resolver preloaded with the
// two accounts).
func (c *Cluster) operator(t testing.TB, dir string) string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("natstest: operator mode: %v", err)
		}
	}
	op, err := nkeys.CreateOperator()
	must(err)
	opPub, _ := op.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "natstest"
	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		tok, err := ac.Encode(op)
		must(err)
		return kp, pub, tok
	}
	_, sysPub, sysJWT := account("SYS", false)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	must(err)
	acct, acctPub, acctJWT := account("APP", true)
	user := func(acct nkeys.KeyPair, file string) string {
		u, err := nkeys.CreateUser()
		must(err)
		upub, _ := u.PublicKey()
		useed, _ := u.Seed()
		uc := jwt.NewUserClaims(upub)
		tok, err := uc.Encode(acct)
		must(err)
		creds, err := jwt.FormatUserConfig(tok, useed)
		must(err)
		path := filepath.Join(dir, file)
		must(os.WriteFile(path, creds, 0o600))
		return path
	}
	c.CredsFile = user(acct, "user.creds")
	stranger, _, _ := account("STRANGER", true)
	c.OtherCredsFile = user(stranger, "stranger.creds")
	var b strings.Builder
	fmt.Fprintf(&b, "operator: %q\nsystem_account: %q\nresolver: MEMORY\nresolver_preload: {\n  %s: %q\n  %s: %q\n}\n",
		opJWT, sysPub, sysPub, sysJWT, acctPub, acctJWT)
	return b.String()
}
