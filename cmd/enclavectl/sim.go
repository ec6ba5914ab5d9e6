package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/pcs"
	"github.com/sharedenclave/sharedenclave/attest/sim"
)

func simInit(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("sim init", "sim init DIR [flags]", args, stdout, stderr)
	outOfDate := fs.Bool("out-of-date", false, "give the platform an OutOfDate TCB (for testing policies)")
	validity := fs.Duration("validity", 365*24*time.Hour, "how long the signed collateral stays current")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, fs, "want exactly one DIR, got %d arguments", len(pos))
	}
	if *validity <= 0 {
		return usageErr(stderr, fs, "--validity must be positive")
	}
	p, err := sim.Init(pos[0], sim.InitOptions{OutOfDate: *outOfDate, CollateralValidity: *validity})
	if err != nil {
		return fail(stderr, "sim init", err, "choose a new or empty directory")
	}
	fmt.Fprintf(stdout, "SIMULATED SGX platform created in %s\n", p.Dir())
	fmt.Fprintf(stdout, "  root CA (trust only for simulation): %s\n", filepath.Join(p.Dir(), sim.FileRootCA))
	fmt.Fprintf(stdout, "  collateral:                          %s\n", filepath.Join(p.Dir(), sim.DirCollateral))
	fmt.Fprintf(stdout, "  MRSIGNER of its enclaves:            %s\n", p.MRSigner())
	return 0
}

func simRefresh(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("sim refresh", "sim refresh DIR [flags]", args, stdout, stderr)
	validity := fs.Duration("validity", 365*24*time.Hour, "how long the signed collateral stays current")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, fs, "want exactly one DIR")
	}
	p, err := sim.Load(pos[0])
	if err != nil {
		return fail(stderr, "sim refresh", err, "DIR must be a platform made by `enclavectl sim init DIR`")
	}
	if err := p.RefreshCollateral(time.Now(), *validity); err != nil {
		return fail(stderr, "sim refresh", err, "the platform's private keys in DIR/private must be readable and the collateral directory writable")
	}
	fmt.Fprintf(stdout, "collateral of %s re-signed, current for %s\n", p.Dir(), *validity)
	return 0
}

func simQuote(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("sim quote", "sim quote --sim-dir DIR --report-data HEX [flags]", args, stdout, stderr)
	dir := fs.String("sim-dir", "", "simulated platform directory (from enclavectl sim init)")
	rdHex := fs.String("report-data", "", "report data, up to 64 bytes as hex (zero-padded)")
	mrHex := fs.String("mrenclave", "", "MRENCLAVE as 64 hex digits (default: SHA-256 of this enclavectl binary)")
	prodID := fs.Uint("isvprodid", 0, "ISVPRODID")
	svn := fs.Uint("isvsvn", 0, "ISVSVN")
	debug := fs.Bool("debug", false, "set the DEBUG attribute")
	out := fs.String("out", "", "write the quote, binary, to this file instead of hex to stdout")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, "unexpected argument %q", pos[0])
	}
	if *dir == "" {
		return usageErr(stderr, fs, "--sim-dir is required")
	}
	rd, err := hex.DecodeString(*rdHex)
	if err != nil || len(rd) > 64 {
		return usageErr(stderr, fs, "--report-data must be at most 64 bytes of hex")
	}
	if *prodID > 0xFFFF || *svn > 0xFFFF {
		return usageErr(stderr, fs, "--isvprodid and --isvsvn are 16-bit")
	}
	id := sim.Identity{ISVProdID: uint16(*prodID), ISVSVN: uint16(*svn), Debug: *debug}
	if *mrHex != "" {
		if id.MREnclave, err = attest.ParseHash32(*mrHex); err != nil {
			return usageErr(stderr, fs, "--mrenclave must be 64 hex digits")
		}
	} else if id.MREnclave, err = sim.ExecutableMeasurement(); err != nil {
		return fail(stderr, "sim quote", err, "pass --mrenclave")
	}
	p, err := sim.Load(*dir)
	if err != nil {
		return fail(stderr, "sim quote", err, "--sim-dir must be a platform made by `enclavectl sim init DIR` (relayd --simulation makes .sim)")
	}
	var reportData [64]byte
	copy(reportData[:], rd)
	q, err := p.Quote(id, reportData)
	if err != nil {
		return fail(stderr, "sim quote", err, "the platform's quoting key in DIR/private could not be used: recreate the platform with `enclavectl sim init`")
	}
	if *out != "" {
		if err := os.WriteFile(*out, q, 0o644); err != nil {
			return fail(stderr, "sim quote", err, "--out must be a path you can write")
		}
		return 0
	}
	fmt.Fprintln(stdout, hex.EncodeToString(q))
	return 0
}

func simServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("sim serve", "sim serve --sim-dir DIR [--listen ADDR]", args, stdout, stderr)
	dir := fs.String("sim-dir", "", "simulated platform directory")
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	if _, err := parseInterspersed(fs, args); err != nil {
		return flagStatus(err)
	}
	if *dir == "" {
		return usageErr(stderr, fs, "--sim-dir is required")
	}
	p, err := sim.Load(*dir)
	if err != nil {
		return fail(stderr, "sim serve", err, "--sim-dir must be a platform made by `enclavectl sim init DIR`")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail(stderr, "sim serve", err, "--listen ADDR could not be bound: choose a free port (e.g. --listen 127.0.0.1:0)")
	}
	srv := &http.Server{
		Handler:           pcs.Handler(filepath.Join(p.Dir(), sim.DirCollateral)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	fmt.Fprintf(stdout, "serving SIMULATED collateral at http://%s/sgx/certification/v4/\n", ln.Addr())
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fail(stderr, "sim serve", err, "the collateral server stopped: start it again")
	}
	return 0
}
