package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// startVault runs HashiCorp Vault's dev server from the binary at path
// (in memory, TLS with its own CA, listening on loopback), mounts transit
// and turns on the file audit device, so that it does what kmsd does for
// each request: authenticate, audit to a file before and after, encrypt.
func startVault(ctx context.Context, path, tmp string) (*kmsTarget, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	tokB := make([]byte, 16)
	rand.Read(tokB)
	tok := "bench" + hex.EncodeToString(tokB)
	certDir := filepath.Join(tmp, "vault-tls")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, path, "server", "-dev", "-dev-tls", "-dev-tls-cert-dir", certDir,
		"-dev-listen-address", addr, "-dev-root-token-id", tok, "-dev-no-store-token")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "HOME="+tmp, "VAULT_LOG_LEVEL=error")
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	var ca []byte
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ca, err = os.ReadFile(filepath.Join(certDir, "vault-ca.pem")); err == nil {
			break
		}
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("vault dev server wrote no CA: %v\n%s", err, logs.String())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	t := &kmsTarget{name: "vault", base: "https://" + addr + "/v1/", tok: tok, pid: cmd.Process.Pid,
		newClient: func() *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
		}}
	c := t.newClient()
	var up error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var resp *http.Response
		if resp, up = c.Get(t.base + "sys/health"); up == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			up = fmt.Errorf("sys/health: %d", resp.StatusCode)
		}
	}
	if up != nil {
		stop()
		return nil, nil, fmt.Errorf("vault dev server did not come up: %v\n%s", up, logs.String())
	}
	if _, err := t.call(ctx, c, "sys/mounts/transit", map[string]any{"type": "transit"}); err != nil {
		stop()
		return nil, nil, err
	}
	if _, err := t.call(ctx, c, "sys/audit/file", map[string]any{"type": "file", "options": map[string]any{"file_path": filepath.Join(tmp, "vault-audit.log")}}); err != nil {
		stop()
		return nil, nil, err
	}
	return t, stop, nil
}
