package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/relay/jetstream"
)

// clusterPurpose names the cluster key's custody (apart from a
// single-node relay's data key).
const clusterPurpose = "relay-cluster"

// checkCluster validates the --cluster flags after parsing; set holds the
// flags given (command line, environment or file).
func (o *options) checkCluster(set map[string]bool) error {
	if o.cluster == "" {
		for _, f := range []string{"cluster-replicas", "cluster-lease", "cluster-nkey-seed", "cluster-creds", "cluster-ca", "cluster-cert", "cluster-key", "join", "join-listen"} {
			if set[f] {
				return fmt.Errorf("--%s needs --cluster", f)
			}
		}
		return nil
	}
	for _, u := range strings.Split(o.cluster, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" {
			return fmt.Errorf("--cluster %q: want NATS URLs separated by commas, e.g. nats://10.0.0.1:4222,nats://10.0.0.2:4222", o.cluster)
		}
		if _, _, err := net.SplitHostPort(p.Host); err != nil {
			return fmt.Errorf("--cluster %q: %s has no port", o.cluster, u)
		}
		if p.User != nil {
			return fmt.Errorf("--cluster: %s carries credentials; credentials never go in flags (NATS authentication is not supported yet: run the NATS cluster on a private network, docs/DEPLOY.md)", p.Host)
		}
	}
	switch {
	case o.DataDir == "":
		return errors.New("--cluster needs --data-dir: it keeps this node's cluster key, sealed (the messages are in the cluster)")
	case o.rotateSeal || o.BackupTo != "" || o.recoveryAddr != "":
		return errors.New("--rotate-seal-key, --backup-to and --recovery-listen work on a single-node data dir, not with --cluster (the messages are in JetStream; docs/DEPLOY.md)")
	case set["mailbox-bytes"]:
		return errors.New("--mailbox-bytes has no JetStream counterpart (a stream limits messages per subject, not bytes); with --cluster use --mailbox-messages and --mailbox-total-bytes")
	case set["pace-backlog"] || set["pace-wait"]:
		return errors.New("--pace-backlog and --pace-wait pace senders by a mailbox's backlog on this node; a --cluster node's mailboxes are in JetStream and it does not pace: drop them with --cluster")
	case set["dedup-ids"]:
		return errors.New("--dedup-ids has no JetStream counterpart (the stream remembers every message id of its --dedup-window); drop it with --cluster")
	case o.clusterReplicas < 1 || o.clusterReplicas > 5:
		return errors.New("--cluster-replicas must be between 1 and 5 (JetStream's limit)")
	case o.clusterLease < time.Second:
		return errors.New("--cluster-lease must be at least 1s")
	}
	return nil
}

func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// errJoinUnavailable: the node would join an existing cluster, which
// needs the attested hand-off of the cluster key.
var errJoinUnavailable = errors.New("--cluster: a relay cluster already exists in this JetStream and --data-dir holds no cluster key: " +
	"a joining node may get the key only from a member, after mutual attestation under the cluster's policy (the attested hand-off): " +
	"run a member with --join-listen HOST:PORT and start this node with --join HOST:PORT (docs/DEPLOY.md)")

// openCluster connects to the NATS cluster and opens this node's share of
// the relay: the cluster key from the data dir (or a new one, for the
// first node), then the stream and buckets.
func openCluster(ctx context.Context, o *options, be *backend.Backend, log *slog.Logger) (*jetstream.Backend, func(), error) {
	opts := []nats.Option{nats.Name("relayd"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS connection lost; reconnecting", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS connection back", "server", c.ConnectedUrlRedacted()) })}
	extra, err := startup.NATSOptions(o.natsAuth)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(o.cluster, opts...)
	if err != nil {
		return nil, nil, startup.NATSConnectError(err, o.natsAuth)
	}
	dk, err := o.ClusterKey(be, clusterPurpose)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	var undo func()
	if dk == nil && o.Handoff.Join != "" {
		if dk, err = o.JoinKey(ctx, be, clusterPurpose, log); err != nil {
			nc.Close()
			return nil, nil, err
		}
	} else if dk != nil && o.Handoff.Join != "" {
		log.Info("--join: the data dir already holds the cluster key (an earlier join completed); no join needed", "data_dir", o.DataDir)
	}
	if dk == nil {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		exists, err := jetstream.Initialized(cctx, nc)
		cancel()
		switch {
		case err != nil:
			nc.Close()
			return nil, nil, fmt.Errorf("--cluster: reading the cluster's state: %w", err)
		case exists:
			nc.Close()
			return nil, nil, errJoinUnavailable
		}
		if dk, undo, err = o.CreateClusterKey(be, clusterPurpose, log); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	jb, err := jetstream.Open(ctx, jetstream.Config{
		Conn: nc, Key: dk, Replicas: o.clusterReplicas, Lease: o.clusterLease,
		MaxMessages: int64(o.mailboxMsgs), MaxBytes: o.totalBytes, DedupWindow: o.dedupWindow, Logger: log,
	})
	if err != nil {
		if undo != nil {
			undo()
		}
		nc.Close()
		if errors.Is(err, jetstream.ErrOtherKey) && undo != nil {
			// Another first node won the race: this one is joining.
			return nil, nil, errJoinUnavailable
		}
		if errors.Is(err, jetstream.ErrOtherKey) {
			return nil, nil, fmt.Errorf("--cluster: the cluster key in --data-dir %s is not the key of the relay cluster in this JetStream (another cluster's data dir?)", o.DataDir)
		}
		return nil, nil, fmt.Errorf("--cluster: %w", err)
	}
	if err := o.ServeJoins(ctx, be, clusterPurpose, dk, log); err != nil {
		jb.Close()
		nc.Close()
		return nil, nil, err
	}
	log.Info("mailboxes and registry in the JetStream cluster", "replicas", o.clusterReplicas, "lease", o.clusterLease.String())
	return jb, func() { jb.Close(); nc.Close() }, nil
}

var _ relay.Holders = (*jetstream.Holders)(nil)
