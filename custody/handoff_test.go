package custody

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/dcap"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

// handoffEnv makes a simulated platform and a verifier trusting only it.
func handoffEnv(t *testing.T) (*sim.Platform, attest.Verifier) {
	t.Helper()
	p, err := sim.Init(filepath.Join(t.TempDir(), "sim"), sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := dcap.New(dcap.Options{Roots: p.Roots(), Collateral: &pcs.Cache{Getter: p.Collateral()}, RequireCRLs: true})
	if err != nil {
		t.Fatal(err)
	}
	return p, v
}

// runHandoff runs a predecessor with identity pred on platform pp and a
// successor with identity succ on platform sp, each with its default
// policy, and returns what each side got.
func runHandoff(t *testing.T, v attest.Verifier, pp *sim.Platform, pred sim.Identity, sp *sim.Platform, succ sim.Identity, predPurpose, succPurpose string) (*DataKey, *DataKey, error, error) {
	t.Helper()
	ctx := context.Background()
	dk, err := NewDataKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	predAtt, succAtt := pp.Attester(pred), sp.Attester(succ)
	predSelf, err := SelfIdentity(ctx, predAtt)
	if err != nil {
		t.Fatal(err)
	}
	succSelf, err := SelfIdentity(ctx, succAtt)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", atls.ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serveErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serveErr <- err
			return
		}
		defer c.Close()
		_, err = ServeHandoff(ctx, c.(*tls.Conn), cert.Certificate[0], dk,
			HandoffConfig{Purpose: predPurpose, Attester: predAtt, Verifier: v, Policy: SuccessorPolicy(predSelf, true)})
		serveErr <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), atls.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got *DataKey
	_, rerr := ReceiveHandoff(ctx, conn, HandoffConfig{Purpose: succPurpose, Attester: succAtt, Verifier: v, Policy: PredecessorPolicy(succSelf, true)},
		func(k *DataKey) error { got = k; return nil })
	conn.Close()
	return dk, got, <-serveErr, rerr
}

func TestHandoffToASuccessor(t *testing.T) {
	p, v := handoffEnv(t)
	old := sim.Identity{MREnclave: attest.Hash32{1}, ISVProdID: 7, ISVSVN: 3}
	newer := sim.Identity{MREnclave: attest.Hash32{2}, ISVProdID: 7, ISVSVN: 4}
	dk, got, serr, rerr := runHandoff(t, v, p, old, p, newer, "kms", "kms")
	if serr != nil || rerr != nil {
		t.Fatalf("hand-off to a newer build of the same signer: serve %v, receive %v", serr, rerr)
	}
	if got == nil || !got.Equal(dk) {
		t.Fatal("the successor did not get the predecessor's data key")
	}
	// The same SVN (a rebuild) is a successor too.
	same := sim.Identity{MREnclave: attest.Hash32{3}, ISVProdID: 7, ISVSVN: 3}
	if _, got, serr, rerr := runHandoff(t, v, p, old, p, same, "relay", "relay"); serr != nil || rerr != nil || got == nil {
		t.Fatalf("rebuild at the same SVN: serve %v, receive %v", serr, rerr)
	}
}

func TestHandoffRefusals(t *testing.T) {
	p, v := handoffEnv(t)
	old := sim.Identity{MREnclave: attest.Hash32{1}, ISVProdID: 7, ISVSVN: 3}
	cases := []struct {
		name       string
		sp         *sim.Platform
		succ       sim.Identity
		pur1, pur2 string
		rule       string
	}{
		{"downgrade below the predecessor's SVN", p, sim.Identity{MREnclave: attest.Hash32{9}, ISVProdID: 7, ISVSVN: 2}, "kms", "kms", "isvsvn"},
		{"another product", p, sim.Identity{MREnclave: attest.Hash32{9}, ISVProdID: 8, ISVSVN: 5}, "kms", "kms", "isvprodid"},
		{"another signer", p, sim.Identity{MREnclave: attest.Hash32{9}, MRSigner: attest.Hash32{0xee}, ISVProdID: 7, ISVSVN: 5}, "kms", "kms", "mrsigner"},
		{"another purpose", p, sim.Identity{MREnclave: attest.Hash32{9}, ISVProdID: 7, ISVSVN: 5}, "kms", "relay", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got, serr, rerr := runHandoff(t, v, p, old, c.sp, c.succ, c.pur1, c.pur2)
			if got != nil {
				t.Fatal("the key reached a successor outside the policy")
			}
			if serr == nil || rerr == nil {
				t.Fatalf("both sides must fail: serve %v, receive %v", serr, rerr)
			}
			if !errors.Is(serr, ErrHandoff) || !errors.Is(rerr, ErrHandoff) {
				t.Fatalf("errors must wrap ErrHandoff: %v / %v", serr, rerr)
			}
			if c.rule != "" {
				var pe *attest.PolicyError
				if !errors.As(serr, &pe) || pe.Rule != c.rule {
					t.Fatalf("predecessor's refusal %v, want policy rule %q", serr, c.rule)
				}
				if !errors.Is(rerr, atls.ErrRefused) {
					t.Fatalf("successor should hear the refusal, got %v", rerr)
				}
			}
		})
	}
}

func TestHandoffNeedsAPolicy(t *testing.T) {
	dk, _ := NewDataKey(rand.Reader)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := ServeHandoff(context.Background(), tls.Server(a, &tls.Config{}), nil, dk, HandoffConfig{Purpose: "kms"}); !errors.Is(err, ErrHandoff) {
		t.Fatalf("no policy: %v", err)
	}
}

func TestKeyFrame(t *testing.T) {
	frame := append([]byte("SEHO\x01\x03kms"), make([]byte, DataKeySize)...)
	frame[len(frame)-1] = 0x42
	dk, err := parseKeyFrame(frame, "kms")
	if err != nil || dk.b[DataKeySize-1] != 0x42 {
		t.Fatalf("good frame: %v", err)
	}
	for i := 0; i < len(frame); i++ {
		if _, err := parseKeyFrame(frame[:i], "kms"); err == nil {
			t.Fatalf("strict prefix of %d bytes parsed", i)
		}
	}
	if _, err := parseKeyFrame(append(frame, 0), "kms"); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := parseKeyFrame(frame, "relay"); err == nil {
		t.Fatal("another purpose accepted")
	}
}

func FuzzKeyFrame(f *testing.F) {
	f.Add(append([]byte("SEHO\x01\x03kms"), make([]byte, DataKeySize)...))
	f.Add([]byte("SEHO\x02\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dk, err := parseKeyFrame(b, "kms")
		if err == nil && (len(b) != 6+3+DataKeySize || dk == nil) {
			t.Fatalf("accepted %d bytes", len(b))
		}
	})
}
