// Package startup holds the checks and side listeners that relayd and
// kmsd share at start: validating the mode and the paths they were given,
// building the logger, and serving metrics. It reads no flags and no
// environment; main passes the values.
package startup

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"
)

// CheckMode refuses combinations that would mix simulation and SGX trust
// roots.
func CheckMode(simulation bool, simDir, root, pccs, collateral string) error {
	if simulation && (root != "" || pccs != "" || collateral != "") {
		return errors.New("conflicting options: --simulation verifies against the simulated platform's own root and collateral; drop --root, --pccs and --collateral")
	}
	if !simulation && simDir != "" {
		return errors.New("conflicting options: --sim-dir without --simulation")
	}
	return nil
}

// CheckFiles requires every non-empty path to exist; files maps a flag
// name (for the message) to its path.
func CheckFiles(files map[string]string) error {
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

// CheckAddr validates a HOST:PORT listen address.
func CheckAddr(flagName, addr string) error {
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
