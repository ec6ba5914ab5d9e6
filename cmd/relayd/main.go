// Command relayd is the Shared Enclave relay: client enclaves connect over
// TLS, attest each other with the relay (DCAP quotes bound to the TLS
// session), register an id, send data to other ids and poll for theirs.
//
//	relayd --simulation                      # simulated platform in ./.sim, created if missing
//	relayd --policy relay-policy.toml        # under gramine-sgx
//
// With --data-dir, the mailboxes can be recovered on another machine or
// build by operators' shares (--recovery-recipients, --recovery-threshold,
// --recovery-shares-dir at the first start; --recovery-listen while
// sealed; docs/DEPLOY.md).
//
// Run `relayd --help` for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/cmd/internal/cli"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/metrics"
	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

type options struct {
	startup.Server
	rotateSeal    bool
	recoveryAddr  string
	policy        string
	maxPayload    int
	mailboxMsgs   int
	mailboxBytes  int64
	totalBytes    int64
	maxConns      int
	idleTimeout   time.Duration
	attestTimeout time.Duration
	ackWait       time.Duration
	maxCredit     int
	maxBatch      int
	maxFetchWait  time.Duration
	dedupWindow   time.Duration
	dedupIDs      int
	paceBacklog   int
	paceWait      time.Duration

	backupDir string

	cluster         string
	natsAuth        startup.NATSAuth
	clusterReplicas int
	clusterLease    time.Duration
}

func parseFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (*options, error) {
	args = cli.Args(args)
	o := &options{}
	fs := flag.NewFlagSet("relayd", flag.ContinueOnError)
	cli.SetUsage(fs, args, stdout, stderr, `Usage: relayd [flags]

The Shared Enclave relay. Without --simulation it must run under gramine-sgx
with DCAP attestation, and --policy must say which client enclaves may connect.

Every flag can also be set in the --config TOML file (key = flag name, e.g.
listen = ":12345") or in the environment (RELAYD_ + the flag name in upper
case with '_' for '-', e.g. RELAYD_DATA_DIR). The command line wins over the
environment, which wins over the file.

Flags:
`)
	o.Register(fs, ":12345", "127.0.0.1:9412", "directory for durable, sealed mailboxes (default: memory-only, lost on restart)")
	fs.BoolVar(&o.rotateSeal, "rotate-seal-key", false, "at start, move the data dir to a new seal key generation and re-seal every record")
	fs.StringVar(&o.recoveryAddr, "recovery-listen", "", "if the data dir's data key does not open here (another machine or build), serve the recovery endpoint\n(HTTPS, RA-TLS certificate) on this address until the operators' shares unseal it (docs/DEPLOY.md)")
	fs.StringVar(&o.policy, "policy", "", "TOML policy: which client enclaves may connect, optional id bindings (required under SGX)")
	fs.IntVar(&o.maxPayload, "max-payload", wire.DefaultMaxPayload, "largest frame payload accepted, in bytes")
	fs.IntVar(&o.mailboxMsgs, "mailbox-messages", 1024, "messages a mailbox holds before SEND_NACK \"mailbox full\"")
	fs.Int64Var(&o.mailboxBytes, "mailbox-bytes", 16<<20, "data bytes a mailbox holds before SEND_NACK \"mailbox full\"")
	fs.Int64Var(&o.totalBytes, "mailbox-total-bytes", 1<<30, "data bytes all in-memory mailboxes together hold before SEND_NACK \"relay full\"")
	fs.IntVar(&o.maxConns, "max-conns", 10000, "concurrent connections accepted")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 5*time.Minute, "close a session that sends nothing for this long")
	fs.DurationVar(&o.attestTimeout, "attest-timeout", 15*time.Second, "deadline for the TLS handshake and attestation")
	fs.DurationVar(&o.ackWait, "ack-wait", 30*time.Second, "a pushed or fetched message not acknowledged for this long is redelivered")
	fs.IntVar(&o.maxCredit, "max-credit", 1024, "most credit (messages) a push subscription may hold")
	fs.IntVar(&o.maxBatch, "max-fetch-batch", 256, "most messages one FETCH may ask for (at most 65535)")
	fs.DurationVar(&o.maxFetchWait, "max-fetch-wait", 30*time.Second, "longest wait one FETCH may ask for")
	fs.DurationVar(&o.dedupWindow, "dedup-window", 2*time.Minute, "how long a message id (SEND_ID) is remembered to drop duplicates")
	fs.IntVar(&o.dedupIDs, "dedup-ids", 100000, "message ids remembered at once; a SEND_ID with a new id beyond it is refused")
	fs.IntVar(&o.paceBacklog, "pace-backlog", 1024, "when an id whose session receives (subscribed or fetching) has this many messages untaken, a session\nsending to it reads no more until it has taken them below half (at most --pace-wait), instead of filling the mailbox")
	fs.DurationVar(&o.paceWait, "pace-wait", 10*time.Millisecond, "longest a paced sender waits at a time; 0 turns pacing off")
	fs.StringVar(&o.backupDir, "backup-dir", "", "online backups: POST /backup on --metrics-listen writes a snapshot of the running relay into this directory\n(needs --data-dir; restore with enclavectl backup restore; docs/DEPLOY.md)")
	fs.StringVar(&o.cluster, "cluster", "", "NATS URLs (nats://HOST:PORT,…) of a JetStream cluster: this relayd is one node of a relay whose mailboxes\nand registry are there, sealed under the cluster key kept in --data-dir (docs/DEPLOY.md, \"A relay cluster\")")
	fs.StringVar(&o.natsAuth.CA, "cluster-ca", "", "with --cluster: PEM file of the CA the NATS servers' TLS certificates chain to; the connection then requires TLS")
	fs.StringVar(&o.natsAuth.Creds, "cluster-creds", "", "with --cluster: NATS credentials file (user JWT and nkey seed, as nsc writes it) of this node,\nfor NATS servers in operator mode (JWT authentication); not with --cluster-nkey-seed")
	fs.StringVar(&o.natsAuth.Cert, "cluster-cert", "", "with --cluster and --cluster-key: PEM client certificate for NATS servers that verify clients' TLS certificates")
	fs.StringVar(&o.natsAuth.Key, "cluster-key", "", "with --cluster and --cluster-cert: the PEM private key of --cluster-cert")
	fs.StringVar(&o.natsAuth.NKeySeed, "cluster-nkey-seed", "", "with --cluster: file holding this node's NATS user nkey seed (SU…), for NATS servers that require nkey authentication")
	fs.IntVar(&o.clusterReplicas, "cluster-replicas", 3, "with --cluster: JetStream replicas of the relay's stream and buckets")
	fs.DurationVar(&o.clusterLease, "cluster-lease", 10*time.Second, "with --cluster: an id held by a node that stopped renewing it is free again after this long")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := o.Finish(fs, "RELAYD_", getenv, map[string]string{"--policy": o.policy}); err != nil {
		return nil, err
	}
	if err := o.checkCluster(setFlags(fs)); err != nil {
		return nil, err
	}
	switch {
	case o.recoveryAddr != "" && o.DataDir == "":
		return nil, errors.New("--recovery-listen needs --data-dir: a memory-only relay has nothing to recover")
	case o.recoveryAddr != "" && !validAddr(o.recoveryAddr):
		return nil, fmt.Errorf("--recovery-listen %q: want HOST:PORT, e.g. 127.0.0.1:8444", o.recoveryAddr)
	case o.backupDir != "" && (o.DataDir == "" || o.cluster != ""):
		return nil, errors.New("--backup-dir backs up --data-dir's store: it needs --data-dir, and a --cluster node keeps its mailboxes in JetStream")
	case o.backupDir != "" && o.MetricsListen == "":
		return nil, errors.New("--backup-dir is served as POST /backup on --metrics-listen: give --metrics-listen too (e.g. 127.0.0.1:9412)")
	case o.backupDir != "" && o.BackupTo != "":
		return nil, errors.New("--backup-dir (online backups of a running relay) does not go with --backup-to (a one-shot backup)")
	case o.rotateSeal && o.DataDir == "":
		return nil, errors.New("--rotate-seal-key needs --data-dir")
	case o.maxPayload < 1 || o.maxPayload > 64<<20:
		return nil, errors.New("--max-payload must be between 1 and 67108864")
	case o.mailboxMsgs < 1 || o.mailboxBytes < 1 || o.totalBytes < 1:
		return nil, errors.New("--mailbox-messages, --mailbox-bytes and --mailbox-total-bytes must be positive")
	case o.maxConns < 1:
		return nil, errors.New("--max-conns must be positive")
	case o.idleTimeout <= 0 || o.attestTimeout <= 0:
		return nil, errors.New("timeouts must be positive")
	case o.ackWait <= 0 || o.ackWait > 0xFFFFFFFF*time.Millisecond:
		return nil, errors.New("--ack-wait must be positive and under 49 days")
	case o.maxFetchWait <= 0 || o.maxFetchWait > 0xFFFFFFFF*time.Millisecond:
		return nil, errors.New("--max-fetch-wait must be positive and under 49 days")
	case o.maxCredit < 1:
		return nil, errors.New("--max-credit must be positive")
	case o.maxBatch < 1 || o.maxBatch > 0xFFFF:
		return nil, errors.New("--max-fetch-batch must be between 1 and 65535")
	case o.dedupWindow <= 0 || o.dedupIDs < 1:
		return nil, errors.New("--dedup-window and --dedup-ids must be positive")
	case o.paceBacklog < 1:
		return nil, errors.New("--pace-backlog must be positive (turn pacing off with --pace-wait 0)")
	case o.paceWait < 0 || o.paceWait > time.Minute:
		return nil, errors.New("--pace-wait must be between 0 (no pacing) and 1m")
	}
	return o, nil
}

// run starts relayd and blocks until ctx is done; ready, if not nil,
// receives the listening address.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) int {
	o, err := parseFlags(args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "relayd: %v\n", err)
		return 2
	}
	log, err := startup.Logger(o.LogFormat, o.LogLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "relayd: %v\n", err)
		return 2
	}
	be, err := backend.Open(backend.Options{
		Simulation: o.Simulation, SimDir: o.SimDir, CreateSim: true, SimISVProdID: 1, SimISVSVN: 1,
		GramineDir: o.GramineDir, PCCS: o.PCCS, CollateralDir: o.Collateral, RootPEM: o.Root,
	})
	if err != nil {
		fmt.Fprintf(stderr, "relayd: attestation backend: %v\n", err)
		return 1
	}
	clients := be.DefaultPolicy
	var bindings map[string]*attest.Policy
	if o.policy != "" {
		f, err := policyfile.Load(o.policy)
		if err != nil {
			fmt.Fprintf(stderr, "relayd: %v\n", err)
			return 1
		}
		if clients, err = f.Peers.Policy(); err != nil {
			fmt.Fprintf(stderr, "relayd: --policy %s: [peers]: %v\nhint: [peers] must name mrenclave or mrsigner values (docs/DEPLOY.md, step 5)\n", o.policy, err)
			return 1
		}
		bindings = map[string]*attest.Policy{}
		for _, b := range f.Bindings {
			if bindings[b.ID], err = b.Policy(); err != nil {
				fmt.Fprintf(stderr, "relayd: --policy %s: binding for id %q: %v\nhint: each [[bindings]] entry must name mrenclave or mrsigner values\n", o.policy, b.ID, err)
				return 1
			}
		}
	}
	if clients == nil {
		fmt.Fprintln(stderr, "relayd: --policy is required under SGX: it says which client enclaves may connect")
		return 2
	}
	if be.Simulated {
		log.Warn("SIMULATION MODE: attestation uses a simulated SGX platform; this is not a real enclave",
			"sim_dir", o.SimDir, "mrenclave", be.Self.MREnclave.String(), "mrsigner", be.Platform.MRSigner().String())
	}
	if o.Handoff.Listen != "" {
		if err := o.ServeHandoff(ctx, be, "relay", log); err != nil {
			fmt.Fprintf(stderr, "relayd: %v\n", err)
			return 1
		}
		return 0
	}
	var boxes relay.Mailboxes
	var holders relay.Holders
	var backups *startup.BackupDir
	var storeSeq uint64
	if o.cluster != "" {
		jb, closeCluster, err := openCluster(ctx, o, be, log)
		if err != nil {
			fmt.Fprintf(stderr, "relayd: %v\n", err)
			return 1
		}
		defer closeCluster()
		boxes, holders = jb.Mailboxes(), jb.Holders()
	} else if o.DataDir == "" {
		log.Warn("mailboxes are memory-only: a restart loses every queued message (use --data-dir for durable, sealed mailboxes)")
	} else {
		st, sealed, err := o.OpenStore(be, "relay", log)
		if err == nil && sealed != nil && o.BackupTo != "" {
			err = errors.New("--backup-to: the data dir is sealed (its data key does not open on this machine or build); copy the stopped data dir as it is, or unseal it first (docs/DEPLOY.md)")
		}
		if err == nil && sealed != nil {
			st, err = recoverStore(ctx, o, be, sealed, log)
		}
		if err != nil {
			fmt.Fprintf(stderr, "relayd: %v\n", err)
			return 1
		}
		if st == nil {
			log.Info("relayd stopped (sealed)")
			return 0
		}
		defer st.Close()
		if o.BackupTo != "" {
			if err := o.Backup(st, o.BackupTo, log); err != nil {
				fmt.Fprintf(stderr, "relayd: %v\n", err)
				return 1
			}
			return 0
		}
		if o.rotateSeal {
			n, err := st.Rotate()
			if err != nil {
				fmt.Fprintf(stderr, "relayd: rotating the seal key: %v\n", err)
				return 1
			}
			log.Info("seal key rotated", "generation", st.Sealer().Generation(), "records_resealed", n)
		}
		storeSeq = st.Sequence()
		if o.backupDir != "" {
			if backups, err = o.NewBackupDir(st, o.backupDir, log); err != nil {
				fmt.Fprintf(stderr, "relayd: %v\n", err)
				return 1
			}
		}
		dm, err := relay.OpenDurableMailboxes(st, relay.Limits{MaxMessages: o.mailboxMsgs, MaxBytes: o.mailboxBytes, DedupWindow: o.dedupWindow, MaxDedupIDs: o.dedupIDs}, log)
		if err != nil {
			fmt.Fprintf(stderr, "relayd: %v\n", err)
			return 1
		}
		boxes = dm
		log.Info("mailboxes are durable and sealed", "data_dir", o.DataDir, "seal_policy", o.SealPolicy)
	}

	cert, err := atls.NewKeyCertificate(atls.CertOptions{CommonName: "Shared Enclave relay"})
	if err != nil {
		fmt.Fprintf(stderr, "relayd: %v\n", err)
		return 1
	}
	reg := metrics.New("relayd", be.Simulated)
	if storeSeq != 0 {
		reg.StoreSequence(storeSeq)
	}
	var srv *relay.Server
	relayMetrics := reg.NewRelay(func() (int64, int64) { return srv.Totals() })
	srv, err = relay.New(relay.Config{
		Metrics:     relayMetrics,
		Certificate: cert,
		Peer:        &atls.Peer{Attester: be.Attester, Verifier: be.Verifier, Policy: clients, Timeout: o.attestTimeout},
		Bindings:    bindings,
		Mailboxes:   boxes,
		Holders:     holders,
		Limits:      relay.Limits{MaxMessages: o.mailboxMsgs, MaxBytes: o.mailboxBytes, MaxTotalBytes: o.totalBytes, DedupWindow: o.dedupWindow, MaxDedupIDs: o.dedupIDs},
		MaxPayload:  o.maxPayload,
		MaxConns:    o.maxConns,
		IdleTimeout: o.idleTimeout,
		Logger:      log,

		AckWait:      o.ackWait,
		MaxCredit:    o.maxCredit,
		MaxBatch:     o.maxBatch,
		MaxFetchWait: o.maxFetchWait,
		PaceBacklog:  o.paceBacklog,
		PaceWait:     paceWait(o.paceWait),
	})
	if err != nil {
		fmt.Fprintf(stderr, "relayd: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "relayd: %v\n", err)
		return 1
	}
	if o.MetricsListen != "" {
		var h http.Handler = reg.Handler()
		if backups != nil {
			mux := http.NewServeMux()
			mux.Handle("/", h)
			mux.Handle("POST /backup", backups)
			mux.HandleFunc("/backup", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Allow", "POST")
				http.Error(w, "POST /backup takes a backup", http.StatusMethodNotAllowed)
			})
			h = mux
		}
		stopMetrics, err := startup.ServeMetrics(o.MetricsListen, h, log)
		if err != nil {
			fmt.Fprintf(stderr, "relayd: %v\n", err)
			return 1
		}
		defer stopMetrics()
	}
	reg.SetReady(true)
	log.Info("relayd listening", "addr", ln.Addr().String(), "attestation", be.Description)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		log.Error("serve failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	reg.SetReady(false)
	log.Info("shutting down: no new connections; finishing in-flight requests", "timeout", o.ShutdownWait.String())
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out; remaining connections closed", "err", err)
	}
	log.Info("relayd stopped")
	return 0
}

// paceWait maps --pace-wait to relay.Config.PaceWait, where 0 means the
// default and a negative value no pacing.
func paceWait(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
