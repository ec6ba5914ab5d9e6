package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sharedenclave/sharedenclave/explorer"
)

const exploreSynopsis = `explore [--listen 127.0.0.1:8844] [--allow-remote]

Serves the attestation explorer and the server status page, a local web
application (everything embedded, works offline). Open the printed URL.
It listens on loopback only: --listen with another address is refused
unless --allow-remote is given too (anyone who can reach it can then make
it read collateral directories and connect to addresses).`

func explore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("explore", exploreSynopsis, args, stdout, stderr)
	listen := fs.String("listen", "127.0.0.1:8844", "address to listen on (loopback unless --allow-remote)")
	allowRemote := fs.Bool("allow-remote", false, "allow a --listen address that is not loopback")
	fetchTimeout := fs.Duration("fetch-timeout", 10*time.Second, "timeout of each connection the explorer makes for you (server, PCCS, metrics)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, "unexpected argument %q", pos[0])
	}
	if *fetchTimeout <= 0 {
		return usageErr(stderr, fs, "--fetch-timeout must be positive")
	}
	loopback, err := isLoopbackListen(*listen)
	if err != nil {
		return usageErr(stderr, fs, "--listen: %v", err)
	}
	if !loopback && !*allowRemote {
		return usageErr(stderr, fs, "--listen %s is not a loopback address: the explorer reads local files and connects where its user says, so it serves only this machine unless you add --allow-remote", *listen)
	}
	// The log gets request errors only, never a quote, a policy or a path's content.
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := explorer.New(explorer.Config{FetchTimeout: *fetchTimeout, AnyHost: !loopback, Logger: log})
	if err != nil {
		return fail(stderr, "explore", err, "")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail(stderr, "explore", err, "is another explorer running? choose another port with --listen 127.0.0.1:PORT")
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      *fetchTimeout + 60*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	fmt.Fprintf(stdout, "attestation explorer at http://%s/  (server status: http://%s/status)\n", ln.Addr(), ln.Addr())
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(shut)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fail(stderr, "explore", err, "")
	}
	return 0
}

// isLoopbackListen reports whether a listen address binds loopback only:
// a loopback IP or "localhost". An empty host (":8844") means every
// interface.
func isLoopbackListen(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
