package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/cmd/internal/startup"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/custody/unseal"
	"github.com/sharedenclave/sharedenclave/store"
)

func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	return err == nil && perr == nil && n >= 0 && n <= 65535
}

// recoverStore serves the recovery endpoint on --recovery-listen (HTTPS
// with an RA-TLS certificate, so operators verify this enclave before
// they submit their shares) until the shares open the data key, and
// returns the store. It returns a nil store and no error if ctx ends
// first. The relay's own listener is not opened while sealed.
func recoverStore(ctx context.Context, o *options, be *backend.Backend, sealed *startup.Sealed, log *slog.Logger) (*store.Store, error) {
	if o.recoveryAddr == "" {
		return nil, errors.New("the data key of " + o.DataDir + " does not open here (another machine or build) and the data dir has recovery shares: " +
			"start relayd with --recovery-listen HOST:PORT and have k operators submit their shares (enclavectl custody unseal; docs/DEPLOY.md)")
	}
	cert, err := atls.NewCertificate(ctx, be.Attester, atls.CertOptions{CommonName: "Shared Enclave relay (sealed, recovery)"}, atls.GramineStandard, atls.GramineLegacy)
	if err != nil {
		return nil, err
	}
	var quote []byte
	for _, e := range cert.Leaf.Extensions {
		if e.Id.Equal(atls.OIDGramineQuote) {
			quote = e.Value
		}
	}
	opened := make(chan *store.Store, 1)
	u, err := unseal.New(unseal.Config{
		Recovery: sealed.Recovery, Service: "relayd", Version: version(), Logger: log,
		Attestation: &unseal.Attestation{Certificate: cert.Certificate[0], Quote: quote, Simulated: be.Simulated},
		Open: func(dk *custody.DataKey) error {
			st, err := sealed.Open(dk)
			if err == nil {
				opened <- st
			}
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.recoveryAddr)
	if err != nil {
		return nil, err
	}
	tcfg := atls.ServerConfig(cert)
	srv := &http.Server{Handler: u, TLSConfig: tcfg, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, tcfg)) }()
	log.Info("relayd sealed: recovery endpoint listening", "addr", ln.Addr().String(), "attestation", be.Description)
	var st *store.Store
	select {
	case st = <-opened:
	case err := <-errc:
		return nil, err
	case <-ctx.Done():
	}
	// The answer to the last share is written before the listener closes.
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownWait)
	defer cancel()
	srv.Shutdown(sctx)
	if st == nil {
		select {
		case st = <-opened:
		default:
		}
		if st != nil {
			st.Close()
		}
		return nil, nil
	}
	log.Info("relayd unsealed: recovery endpoint closed", "data_dir", o.DataDir)
	return st, nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "shared-enclave " + bi.Main.Version
	}
	return "shared-enclave"
}
