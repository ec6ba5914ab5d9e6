package startup

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/internal/durable"
	"github.com/sharedenclave/sharedenclave/seal"
)

// ClusterKey opens the cluster data key kept in s.DataDir's custody file
// (sealed under this enclave's seal key; a cluster node's data dir holds
// only that file, its messages are in the cluster). It returns nil and no
// error when the directory holds no key yet: the caller then creates one
// (CreateClusterKey, the first node of a cluster) or must get the
// cluster's through the attested hand-off.
func (s *Server) ClusterKey(be *backend.Backend, purpose string) (*custody.DataKey, error) {
	sealer, err := s.custodySealer(be, purpose)
	if err != nil {
		return nil, err
	}
	state, err := dataDirState(s.DataDir)
	if err != nil {
		return nil, err
	}
	switch state {
	case dirNew:
		return nil, nil
	case dirLegacy:
		return nil, fmt.Errorf("--data-dir %s holds a single-node relay's mailboxes (a Pebble store): a cluster node's data dir holds only its cluster key; give --cluster a new directory", s.DataDir)
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, CustodyFile))
	if err != nil {
		return nil, err
	}
	f, err := custody.ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.DataDir, CustodyFile), err)
	}
	if ents, err := os.ReadDir(s.DataDir); err == nil {
		for _, e := range ents {
			if isPebbleFile(e.Name()) {
				return nil, fmt.Errorf("--data-dir %s holds a single-node relay's mailboxes (a Pebble store): a cluster node's data dir holds only its cluster key; give --cluster a new directory", s.DataDir)
			}
		}
	}
	if s.RecoveryRecipients != "" && (f.Recovery == nil || !f.Recovery.SameRecovery(s.recipients, s.RecoveryThreshold)) {
		return nil, errors.New("--recovery-recipients, --recovery-threshold, --recovery-shares-dir: a cluster key gets its recovery shares at the first start of the cluster's first node only; drop them (or give those of that start)")
	}
	dk, err := custody.OpenSealed(sealer, f.Sealed)
	if err != nil {
		return nil, fmt.Errorf("the cluster key in %s does not open here (another enclave identity, seal policy or CPU): a cluster node gets the key only from its own seal or through the attested hand-off; start with the build and --seal-policy that made it, or from an empty --data-dir", s.DataDir)
	}
	return dk, nil
}

// CreateClusterKey generates a cluster data key in the enclave, writes its
// recovery shares (if asked) and the custody file into s.DataDir (which
// must be new). undo removes what it wrote, for a start that turned out
// not to be the first node after all.
func (s *Server) CreateClusterKey(be *backend.Backend, purpose string, log *slog.Logger) (dk *custody.DataKey, undo func(), err error) {
	sealer, err := s.custodySealer(be, purpose)
	if err != nil {
		return nil, nil, err
	}
	if state, err := dataDirState(s.DataDir); err != nil {
		return nil, nil, err
	} else if state != dirNew {
		return nil, nil, fmt.Errorf("--data-dir %s is not empty", s.DataDir)
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("--data-dir: %w", err)
	}
	if dk, err = custody.NewDataKey(rand.Reader); err != nil {
		return nil, nil, err
	}
	f := &custody.File{Version: 1}
	if f.Sealed, err = dk.Seal(sealer); err != nil {
		return nil, nil, err
	}
	var written []string
	if s.RecoveryRecipients != "" {
		if f.Recovery, written, err = s.writeShares(dk, purpose, log); err != nil {
			return nil, nil, err
		}
	}
	if err := writeCustody(s.DataDir, f); err != nil {
		removeAll(written)
		return nil, nil, fmt.Errorf("--data-dir: writing the cluster key: %w", err)
	}
	log.Info("new cluster key generated in the enclave and sealed", "data_dir", s.DataDir, "seal_policy", s.SealPolicy, "recovery", f.Recovery != nil)
	undo = func() {
		removeAll(append(written, filepath.Join(s.DataDir, CustodyFile)))
		durable.SyncDir(s.DataDir)
	}
	return dk, undo, nil
}

func (s *Server) custodySealer(be *backend.Backend, purpose string) (*seal.Sealer, error) {
	root, err := be.SealRoot(s.SealPolicy)
	if err != nil {
		return nil, fmt.Errorf("seal key (--seal-policy %s): %w", s.SealPolicy, err)
	}
	if purpose == "" {
		return nil, errors.New("startup: no purpose")
	}
	return seal.NewSealer(root, custodyPurpose(purpose), 1)
}
