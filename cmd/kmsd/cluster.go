package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	kmsjs "github.com/sharedenclave/sharedenclave/kms/jetstream"
	"github.com/sharedenclave/sharedenclave/store"
)

// checkCluster validates --cluster and the flags that go with it.
func checkCluster(o *options) error {
	if o.cluster == "" {
		if o.Handoff.Join != "" || o.Handoff.JoinListen != "" {
			return errors.New("--join and --join-listen need --cluster: they share a cluster's data key between its nodes")
		}
		if o.natsAuth != (startup.NATSAuth{}) {
			return errors.New("--cluster-nkey-seed, --cluster-creds, --cluster-ca, --cluster-cert and --cluster-key need --cluster")
		}
		return nil
	}
	for _, u := range strings.Split(o.cluster, ",") {
		u = strings.TrimSpace(u)
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls") {
			return fmt.Errorf("--cluster: %q is not a NATS URL (nats://HOST:PORT or tls://HOST:PORT)", u)
		}
		if p.User != nil {
			return errors.New("--cluster: credentials in a URL are not accepted (a flag is no place for a secret); NATS authentication is not supported by kmsd yet")
		}
	}
	switch {
	case o.DataDir == "":
		return errors.New("--cluster needs --data-dir: the data dir keeps the cluster data key, sealed (the first replica makes it; docs/DEPLOY.md)")
	case o.clusterReplicas < 1 || o.clusterReplicas > 5:
		return errors.New("--cluster-replicas must be 1 to 5")
	case o.clusterBucket == "" || strings.ContainsAny(o.clusterBucket, ". *>"):
		return errors.New("--cluster-bucket must be a non-empty name without '.', ' ', '*' or '>'")
	case o.generateRoot:
		return errors.New("--generate-root with --cluster is not supported yet: the root token of a cluster is replaced by no command today")
	case o.BackupTo != "":
		return errors.New("--backup-to with --cluster: the data dir holds only the cluster data key; the records are in JetStream (back up its stream, docs/DEPLOY.md)")
	}
	return nil
}

// openCluster connects to NATS and opens the bucket under the data dir's
// data key, which is the cluster data key: the first replica's bucket is
// made with it; any other replica must already hold it in its data dir.
// A replica with a data key of its own is refused: the cluster data key
// reaches a joining replica only through the attested hand-off.
func openCluster(ctx context.Context, o *options, st *store.Store, log *slog.Logger) (*kmsjs.Store, func(), error) {
	if _, err := os.Stat(filepath.Join(o.DataDir, startup.CustodyFile)); err != nil {
		return nil, nil, fmt.Errorf("--cluster: %s has no custody file (it was made before custody), so it has no data key to share with a cluster; start with a new --data-dir", o.DataDir)
	}
	opts := []nats.Option{nats.Name("kmsd"), nats.Timeout(5 * time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false)}
	extra, err := startup.NATSOptions(o.natsAuth)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(o.cluster, opts...)
	if err != nil {
		return nil, nil, startup.NATSConnectError(err, o.natsAuth)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var bucket *kmsjs.Store
	for {
		bucket, err = kmsjs.Open(octx, kmsjs.Options{Conn: nc, Bucket: o.clusterBucket, Replicas: o.clusterReplicas, Root: st.Root(), Logger: log})
		if err == nil || errors.Is(err, kmsjs.ErrNotClusterKey) || errors.Is(err, kmsjs.ErrBucketConfig) || octx.Err() != nil {
			break
		}
		// A cluster that has just started may not place the stream yet.
		log.Warn("the cluster bucket cannot be opened yet; retrying", "err", err)
		select {
		case <-octx.Done():
		case <-time.After(time.Second):
		}
	}
	if errors.Is(err, kmsjs.ErrNotClusterKey) {
		nc.Close()
		return nil, nil, fmt.Errorf("--cluster: bucket %s belongs to a cluster whose data key is not the one in %s. A new replica joins a running cluster "+
			"through the attested hand-off of its data key: start it with an empty --data-dir and --join HOST:PORT, a member running with --join-listen HOST:PORT; "+
			"or use another --cluster-bucket for a new cluster (if %s was made by this start, remove it before trying again)", o.clusterBucket, o.DataDir, o.DataDir)
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("--cluster: %w", err)
	}
	log.Info("keys, tokens and policies are in the cluster bucket", "bucket", o.clusterBucket, "data_dir", o.DataDir)
	return bucket, func() { bucket.Close(); nc.Drain() }, nil
}
