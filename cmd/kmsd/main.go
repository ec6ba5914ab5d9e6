// Command kmsd is the Shared Enclave key management service: keys are
// generated and used inside the enclave and never leave it in the clear.
// Its API follows HashiCorp Vault's transit engine, so Vault's clients work
// unchanged; its TLS certificate is an RA-TLS certificate, so a client can
// check which enclave holds its keys during the handshake.
//
//	kmsd --simulation --data-dir kms-data --root-token-file root.token
//
// The first start writes the root token to root.token and a one-time
// recovery key to root.token.recovery, and commits the token only then. A
// lost root token is replaced, with kmsd stopped, by
//
//	kmsd --simulation --data-dir kms-data --generate-root --root-token-file root2.token < root.token.recovery
//
// With --recovery-recipients, --recovery-threshold and --recovery-shares-dir
// on the first start, the store's data key is also split among operators;
// on another machine or build kmsd then starts sealed and serves Vault's
// sys/seal-status and sys/unseal until they submit enough shares
// (docs/DEPLOY.md).
//
// Run `kmsd --help` for every flag.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/cmd/internal/cli"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/custody/unseal"
	"github.com/sharedenclave/sharedenclave/kms"
	kmsjs "github.com/sharedenclave/sharedenclave/kms/jetstream"
	"github.com/sharedenclave/sharedenclave/metrics"
	"github.com/sharedenclave/sharedenclave/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, nil))
}

type options struct {
	startup.Server
	rootTokenFile, auditLog string
	maxBody                 int64
	openSeed                bool
	seedRSARate             float64
	printRootToken          bool
	generateRoot            bool
	tlsSAN                  string
	cluster, clusterBucket  string
	clusterReplicas         int
	natsAuth                startup.NATSAuth
	stableTLSCA             bool
}

func parseFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (*options, error) {
	args = cli.Args(args)
	o := &options{}
	fs := flag.NewFlagSet("kmsd", flag.ContinueOnError)
	cli.SetUsage(fs, args, stdout, stderr, `Usage: kmsd [flags]

The Shared Enclave KMS: a Vault-transit-compatible HTTPS API whose keys never
leave the enclave. Without --simulation it must run under gramine-sgx.

On first start kmsd makes the root token and writes it to --root-token-file
(with --data-dir, also a recovery key to FILE.recovery) before committing it;
if the file cannot be written, nothing is committed. A lost root token is
replaced, with kmsd stopped, by the same command plus --generate-root and a new
--root-token-file, the recovery key on standard input.

Every flag can also be set in the --config TOML file (key = flag name) or in
the environment (KMSD_ + the flag name in upper case with '_' for '-', e.g.
KMSD_DATA_DIR). The command line wins over the environment, which wins over
the file.

Flags:
`)
	o.Register(fs, ":8443", "127.0.0.1:9413", "directory for the sealed key store (default: memory-only, keys lost on restart)")
	fs.StringVar(&o.rootTokenFile, "root-token-file", "", "on first start (or with --generate-root), write the root token to this new file and, with --data-dir,\nits recovery key to FILE.recovery (both mode 0600, never overwritten); the token is committed only once both are on disk")
	fs.BoolVar(&o.printRootToken, "print-root-token", false, "on first start (or with --generate-root), print the root token and recovery key on standard error\n(only when asked: a terminal's scrollback and a service's journal keep them)")
	fs.BoolVar(&o.generateRoot, "generate-root", false, "replace a lost root token, then exit: reads the recovery key on standard input, revokes every root token,\nwrites a new one (and a new recovery key) as on first start; kmsd must be stopped (docs/KMS-API.md)")
	fs.StringVar(&o.auditLog, "audit-log", "-", "audit log file, one JSON line per request ('-' for standard output); requests fail if it cannot be written")
	fs.Int64Var(&o.maxBody, "max-body", 1<<20, "largest request body accepted, in bytes")
	fs.BoolVar(&o.openSeed, "open-seed-endpoints", false, "serve /generate-aes-key and /generate-rsa-key-pair to callers without a token\n(default: a token whose policy grants read on seed/generate-aes-key or seed/generate-rsa-key-pair)")
	fs.Float64Var(&o.seedRSARate, "seed-rsa-rate", 1, "with --open-seed-endpoints, RSA key pairs per second for callers without a token (bursts of up to the same number, at least 1); more are answered 429")
	fs.StringVar(&o.tlsSAN, "tls-san", "", "more DNS names and IP addresses for the TLS certificate, comma-separated\n(it always names localhost, 127.0.0.1 and ::1), so that VAULT_CACERT-style checks pass for the address clients use")
	fs.StringVar(&o.cluster, "cluster", "", "NATS URLs (nats://HOST:PORT, comma-separated) of a JetStream cluster: keys, tokens and policies live in\na sealed JetStream key-value bucket shared by every kmsd replica (docs/DEPLOY.md); needs --data-dir, which keeps the cluster data key sealed")
	fs.StringVar(&o.clusterBucket, "cluster-bucket", kmsjs.DefaultBucket, "with --cluster, the key-value bucket's name")
	fs.StringVar(&o.natsAuth.CA, "cluster-ca", "", "with --cluster: PEM file of the CA the NATS servers' TLS certificates chain to; the connection then requires TLS")
	fs.StringVar(&o.natsAuth.Creds, "cluster-creds", "", "with --cluster: NATS credentials file (user JWT and nkey seed, as nsc writes it) of this replica,\nfor NATS servers in operator mode (JWT authentication); not with --cluster-nkey-seed")
	fs.StringVar(&o.natsAuth.Cert, "cluster-cert", "", "with --cluster and --cluster-key: PEM client certificate for NATS servers that verify clients' TLS certificates")
	fs.StringVar(&o.natsAuth.Key, "cluster-key", "", "with --cluster and --cluster-cert: the PEM private key of --cluster-cert")
	fs.StringVar(&o.natsAuth.NKeySeed, "cluster-nkey-seed", "", "with --cluster: file holding this replica's NATS user nkey seed (SU…), for NATS servers that require nkey authentication")
	fs.IntVar(&o.clusterReplicas, "cluster-replicas", 3, "with --cluster, how many JetStream servers hold the bucket (1 to 5) when this replica creates it")
	fs.BoolVar(&o.stableTLSCA, "stable-tls-ca", false, "keep a TLS CA key sealed in the store (needs --data-dir) and serve, at every start, a new RA-TLS certificate\n(new key, fresh quote) issued by it, with the CA in the chain and at sys/attestation: clients pin the CA once\n(VAULT_CACERT) and it stays the same across restarts")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := o.Finish(fs, "KMSD_", getenv, nil); err != nil {
		return nil, err
	}
	if err := checkCluster(o); err != nil {
		return nil, err
	}
	if _, err := tlsHosts(o.tlsSAN); err != nil {
		return nil, err
	}
	switch {
	case o.maxBody < 1024:
		return nil, errors.New("--max-body must be at least 1024")
	case !(o.seedRSARate > 0) || math.IsInf(o.seedRSARate, 0):
		return nil, errors.New("--seed-rsa-rate must be a positive number of RSA key pairs per second")
	case o.stableTLSCA && o.DataDir == "":
		return nil, errors.New("--stable-tls-ca needs --data-dir: the CA key is sealed in the store (a memory-only kmsd has nowhere to keep it)")
	case o.generateRoot && o.BackupTo != "":
		return nil, errors.New("--generate-root and --backup-to are two separate runs: give one of them")
	case o.generateRoot && o.DataDir == "":
		return nil, errors.New("--generate-root needs the --data-dir of the store whose root token is lost (a memory-only kmsd makes a new root token at every start)")
	case o.generateRoot && o.rootTokenFile == "" && !o.printRootToken:
		return nil, errors.New("--generate-root needs --root-token-file FILE (a new file) or --print-root-token for the new root token")
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, ready chan<- string) int {
	o, err := parseFlags(args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kmsd: %v\n", err)
		return 2
	}
	log, err := startup.Logger(o.LogFormat, o.LogLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kmsd: %v\n", err)
		return 2
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "kmsd: "+format+"\n", args...)
		return 1
	}

	be, err := backend.Open(backend.Options{
		Simulation: o.Simulation, SimDir: o.SimDir, CreateSim: true, SimISVProdID: 3, SimISVSVN: 1,
		GramineDir: o.GramineDir, PCCS: o.PCCS, CollateralDir: o.Collateral, RootPEM: o.Root,
	})
	if err != nil {
		return fail("attestation backend: %v", err)
	}
	if be.Simulated {
		log.Warn("SIMULATION MODE: attestation uses a simulated SGX platform; this is not a real enclave",
			"sim_dir", o.SimDir, "mrenclave", be.Self.MREnclave.String())
	}

	if o.Handoff.Listen != "" {
		if err := o.ServeHandoff(ctx, be, "kms", log); err != nil {
			return fail("%v", err)
		}
		return 0
	}
	var st *store.Store
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	var sealed *startup.Sealed
	if o.DataDir != "" {
		var err error
		if st, sealed, err = o.OpenStore(be, "kms", log); err != nil {
			return fail("%v", err)
		}
		if sealed != nil && o.BackupTo != "" {
			return fail("--backup-to: the data dir is sealed (its data key does not open on this machine or build); copy the stopped data dir as it is, or unseal it first (docs/DEPLOY.md)")
		}
		if st != nil && o.BackupTo != "" {
			if err := o.Backup(st, o.BackupTo, log); err != nil {
				return fail("%v", err)
			}
			return 0
		}
		if sealed != nil && o.generateRoot {
			return fail("--generate-root: the data dir is sealed (its data key does not open on this machine or build); start kmsd without --generate-root, unseal it with the recovery shares (docs/DEPLOY.md), then stop it and run --generate-root")
		}
		if st != nil {
			log.Info("keys are durable and sealed", "data_dir", o.DataDir, "seal_policy", o.SealPolicy)
		}
	} else {
		log.Warn("keys are memory-only: a restart loses every key (use --data-dir)")
	}

	audit := stdout
	if o.auditLog != "-" {
		f, err := os.OpenFile(o.auditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fail("audit log: %v", err)
		}
		defer f.Close()
		audit = f
	}

	hosts, _ := tlsHosts(o.tlsSAN) // checked by parseFlags
	// newCert makes this start's RA-TLS certificate: self-signed, or with
	// --stable-tls-ca issued by the store's CA (once the store is open;
	// a sealed kmsd serves a self-signed one until it is unsealed).
	newCert := func(st *store.Store) (cert tls.Certificate, legacyQuote []byte, err error) {
		opts := atls.CertOptions{CommonName: "Shared Enclave KMS", Hosts: hosts}
		if o.stableTLSCA && st != nil {
			ca, made, err := stableCA(st, time.Now())
			if err != nil {
				return cert, nil, err
			}
			fp := sha256.Sum256(ca.Certificate[0])
			log.Info("TLS certificates are issued by the CA sealed in the store (--stable-tls-ca); clients pin the CA (sys/attestation: ca_certificate)",
				"ca_sha256", hex.EncodeToString(fp[:]), "new_ca", made, "ca_not_after", ca.Leaf.NotAfter)
			opts.CA = ca
		}
		if cert, err = atls.NewCertificate(ctx, be.Attester, opts, atls.GramineStandard, atls.GramineLegacy); err != nil {
			return cert, nil, fmt.Errorf("RA-TLS certificate: %w", err)
		}
		for _, e := range cert.Leaf.Extensions {
			if e.Id.Equal(atls.OIDGramineQuote) {
				legacyQuote = e.Value
			}
		}
		return cert, legacyQuote, nil
	}
	cert, legacyQuote, err := newCert(st)
	if err != nil {
		return fail("%v", err)
	}
	tcfg := atls.ServerConfig(cert)
	tcfg.NextProtos = []string{"h2", "http/1.1"}
	var served atomic.Pointer[tls.Certificate]
	if o.stableTLSCA {
		// The certificate changes once, when a sealed kmsd is unsealed.
		served.Store(&cert)
		tcfg.Certificates = nil
		tcfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return served.Load(), nil }
	}
	handler := &swapHandler{}
	srv := &http.Server{
		Handler: handler, TLSConfig: tcfg,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	var ln net.Listener
	errc := make(chan error, 1)
	listen := func(sealed bool) error {
		var err error
		if ln, err = net.Listen("tcp", o.Listen); err != nil {
			return err
		}
		go func() { errc <- srv.Serve(tls.NewListener(ln, tcfg)) }()
		log.Info("kmsd listening", "addr", ln.Addr().String(), "attestation", be.Description, "sealed", sealed)
		if ready != nil {
			ready <- ln.Addr().String()
		}
		return nil
	}
	markServing := func() {}
	if sealed != nil {
		// Sealed: serve only the attestation and the recovery endpoint
		// until the operators' shares open the data key, then go on.
		// The answer to the last share waits until the KMS serves (or
		// kmsd stops), so that an operator who sees "unsealed" can use it.
		opened, serving := make(chan *store.Store, 1), make(chan struct{})
		var once sync.Once
		markServing = func() { once.Do(func() { close(serving) }) }
		defer markServing()
		u, err := unseal.New(unseal.Config{
			Recovery: sealed.Recovery, Service: "kmsd", Version: version(), Logger: log,
			Attestation: &unseal.Attestation{Certificate: cert.Certificate[0], Quote: legacyQuote, Simulated: be.Simulated},
			Open: func(dk *custody.DataKey) error {
				s, err := sealed.Open(dk)
				if err != nil {
					return err
				}
				opened <- s
				<-serving
				return nil
			},
		})
		if err != nil {
			return fail("%v", err)
		}
		handler.set(u)
		if err := listen(true); err != nil {
			return fail("%v", err)
		}
		select {
		case st = <-opened:
			log.Info("kmsd unsealed: keys are durable and sealed", "data_dir", o.DataDir, "seal_policy", o.SealPolicy)
			if o.stableTLSCA {
				if cert, legacyQuote, err = newCert(st); err != nil {
					markServing()
					return fail("%v", err)
				}
				served.Store(&cert)
			}
		case err := <-errc:
			return fail("serve: %v", err)
		case <-ctx.Done():
			markServing()
			sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownWait)
			defer cancel()
			srv.Shutdown(sctx)
			select {
			case st = <-opened:
			default:
			}
			log.Info("kmsd stopped (sealed)")
			return 0
		}
	}
	var shared kms.Storage
	if o.cluster != "" {
		bucket, closeBucket, err := openCluster(ctx, o, st, log)
		if err != nil {
			return fail("%v", err)
		}
		defer closeBucket()
		shared = bucket
		if o.Handoff.JoinListen != "" {
			dk, err := o.OpenDataKey(be, "kms")
			if err != nil {
				return fail("--join-listen: %v", err)
			}
			if err := o.ServeJoins(ctx, be, "kms", dk, log); err != nil {
				return fail("%v", err)
			}
		}
	}
	local := st
	if shared != nil {
		local = nil // the data dir keeps only the sealed cluster data key
	}
	reg := metrics.New("kmsd", be.Simulated)
	if local != nil {
		reg.StoreSequence(local.Sequence())
	}
	var svc *kms.Service
	kmsMetrics := reg.NewKMS(func() int { return svc.KeyCount() })
	var snap func() (func(io.Writer) error, error)
	snapRefusal := ""
	switch {
	case shared != nil:
		snapRefusal = "kmsd --cluster keeps its records in JetStream, not in --data-dir: back up the bucket's stream (KV_" + o.clusterBucket +
			", whose values are sealed) with JetStream's own tools, and each replica's custody.json"
	case local != nil:
		snap = func() (func(io.Writer) error, error) { return o.PrepareSnapshot(local, log) }
	}
	svc, err = kms.New(kms.Config{
		Snapshot: snap, SnapshotRefusal: snapRefusal,
		Metrics: kmsMetrics, Storage: shared,
		Store: local, Audit: audit, Verifier: be.Verifier, MaxBody: o.maxBody, Logger: log,
		SeedOpen: o.openSeed, SeedRSARate: o.seedRSARate,
		Attestation: &kms.AttestationInfo{Certificate: cert.Certificate[0], CA: caOfChain(cert), Quote: legacyQuote, Simulated: be.Simulated},
	})
	if err != nil {
		return fail("%v", err)
	}
	dest := rootDestination{file: o.rootTokenFile, print: o.printRootToken, stderr: stderr}
	if o.generateRoot {
		err := svc.GenerateRoot(func() (string, error) { return readRecoveryKey(stdin) }, dest.deliver)
		if err != nil {
			dest.withdraw()
			return fail("generate-root: %v", err)
		}
		log.Info("new root token installed; every previous root token and the old recovery key are revoked", "file", o.rootTokenFile)
		return 0
	}
	created, err := svc.Bootstrap(dest.deliver)
	if err != nil {
		dest.withdraw()
		return fail("root token: %v", err)
	}
	if created && o.rootTokenFile != "" {
		log.Info("root token created and written", "file", o.rootTokenFile)
	}

	handler.set(svc.Handler())
	markServing()
	if o.MetricsListen != "" {
		stopMetrics, err := startup.ServeMetrics(o.MetricsListen, reg.Handler(), log)
		if err != nil {
			return fail("%v", err)
		}
		defer stopMetrics()
	}
	if o.openSeed {
		log.Warn("the seed endpoints are open to callers without a token (--open-seed-endpoints)", "seed_rsa_rate", o.seedRSARate)
	}
	reg.SetReady(true)
	if ln == nil {
		if err := listen(false); err != nil {
			return fail("%v", err)
		}
	}
	select {
	case err := <-errc:
		return fail("serve: %v", err)
	case <-ctx.Done():
	}
	reg.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out", "err", err)
	}
	log.Info("kmsd stopped")
	return 0
}

// caOfChain is the CA certificate that follows the leaf in a chain, or nil.
func caOfChain(c tls.Certificate) []byte {
	if len(c.Certificate) > 1 {
		return c.Certificate[1]
	}
	return nil
}

// swapHandler serves the unseal handler while kmsd is sealed, then the
// KMS, on the same RA-TLS listener.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// version is the module version kmsd was built from, as sys/seal-status
// reports it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "shared-enclave " + bi.Main.Version
	}
	return "shared-enclave"
}

// tlsHosts splits --tls-san into DNS names and IP addresses, refusing
// anything that is neither.
func tlsHosts(list string) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if net.ParseIP(h) == nil && !validDNSName(h) {
			return nil, fmt.Errorf("--tls-san: %q is neither an IP address nor a DNS name", h)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

func validDNSName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimPrefix(h, "*."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
