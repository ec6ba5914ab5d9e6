package startup

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/seal"
	"github.com/sharedenclave/sharedenclave/store"
)

// Handoff holds the upgrade hand-off flags relayd and kmsd share
// (docs/DEPLOY.md, "Upgrading to a new build"):
//
//   - the predecessor (the build that can open the data key) runs with
//     --handoff-listen ADDR: it checks that its data key opens the store,
//     then gives the key to the first successor whose quote satisfies the
//     hand-off policy, and exits; it does not serve;
//   - the successor runs on the same data dir (or a copy) with
//     --handoff-from ADDR: when the data key does not open under its own
//     seal key, it takes the key from the predecessor, opens the store
//     with it and re-seals it under its own seal key.
//
// --handoff-policy FILE (a policy file's [peers]) replaces the default
// policy on either side: the same MRSIGNER and ISVPRODID as this enclave,
// and, for successors, an ISVSVN at least its own.
//
// Cluster nodes use the same exchange to share the cluster data key:
// a member serves --join-listen ADDR while it runs, and a new node with an
// empty data dir starts with --join ADDR.
type Handoff struct {
	Listen, From, Policy string
	Join, JoinListen     string
}

func (h *Handoff) register(fs *flag.FlagSet) {
	fs.StringVar(&h.Listen, "handoff-listen", "", "upgrade: give this build's data key to one attested successor on HOST:PORT, then exit without serving\n(the successor runs with --handoff-from; docs/DEPLOY.md)")
	fs.StringVar(&h.From, "handoff-from", "", "upgrade: when the data key does not open under this build's seal key, take it from the predecessor\nrunning with --handoff-listen at HOST:PORT (mutual attestation; docs/DEPLOY.md)")
	fs.StringVar(&h.Join, "join", "", "with --cluster and an empty --data-dir: take the cluster data key from a member running with --join-listen at HOST:PORT\n(mutual attestation under the hand-off policy; docs/DEPLOY.md)")
	fs.StringVar(&h.JoinListen, "join-listen", "", "with --cluster: while serving, give the cluster data key to attested nodes joining with --join on HOST:PORT")
	fs.StringVar(&h.Policy, "handoff-policy", "", "policy file whose [peers] names the enclaves a hand-off accepts (default: this enclave's MRSIGNER and ISVPRODID,\nand for a successor an ISVSVN at least this one's)")
}

func (s *Server) checkHandoff() error {
	h := &s.Handoff
	if h.Listen == "" && h.From == "" && h.Join == "" && h.JoinListen == "" {
		if h.Policy != "" {
			return errors.New("--handoff-policy is used only with --handoff-listen, --handoff-from, --join or --join-listen")
		}
		return nil
	}
	if s.DataDir == "" {
		return errors.New("--handoff-listen, --handoff-from, --join and --join-listen need --data-dir: a memory-only service has no data key to hand off")
	}
	if h.Join != "" && (h.Listen != "" || h.From != "") {
		return errors.New("--join (a new cluster node) does not go with --handoff-listen or --handoff-from (an upgrade)")
	}
	if h.Listen != "" && h.From != "" {
		return errors.New("give --handoff-listen (the predecessor) or --handoff-from (the successor), not both")
	}
	if h.Listen != "" && s.BackupTo != "" {
		return errors.New("--handoff-listen and --backup-to are two different one-shot jobs: run them one after the other")
	}
	for name, a := range map[string]string{"--handoff-listen": h.Listen, "--handoff-from": h.From, "--join": h.Join, "--join-listen": h.JoinListen} {
		if a != "" {
			if err := checkAddr(name, a); err != nil {
				return err
			}
		}
	}
	if h.Policy != "" {
		if _, err := policyfile.Load(h.Policy); err != nil {
			return fmt.Errorf("--handoff-policy: %w", err)
		}
	}
	return nil
}

// handoffConfig is this side's hand-off configuration: the policy file's
// [peers], or the default derived from this enclave's own identity.
func (s *Server) handoffConfig(ctx context.Context, be *backend.Backend, purpose string, successor bool) (custody.HandoffConfig, error) {
	c := custody.HandoffConfig{Purpose: purpose, Attester: be.Attester, Verifier: be.Verifier}
	if s.Handoff.Policy != "" {
		f, err := policyfile.Load(s.Handoff.Policy)
		if err != nil {
			return c, fmt.Errorf("--handoff-policy: %w", err)
		}
		if c.Policy, err = f.Peers.Policy(); err != nil {
			return c, fmt.Errorf("--handoff-policy: %w", err)
		}
		return c, nil
	}
	self, err := custody.SelfIdentity(ctx, be.Attester)
	if err != nil {
		return c, fmt.Errorf("reading this enclave's own identity for the hand-off policy: %w", err)
	}
	if successor {
		c.Policy = custody.PredecessorPolicy(self, be.Simulated)
	} else {
		c.Policy = custody.SuccessorPolicy(self, be.Simulated)
	}
	return c, nil
}

// ServeHandoff is the predecessor's one-shot job (--handoff-listen): it
// opens the data key under this build's seal key, checks that the store
// opens with it (and closes it again, so the successor can open it),
// then serves hand-offs until one successor has stored the key. A
// successor the policy refuses learns nothing; the predecessor logs it
// and waits for the next. Nothing in the data dir is written.
func (s *Server) ServeHandoff(ctx context.Context, be *backend.Backend, purpose string, log *slog.Logger) error {
	dk, err := s.OpenDataKey(be, purpose)
	if err != nil {
		return err
	}
	root, err := dk.Root()
	if err != nil {
		return err
	}
	st, err := s.openStore(store.Options{Dir: s.DataDir, Root: root, Purpose: purpose, Logger: log})
	if err != nil {
		return fmt.Errorf("--handoff-listen: the data key does not open the store of %s: %w", s.DataDir, err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	cfg, err := s.handoffConfig(ctx, be, purpose, false)
	if err != nil {
		return err
	}
	cert, err := atls.NewKeyCertificate(atls.CertOptions{CommonName: "Shared Enclave hand-off (" + purpose + ")"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Handoff.Listen)
	if err != nil {
		return fmt.Errorf("--handoff-listen: %w", err)
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	log.Info("hand-off: waiting for an attested successor; this process will exit once one has stored the data key",
		"addr", ln.Addr().String(), "data_dir", s.DataDir, "policy", describePolicy(cfg.Policy))
	tcfg := atls.ServerConfig(cert)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return errors.New("hand-off: stopped before a successor took the data key (nothing was changed)")
			}
			return err
		}
		r, err := custody.ServeHandoff(ctx, tls.Server(c, tcfg), cert.Certificate[0], dk, cfg)
		c.Close()
		if err != nil {
			log.Warn("hand-off: refused or failed; waiting for the next successor", "remote", c.RemoteAddr().String(), "err", err)
			continue
		}
		log.Info("hand-off: the successor stored the data key under its own seal key; exiting",
			"mrenclave", r.MREnclave.String(), "mrsigner", r.MRSigner.String(), "isvprodid", r.ISVProdID, "isvsvn", r.ISVSVN, "simulated", r.Simulated)
		return nil
	}
}

// receiveHandoff is the successor's side, run by OpenStore when the data
// key does not open here and --handoff-from is set. The store is opened
// with the received key before the custody file is replaced (Sealed.Open):
// a crash leaves the old wrapping or the new one, never neither.
func (s *Server) receiveHandoff(be *backend.Backend, z *Sealed) (*store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*custody.DefaultHandoffTimeout)
	defer cancel()
	cfg, err := s.handoffConfig(ctx, be, z.purpose, true)
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: atls.ClientConfig()}
	c, err := d.DialContext(ctx, "tcp", s.Handoff.From)
	if err != nil {
		return nil, fmt.Errorf("--handoff-from: %w\nhint: start the predecessor build on its data dir with --handoff-listen %s first", err, s.Handoff.From)
	}
	defer c.Close()
	var st *store.Store
	r, err := custody.ReceiveHandoff(ctx, c.(*tls.Conn), cfg, func(dk *custody.DataKey) error {
		var err error
		st, err = z.Open(dk)
		return err
	})
	if err != nil {
		if st != nil {
			st.Close()
		}
		return nil, fmt.Errorf("--handoff-from %s: %w", s.Handoff.From, err)
	}
	z.log.Info("hand-off: data key received from the predecessor and sealed under this build's seal key",
		"mrenclave", r.MREnclave.String(), "isvsvn", r.ISVSVN, "data_dir", s.DataDir)
	return st, nil
}

// OpenDataKey opens the data dir's data key under this build's seal key.
func (s *Server) OpenDataKey(be *backend.Backend, purpose string) (*custody.DataKey, error) {
	root, err := be.SealRoot(s.SealPolicy)
	if err != nil {
		return nil, fmt.Errorf("seal key (--seal-policy %s): %w", s.SealPolicy, err)
	}
	sealer, err := seal.NewSealer(root, custodyPurpose(purpose), 1)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, CustodyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no %s: only a data dir with a data key can hand it off (a dir made before custody cannot)", s.DataDir, CustodyFile)
	}
	if err != nil {
		return nil, err
	}
	f, err := custody.ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.DataDir, CustodyFile), err)
	}
	dk, err := custody.OpenSealed(sealer, f.Sealed)
	if err != nil {
		return nil, fmt.Errorf("the data key of %s does not open under this build's seal key (--seal-policy %s): hand it off from the build that last opened it", s.DataDir, s.SealPolicy)
	}
	return dk, nil
}

func describePolicy(p *attest.Policy) string {
	s := fmt.Sprintf("mrsigner=%v mrenclave=%v min_isvsvn=%d simulated=%v", p.MRSigner, p.MREnclave, p.MinISVSVN, p.AllowSimulated)
	if p.ProductID != nil {
		s += fmt.Sprintf(" isvprodid=%d", *p.ProductID)
	}
	return s
}

// JoinKey is a new cluster node's side (--join): with an empty data dir,
// it takes the cluster data key from a member over mutual attestation and
// seals it in a new custody file (no recovery record: the cluster's
// recovery shares are the first node's). It returns nil, nil when --join
// is not set.
func (s *Server) JoinKey(ctx context.Context, be *backend.Backend, purpose string, log *slog.Logger) (*custody.DataKey, error) {
	if s.Handoff.Join == "" {
		return nil, nil
	}
	if state, err := dataDirState(s.DataDir); err != nil {
		return nil, err
	} else if state != dirNew {
		return nil, fmt.Errorf("--join: --data-dir %s is not empty: a joining node starts from an empty data dir (drop --join to start from the key it already holds)", s.DataDir)
	}
	if s.RecoveryRecipients != "" {
		return nil, errors.New("--join: recovery shares of a cluster key are made by its first node only; drop the --recovery-* flags")
	}
	sealer, err := s.custodySealer(be, purpose)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*custody.DefaultHandoffTimeout)
	defer cancel()
	cfg, err := s.handoffConfig(ctx, be, purpose, true)
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: atls.ClientConfig()}
	c, err := d.DialContext(ctx, "tcp", s.Handoff.Join)
	if err != nil {
		return nil, fmt.Errorf("--join: %w\nhint: a member must be running with --join-listen %s", err, s.Handoff.Join)
	}
	defer c.Close()
	var got *custody.DataKey
	r, err := custody.ReceiveHandoff(ctx, c.(*tls.Conn), cfg, func(dk *custody.DataKey) error {
		if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
			return err
		}
		sealed, err := dk.Seal(sealer)
		if err != nil {
			return err
		}
		if err := writeCustody(s.DataDir, &custody.File{Version: 1, Sealed: sealed}); err != nil {
			return err
		}
		got = dk
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--join %s: %w", s.Handoff.Join, err)
	}
	log.Info("joined: the cluster data key was received from a member and sealed under this enclave's seal key",
		"member_mrenclave", r.MREnclave.String(), "member_isvsvn", r.ISVSVN, "data_dir", s.DataDir)
	return got, nil
}

// ServeJoins is a cluster member's side (--join-listen): until ctx ends it
// gives dk to every joining node whose quote satisfies the hand-off
// policy, one at a time. It returns at once when --join-listen is not set.
func (s *Server) ServeJoins(ctx context.Context, be *backend.Backend, purpose string, dk *custody.DataKey, log *slog.Logger) error {
	if s.Handoff.JoinListen == "" {
		return nil
	}
	cfg, err := s.handoffConfig(ctx, be, purpose, false)
	if err != nil {
		return err
	}
	cert, err := atls.NewKeyCertificate(atls.CertOptions{CommonName: "Shared Enclave cluster join (" + purpose + ")"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Handoff.JoinListen)
	if err != nil {
		return fmt.Errorf("--join-listen: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	log.Info("cluster joins: serving the cluster data key to attested nodes", "addr", ln.Addr().String(), "policy", describePolicy(cfg.Policy))
	tcfg := atls.ServerConfig(cert)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := custody.ServeHandoff(ctx, tls.Server(c, tcfg), cert.Certificate[0], dk, cfg)
			c.Close()
			if err != nil {
				log.Warn("cluster join refused or failed", "remote", c.RemoteAddr().String(), "err", err)
				continue
			}
			log.Info("cluster join: a node received the cluster data key", "mrenclave", r.MREnclave.String(), "isvsvn", r.ISVSVN, "simulated", r.Simulated)
		}
	}()
	return nil
}
