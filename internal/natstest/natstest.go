// Package natstest starts real nats-server processes with JetStream on
// loopback for tests: a single node or a Raft cluster of several, each in
// its own process so that a test can kill one with SIGKILL.
//
// The server is the one pinned in go.mod as a tool
// (`tool github.com/nats-io/nats-server/v2`), built once per test binary
// with `go build` into a temporary directory; nothing is assumed installed.
// A test that cannot build it (no go command on PATH) is skipped with a
// message saying so.
//
// Every node listens on 127.0.0.1 only, keeps its JetStream files in the
// test's temporary directory (so a test can scan them), and is stopped at
// the end of the test.
package natstest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Module is the package path of the pinned server (see go.mod's tool line).
const Module = "github.com/nats-io/nats-server/v2"

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Binary returns the path of a nats-server built from the pinned module,
// building it on first use. It skips the test when the go command is not
// available and fails it when the build fails.
func Binary(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("natstest: the go command is not on PATH, so nats-server (%s) cannot be built: %v", Module, err)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "natstest-bin-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "nats-server")
		cmd := exec.Command("go", "build", "-o", buildPath, Module)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", Module, err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("natstest: %v", buildErr)
	}
	return buildPath
}

// Node is one nats-server process.
type Node struct {
	Name string
	// URL is the client URL, nats://127.0.0.1:PORT.
	URL string
	// StoreDir is the JetStream store directory (its files are what a
	// JetStream operator can read).
	StoreDir string

	t       testing.TB
	bin     string
	conf    string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logs    *syncBuffer
	stopped bool
}

// Cluster is a set of nodes routed to each other (one node: no routes).
type Cluster struct {
	Nodes []*Node
	// CAFile is the PEM CA of the servers' TLS certificate (Options.TLS).
	CAFile string
	// ClientCertFile and ClientKeyFile: a client certificate the servers
	// accept (Options.ClientCerts), issued by the same CA.
	ClientCertFile, ClientKeyFile string
	// CredsFile: a user's credentials file (JWT and seed) in the
	// servers' account (Options.Operator); OtherCredsFile: a user of an
	// account the servers do not know.
	CredsFile, OtherCredsFile string
	probe                     []byte // nkey seed for WaitReady, when the servers require one
}

// URLs returns every node's client URL.
func (c *Cluster) URLs() []string {
	u := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		u[i] = n.URL
	}
	return u
}

// URL returns the client URLs joined with commas, the form nats.Connect
// and the services' --cluster flag take.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// StoreDirs returns every node's JetStream store directory.
func (c *Cluster) StoreDirs() []string {
	d := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		d[i] = n.StoreDir
	}
	return d
}

// Start starts a cluster of n nodes (n = 1: a single server, JetStream on)
// and waits until JetStream answers on every node. The nodes are killed
// when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, Options{})
}

// Options change the servers' configuration.
type Options struct {
	// NKeyUsers, when set, are the only clients the servers accept: NATS
	// nkey authentication with these user public keys (U…). The first is
	// used by WaitReady's probe, with ProbeSeed.
	NKeyUsers []string
	// ProbeSeed is the seed (SU…) of NKeyUsers[0].
	ProbeSeed []byte
	// TLS: clients must connect with TLS; the servers' certificate is
	// issued by a CA made for the test, in Cluster.CAFile.
	TLS bool
	// ClientCerts (with TLS): the servers verify clients' certificates
	// against the same CA (Cluster.ClientCertFile is one).
	ClientCerts bool
	// Operator: the servers run in operator mode (decentralized JWT
	// authentication) with one account, JetStream enabled, whose user's
	// credentials are in Cluster.CredsFile. Not with NKeyUsers.
	Operator bool
}

// StartWith is Start with options.
func StartWith(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster needs at least one node, got %d", n)
	}
	bin := Binary(t)
	base := t.TempDir()
	clientPorts := freePorts(t, n)
	routePorts := freePorts(t, n)
	c := &Cluster{probe: o.ProbeSeed}
	var certFile, keyFile string
	if o.TLS {
		c.CAFile, certFile, keyFile, c.ClientCertFile, c.ClientKeyFile = testPKI(t, base)
	}
	var operatorConf string
	if o.Operator {
		operatorConf = c.operator(t, base)
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		var conf strings.Builder
		fmt.Fprintf(&conf, "server_name: %s\nlisten: 127.0.0.1:%d\n", name, clientPorts[i])
		fmt.Fprintf(&conf, "jetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}\n", filepath.Join(dir, "js"))
		if o.TLS {
			fmt.Fprintf(&conf, "tls {\n  cert_file: %q\n  key_file: %q\n", certFile, keyFile)
			if o.ClientCerts {
				fmt.Fprintf(&conf, "  ca_file: %q\n  verify: true\n", c.CAFile)
			}
			conf.WriteString("}\n")
		}
		conf.WriteString(operatorConf)
		if len(o.NKeyUsers) > 0 {
			conf.WriteString("authorization {\n  users = [\n")
			for _, u := range o.NKeyUsers {
				fmt.Fprintf(&conf, "    { nkey: %q }\n", u)
			}
			conf.WriteString("  ]\n}\n")
		}
		if n > 1 {
			fmt.Fprintf(&conf, "cluster {\n  name: sharedenclave-test\n  listen: 127.0.0.1:%d\n  routes: [\n", routePorts[i])
			for j := 0; j < n; j++ {
				if j != i {
					fmt.Fprintf(&conf, "    nats-route://127.0.0.1:%d\n", routePorts[j])
				}
			}
			conf.WriteString("  ]\n}\n")
		}
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		node := &Node{
			Name: name, URL: fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]),
			StoreDir: filepath.Join(dir, "js"), t: t, bin: bin, conf: path,
		}
		node.start()
		c.Nodes = append(c.Nodes, node)
	}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			nd.stop()
		}
	})
	c.WaitReady(t, 60*time.Second)
	return c
}

// WaitReady waits until every running node answers a JetStream account
// info request (a meta leader is elected and the node has joined it) and
// then until the meta leader places a stream with one replica on every
// running node: a node can answer before the leader counts it as a peer,
// and a test that creates an R3 stream at that moment is refused with
// "no suitable peers for placement".
func (c *Cluster) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	running := 0
	var url string
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		running++
		url = n.URL
		for {
			err := jetStreamAnswers(n.URL, c.probe, c.CAFile, c.ClientCertFile, c.ClientKeyFile, c.CredsFile, 0)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("natstest: %s not ready after %v: %v\nserver log:\n%s", n.Name, timeout, err, n.Logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if running < 2 {
		return
	}
	for {
		err := jetStreamAnswers(url, c.probe, c.CAFile, c.ClientCertFile, c.ClientKeyFile, c.CredsFile, running)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: no stream with %d replicas can be placed after %v: %v", running, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jetStreamAnswers connects to url and asks for the account's JetStream
// information; with replicas > 0 it also creates (and deletes) an empty
// file stream with that many replicas, the kind the services make.
func jetStreamAnswers(url string, seed []byte, caFile, certFile, keyFile, credsFile string, replicas int) error {
	opts := []nats.Option{nats.Timeout(time.Second), nats.NoReconnect()}
	if caFile != "" {
		opts = append(opts, nats.RootCAs(caFile))
	}
	if certFile != "" {
		opts = append(opts, nats.ClientCert(certFile, keyFile))
	}
	if credsFile != "" {
		opts = append(opts, nats.UserCredentials(credsFile))
	}
	if seed != nil {
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			return err
		}
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(2 * time.Second))
	if err != nil {
		return err
	}
	if _, err = js.AccountInfo(); err != nil || replicas == 0 {
		return err
	}
	name := fmt.Sprintf("NATSTEST_PLACEMENT_%d", time.Now().UnixNano())
	if _, err := js.AddStream(&nats.StreamConfig{Name: name, Replicas: replicas, Storage: nats.FileStorage}); err != nil {
		return err
	}
	return js.DeleteStream(name)
}

func (n *Node) start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.logs = &syncBuffer{}
	cmd := exec.Command(n.bin, "-c", n.conf)
	cmd.Stdout = n.logs
	cmd.Stderr = n.logs
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("natstest: starting %s: %v", n.Name, err)
	}
	n.cmd = cmd
	n.stopped = false
	n.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(n.done)
}

// Kill stops the node with SIGKILL and waits for the process to end.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.stopped = true
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts a killed node again on the same ports and store.
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	n.start()
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.stopped {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Pid is the node's process id, 0 when it is not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil || n.stopped {
		return 0
	}
	return n.cmd.Process.Pid
}

// Logs returns what the node's process has printed so far.
func (n *Node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logs == nil {
		return ""
	}
	return n.logs.String()
}

func (n *Node) stop() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		port, _ := strconv.Atoi(p)
		ports = append(ports, port)
	}
	return ports
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 { // keep the last MiB or so: a test prints it on failure
		s.b.Reset()
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testPKI writes a CA and a server certificate for 127.0.0.1 and
// localhost (ECDSA P-256, valid for a day) into dir.
func testPKI(t testing.TB, dir string) (caFile, certFile, keyFile, clientCertFile, clientKeyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natstest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "natstest"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ckey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "natstest client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cder, err := x509.CreateCertificate(rand.Reader, ctmpl, ca, &ckey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ckb, err := x509.MarshalECPrivateKey(ckey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	clientCertFile, clientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	for f, b := range map[string][]byte{
		caFile:         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certFile:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		clientCertFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cder}),
		clientKeyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ckb}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile, clientCertFile, clientKeyFile
}
