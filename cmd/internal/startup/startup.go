// Package startup holds the checks and side listeners that relayd and
// kmsd share at start: validating the mode and the paths they were given,
// building the logger, and serving metrics. It reads no flags and no
// environment; main passes the values.
package startup

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/cmd/internal/flagconf"
	"github.com/sharedenclave/sharedenclave/store"
)

// checkMode refuses combinations that would mix simulation and SGX trust
// roots.
func checkMode(simulation bool, simDir, root, pccs, collateral string) error {
	if simulation && (root != "" || pccs != "" || collateral != "") {
		return errors.New("conflicting options: --simulation verifies against the simulated platform's own root and collateral; drop --root, --pccs and --collateral")
	}
	if !simulation && simDir != "" {
		return errors.New("conflicting options: --sim-dir without --simulation")
	}
	return nil
}

// checkFiles requires every non-empty path to exist; files maps a flag
// name (for the message) to its path.
func checkFiles(files map[string]string) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if p := files[n]; p != "" {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("%s: %v", n, err)
			}
		}
	}
	return nil
}

// checkAddr validates a HOST:PORT listen address.
func checkAddr(flagName, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %v", flagName, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s %q: port must be a number from 0 to 65535", flagName, addr)
	}
	return nil
}

// Logger returns a slog logger writing text or JSON at level to w.
func Logger(format, level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	}
	return nil, errors.New("--log-format must be text or json")
}

// ServeMetrics serves h on addr (metrics and health) until the returned
// stop function is called.
func ServeMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// Server holds the options relayd and kmsd share, one flag each.
type Server struct {
	Config, Listen, MetricsListen, Root                       string
	Simulation                                                bool
	SimDir, DataDir, SealPolicy, PCCS, Collateral, GramineDir string
	LogFormat, LogLevel                                       string
	ShutdownWait                                              time.Duration

	// Recovery shares, made when a new data dir is created (custody.go).
	RecoveryRecipients, RecoverySharesDir string
	RecoveryThreshold                     int
	recipients                            []string
	// BackupTo: write a backup of the data dir there, then exit.
	BackupTo string
	// Handoff: the upgrade hand-off (handoff.go).
	Handoff Handoff
}

// Register defines the shared flags on fs; listen is the default listen
// address and dataDirUse says what the data directory holds.
func (s *Server) Register(fs *flag.FlagSet, listen, metricsExample, dataDirUse string) {
	fs.StringVar(&s.Config, "config", "", "TOML configuration file (keys are flag names)")
	fs.StringVar(&s.Listen, "listen", listen, "address to listen on")
	fs.StringVar(&s.MetricsListen, "metrics-listen", "", "address for /metrics, /healthz and /readyz (default: off), e.g. "+metricsExample)
	fs.BoolVar(&s.Simulation, "simulation", false, "use the simulated SGX platform in --sim-dir (NOT a real enclave)")
	fs.StringVar(&s.SimDir, "sim-dir", "", "simulated platform directory, created if missing (default .sim, with --simulation)")
	fs.StringVar(&s.DataDir, "data-dir", "", dataDirUse)
	fs.StringVar(&s.SealPolicy, "seal-policy", backend.SealMREnclave, "who can unseal the data dir: mrenclave (this build only) or mrsigner (any build of the same signer)")
	fs.StringVar(&s.Root, "root", "", "trusted root CA (PEM) instead of Intel's SGX Root CA (SGX mode only)")
	fs.StringVar(&s.PCCS, "pccs", "", "PCCS or PCS v4 base URL for collateral (SGX; default Intel PCS)")
	fs.StringVar(&s.Collateral, "collateral", "", "collateral directory instead of a PCCS (SGX)")
	fs.StringVar(&s.GramineDir, "gramine-dir", "/dev/attestation", "Gramine attestation directory (SGX)")
	fs.DurationVar(&s.ShutdownWait, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long to let work in flight finish")
	fs.StringVar(&s.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&s.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&s.RecoveryRecipients, "recovery-recipients", "", "with a new --data-dir: file of the operators' age X25519 recipients (age1…, one per line),\none recovery share each, any --recovery-threshold of which recover the data key on another machine or build")
	fs.IntVar(&s.RecoveryThreshold, "recovery-threshold", 0, "how many recovery shares recover the data key (2 ≤ K ≤ the number of recipients)")
	fs.StringVar(&s.BackupTo, "backup-to", "", "write a consistent backup of --data-dir to this new directory, then exit (the service must be stopped);\nrestore it by starting on a copy of it: on another machine or build it opens through recovery")
	s.Handoff.register(fs)
	fs.StringVar(&s.RecoverySharesDir, "recovery-shares-dir", "", "directory for the recovery share files, each encrypted to its operator (new files, mode 0600)")
}

// Finish fills unset flags from the config file and the environment
// (flagconf), then validates the shared options and requires the extra
// files (flag name → path) to exist.
func (s *Server) Finish(fs *flag.FlagSet, envPrefix string, getenv func(string) string, extraFiles map[string]string) error {
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := flagconf.Apply(fs, s.Config, envPrefix, getenv); err != nil {
		return err
	}
	if err := checkMode(s.Simulation, s.SimDir, s.Root, s.PCCS, s.Collateral); err != nil {
		return err
	}
	files := map[string]string{"--root": s.Root, "--collateral": s.Collateral}
	for k, v := range extraFiles {
		files[k] = v
	}
	if err := checkFiles(files); err != nil {
		return err
	}
	if s.Simulation && s.SimDir == "" {
		s.SimDir = ".sim"
	}
	if s.SealPolicy != backend.SealMREnclave && s.SealPolicy != backend.SealMRSigner {
		return errors.New("--seal-policy must be mrenclave or mrsigner")
	}
	if s.ShutdownWait <= 0 {
		return errors.New("--shutdown-timeout must be positive")
	}
	if err := checkAddr("--listen", s.Listen); err != nil {
		return err
	}
	if s.MetricsListen != "" {
		if err := checkAddr("--metrics-listen", s.MetricsListen); err != nil {
			return err
		}
	}
	if err := s.checkHandoff(); err != nil {
		return err
	}
	return s.checkRecovery()
}

// checkRecovery validates the recovery flags: all three or none, with a
// data dir.
func (s *Server) checkRecovery() error {
	if s.BackupTo != "" && s.DataDir == "" {
		return errors.New("--backup-to needs the --data-dir to back up")
	}
	given := s.RecoveryRecipients != "" || s.RecoverySharesDir != "" || s.RecoveryThreshold != 0
	switch {
	case !given:
		return nil
	case s.DataDir == "":
		return errors.New("--recovery-recipients, --recovery-threshold, --recovery-shares-dir need --data-dir: a memory-only service has no data to recover")
	case s.RecoveryRecipients == "" || s.RecoverySharesDir == "" || s.RecoveryThreshold == 0:
		return errors.New("recovery shares need all three of --recovery-recipients FILE, --recovery-threshold K and --recovery-shares-dir DIR")
	}
	rc, err := readRecipients(s.RecoveryRecipients)
	if err != nil {
		return err
	}
	if s.RecoveryThreshold < 2 || s.RecoveryThreshold > len(rc) || len(rc) > 255 {
		return fmt.Errorf("--recovery-threshold %d with %d recipients in %s: want 2 ≤ K ≤ the number of recipients ≤ 255", s.RecoveryThreshold, len(rc), s.RecoveryRecipients)
	}
	s.recipients = rc
	return nil
}

// openStore is store.Open with the one error an operator meets most: the
// data dir's lock is held by another process.
func (s *Server) openStore(o store.Options) (*store.Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := s.checkRestored(o.Root, o.Purpose, log); err != nil {
		return nil, err
	}
	st, err := store.Open(o)
	if err == nil {
		// The store's lock is ours: a snapshot's temporary copy left by a
		// process killed while it streamed one is nobody's.
		stale, _ := filepath.Glob(filepath.Join(s.DataDir, ".snapshot-*"))
		for _, d := range stale {
			if err := os.RemoveAll(d); err == nil {
				log.Info("removed the temporary copy of an interrupted snapshot", "dir", d)
			}
		}
	}
	if errors.Is(err, syscall.EAGAIN) { // the store's lock file is held by another process
		return nil, fmt.Errorf("--data-dir %s is in use: another kmsd or relayd holds its lock (%v)\nhint: stop the process using it (or wait for it to exit), or give this one another --data-dir", s.DataDir, err)
	}
	return st, err
}
