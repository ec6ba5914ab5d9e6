package main_test

// These tests build libsharedenclave once per test binary (go build
// -buildmode=c-shared, about a minute on a busy machine), compile the C
// programs in testdata/ and example/ against it with the system C compiler,
// and run them against relays and Go peers in simulation.
//
// Without a C compiler (or with cgo disabled) they skip, unless
// SHARED_ENCLAVE_REQUIRE_CC=1 (as .ci/run sets it), when they fail.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/sim"
	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

// artifacts are what build produces, shared by every test in the binary.
type artifacts struct {
	dir     string // the library, its header and the programs
	seTest  string // testdata/se_test.c
	asan    string // the same with AddressSanitizer, "" if unavailable
	asanErr error
	example string // example/example_client.c
}

var (
	buildOnce sync.Once
	built     *artifacts
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built != nil {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// unavailable skips the test, or fails it when a C toolchain is required.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SHARED_ENCLAVE_REQUIRE_CC") == "1" {
		t.Fatalf("C library tests required (SHARED_ENCLAVE_REQUIRE_CC=1) but %s", msg)
	}
	t.Skipf("%s; install a C compiler (apt-get install -y gcc) to run the C library tests", msg)
}

func compiler() (string, error) {
	if cc := os.Getenv("CC"); cc != "" {
		return exec.LookPath(cc)
	}
	if p, err := exec.LookPath("cc"); err == nil {
		return p, nil
	}
	return exec.LookPath("gcc")
}

// lib builds the library and the C programs once.
func lib(t *testing.T) *artifacts {
	t.Helper()
	cc, err := compiler()
	if err != nil {
		unavailable(t, "no C compiler: %v", err)
	}
	// The library is built with CGO_ENABLED=1 whatever the environment
	// says; only a missing C compiler stops it.
	buildOnce.Do(func() { built, buildErr = build(cc) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// build runs build.sh (the shared library, the header, the pkg-config
// file and example_client, as a user builds them) and compiles the test
// program with the flags pkg-config gives for the installed .pc file.
func build(cc string) (*artifacts, error) {
	dir, err := os.MkdirTemp("", "sharedenclave-c-")
	if err != nil {
		return nil, err
	}
	a := &artifacts{dir: dir}
	run := func(env []string, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(append(os.Environ(), "CGO_ENABLED=1", "CC="+cc), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	if _, err := run([]string{"SE_BUILD=shared"}, "./build.sh", dir); err != nil {
		return a, err
	}
	a.example = filepath.Join(dir, "bin", "example_client")
	flags, err := pkgConfig(dir)
	if err != nil {
		return a, err
	}
	compile := func(out, src string, extra ...string) error {
		args := append([]string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-g"}, extra...)
		args = append(append(args, "-o", out, src), flags...)
		_, err := run(nil, cc, append(args, "-Wl,-rpath,"+filepath.Join(dir, "lib"), "-lpthread")...)
		return err
	}
	a.seTest = filepath.Join(dir, "se_test")
	if err := compile(a.seTest, "testdata/se_test.c"); err != nil {
		return a, err
	}
	asan := filepath.Join(dir, "se_test_asan")
	if err := compile(asan, "testdata/se_test.c", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"); err != nil {
		a.asanErr = err
	} else {
		a.asan = asan
	}
	return a, nil
}

// pkgConfig returns the compiler flags for sharedenclave from the .pc file
// build.sh wrote: through pkg-config when it is installed, else read from
// the file (its Cflags and Libs, with ${prefix}, ${libdir}, ${includedir}).
func pkgConfig(dir string) ([]string, error) {
	pcDir := filepath.Join(dir, "lib", "pkgconfig")
	if _, err := exec.LookPath("pkg-config"); err == nil {
		cmd := exec.Command("pkg-config", "--cflags", "--libs", "sharedenclave")
		cmd.Env = append(os.Environ(), "PKG_CONFIG_PATH="+pcDir)
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("pkg-config sharedenclave: %v", err)
		}
		return strings.Fields(string(out)), nil
	}
	b, err := os.ReadFile(filepath.Join(pcDir, "sharedenclave.pc"))
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	var flags []string
	for _, line := range strings.Split(string(b), "\n") {
		for k, v := range vars {
			line = strings.ReplaceAll(line, "${"+k+"}", v)
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, ":") {
			vars[k] = v
		} else if k, v, ok := strings.Cut(line, ": "); ok && (k == "Cflags" || k == "Libs") {
			flags = append(flags, strings.Fields(v)...)
		}
	}
	return flags, nil
}

// cRun runs a C program and returns its exit code and output.
func cRun(t *testing.T, env []string, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return code, out.String(), errb.String()
}

func startRelay(t *testing.T) (simDir, host, port string) {
	simDir = filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, simDir)
	host, port, _ = net.SplitHostPort(addr)
	return simDir, host, port
}

func goBackend(t *testing.T, simDir string, create ...bool) *backend.Backend {
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir, CreateSim: len(create) > 0 && create[0]})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// TestCRelayPair: two C clients relay messages through relayd, and every
// refusal the header documents comes back as its code.
func TestCRelayPair(t *testing.T) {
	a := lib(t)
	simDir, host, port := startRelay(t)
	code, out, errb := cRun(t, nil, a.seTest, "relay-pair", simDir, host, port)
	if code != 0 || !strings.Contains(out, "relay-pair: 0 failures") {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
}

// TestCAndGoExchange: a C client and a Go client.Client send each other a
// message through the relay, each acknowledges what it received, and the
// Go side sees the C sender's message id.
func TestCAndGoExchange(t *testing.T) {
	a := lib(t)
	simDir, host, port := startRelay(t)
	be := goBackend(t, simDir)
	cfg := client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := client.Options{Addrs: []string{net.JoinHostPort(host, port)}, ID: "gopher", Receive: true}
	g, err := client.Connect(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.Extensions() {
		t.Fatal("the Go client did not negotiate the delivery extension")
	}
	cmd := exec.CommandContext(ctx, a.seTest, "exchange", simDir, host, port, "cclient", "gopher", "hello from C")
	var errb strings.Builder
	cmd.Stderr = &errb
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "registered cclient" {
		cmd.Wait()
		t.Fatalf("C client did not register: %q %s", lines.Text(), errb.String())
	}
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "sent id ") {
		cmd.Wait()
		t.Fatalf("C client did not send: %q %s", lines.Text(), errb.String())
	}
	sentID := strings.TrimPrefix(lines.Text(), "sent id ")
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	d, err := g.Receive(rctx)
	rcancel()
	if err != nil || d.From != "cclient" || string(d.Data) != "hello from C" || d.Redelivered {
		t.Fatalf("Go client received %+v (%v)", d, err)
	}
	if got := hex.EncodeToString(d.MsgID); got != sentID {
		t.Errorf("Go client sees message id %s, the C sender used %s", got, sentID)
	}
	if err := g.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := g.Send(ctx, "cclient", []byte("hello from Go")); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	out := string(rest)
	if err := cmd.Wait(); err != nil || !strings.Contains(out, "got gopher: hello from Go") ||
		!strings.Contains(out, "id set flags 0") || !strings.Contains(out, "ack: 0") {
		t.Fatalf("C client: %v %q %s", err, rest, errb.String())
	}
	// Both acknowledgements removed the messages: a new connection of
	// either id gets nothing.
	g.Close()
	g2, err := client.Connect(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	rctx, rcancel = context.WithTimeout(ctx, 300*time.Millisecond)
	defer rcancel()
	if d, err := g2.Receive(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the Go client's acknowledged message came again: %+v %v", d, err)
	}
	code, out, errs := cRun(t, nil, a.seTest, "drain", simDir, host, port, "cclient")
	if code != 0 || !strings.Contains(out, "drained 0") {
		t.Errorf("the C client's acknowledged message came again: exit %d %s%s", code, out, errs)
	}
}

// TestCRedelivery: with the relay's delivery extension, a C receiver that
// does not acknowledge gets the message again after reconnecting (same
// delivery id, SE_MSG_REDELIVERED), and after its ack never again; a C
// sender's retries with one message id, on the same and on a new
// connection, are delivered once.
func TestCRedelivery(t *testing.T) {
	a := lib(t)
	simDir, host, port := startRelay(t)
	code, out, errb := cRun(t, nil, a.seTest, "redeliver", simDir, host, port)
	if code != 0 || !strings.Contains(out, "redelivered: id same, flags 1") ||
		!strings.Contains(out, "retried send delivered 1 time(s)") || !strings.Contains(out, "redeliver: 0 failures") {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
}

// TestCSeedRelay: against a relay without the extension (its mailboxes
// offer neither acknowledgements nor message ids, so HELLO_ACK grants
// nothing) the library falls back to the seed protocol: at most once,
// ids 0, se_relay_ack and se_relay_send_id SE_EUNSUPPORTED.
func TestCSeedRelay(t *testing.T) {
	a := lib(t)
	simDir := filepath.Join(t.TempDir(), "sim")
	r := relaytest.Start(t, simDir, "127.0.0.1:0", func(c *relay.Config) {
		c.Mailboxes = plainMailboxes{relay.NewMemoryMailboxes(relay.Limits{})}
	})
	host, port, _ := net.SplitHostPort(r.Addr)
	code, out, errb := cRun(t, nil, a.seTest, "seed", simDir, host, port)
	if code != 0 || !strings.Contains(out, "seed: 0 failures") {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
}

// plainMailboxes hides the optional interfaces (Acker, Deduper) of the
// mailboxes inside: a relay with them offers no extension feature.
type plainMailboxes struct{ m *relay.MemoryMailboxes }

func (p plainMailboxes) Create(id string) error                     { return p.m.Create(id) }
func (p plainMailboxes) Push(id string, m relay.Message) error      { return p.m.Push(id, m) }
func (p plainMailboxes) Pop(id string) (relay.Message, bool, error) { return p.m.Pop(id) }

// TestCRefusesBadRelay: the C client refuses a relay whose quote does not
// chain to its platform's root, one whose quote was altered, and a genuine
// one its policy file does not accept; none yields a handle. Each relay
// accepts the client, so the refusal is the C client's own.
func TestCRefusesBadRelay(t *testing.T) {
	a := lib(t)
	clientDir := filepath.Join(t.TempDir(), "client-platform")
	cbe := goBackend(t, clientDir, true)
	otherBE := goBackend(t, filepath.Join(t.TempDir(), "relay-platform"), true)
	cases := []struct {
		name     string
		attester attest.Attester
		policy   string
		want     string
	}{
		{"quote from an untrusted platform", otherBE.Attester, "", "pck-chain"},
		{"altered quote", flipAttester{cbe.Attester}, "", "isv-report-signature"},
		{"genuine relay outside the policy", cbe.Attester,
			writePolicy(t, fmt.Sprintf("mrsigner = [%q]\nmrenclave = [%q]", cbe.Platform.MRSigner(), strings.Repeat("ab", 32))), "MRENCLAVE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host, port := startRelayWith(t, &atls.Peer{Attester: c.attester, Verifier: cbe.Verifier, Policy: cbe.DefaultPolicy})
			args := []string{"bad-relay", clientDir, host, port}
			if c.policy != "" {
				args = append(args, c.policy)
			}
			code, out, errb := cRun(t, nil, a.seTest, args...)
			if code != 0 || !strings.Contains(out, "dial: -5 ") || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want SE_EATTEST (-5) naming %q\n%s%s", code, c.want, out, errb)
			}
		})
	}
}

// flipAttester alters one byte of the enclave report body in each quote,
// which the ISV signature covers.
type flipAttester struct{ attest.Attester }

func (f flipAttester) Quote(ctx context.Context, rd [64]byte) ([]byte, error) {
	q, err := f.Attester.Quote(ctx, rd)
	if err == nil && len(q) > 148 {
		q = append([]byte(nil), q...)
		q[148] ^= 0x01
	}
	return q, err
}

// startRelayWith runs a relay whose attestation is peer's.
func startRelayWith(t *testing.T, peer *atls.Peer) (host, port string) {
	cert, err := atls.NewKeyCertificate(atls.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(relay.Config{Certificate: cert, Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	return host, port
}

func writePolicy(t *testing.T, peers string) string {
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte("[peers]\nallow_simulated = true\n"+peers+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cServer starts se_test tls-server and returns its port and a function
// that waits for it and returns its output.
func cServer(t *testing.T, a *artifacts, simDir, policy string) (string, func() (int, string)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, a.seTest, "tls-server", simDir, policy)
	var errb strings.Builder
	cmd.Stderr = &errb
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	first, _ := r.ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(first), "PORT ")
	if !ok {
		cmd.Wait()
		t.Fatalf("C server printed %q %s", first, errb.String())
	}
	return port, func() (int, string) {
		defer cancel()
		rest, _ := io.ReadAll(r)
		cmd.Wait()
		return cmd.ProcessState.ExitCode(), string(rest) + errb.String()
	}
}

// goTLSClient connects to port and runs atls.Peer.Client, the Go side of
// the mutual attestation, as package client does.
func goTLSClient(t *testing.T, be *backend.Backend, port string, policy *attest.Policy) (*tls.Conn, *attest.Report, error) {
	raw, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	tc := tls.Client(raw, atls.ClientConfig())
	peer := &atls.Peer{Attester: be.Attester, Verifier: be.Verifier, Policy: policy, Timeout: 30 * time.Second}
	r, err := peer.Client(context.Background(), tc)
	return tc, r, err
}

// TestCTLSServerAcceptsGoClient: a C server session (key generated in the
// library, policy file naming the Go client's MRENCLAVE) accepts a Go
// client; each side reads the other's attested identity; data flows with
// the C side non-blocking.
func TestCTLSServerAcceptsGoClient(t *testing.T) {
	a := lib(t)
	simDir := filepath.Join(t.TempDir(), "sim")
	if _, err := sim.Init(simDir, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	be := goBackend(t, simDir)
	policy := writePolicy(t, fmt.Sprintf("mrenclave = [%q]", be.Self.MREnclave))
	port, wait := cServer(t, a, simDir, policy)
	tc, report, err := goTLSClient(t, be, port, be.DefaultPolicy)
	if err != nil {
		code, out := wait()
		t.Fatalf("Go client: %v\nC server (exit %d): %s", err, code, out)
	}
	// The C server attested as its own executable.
	want, err := sim.FileMeasurement(a.seTest)
	if err != nil {
		t.Fatal(err)
	}
	if report.MREnclave != want || !report.Simulated {
		t.Errorf("C server attested as %s (simulated %v), want its executable %s", report.MREnclave, report.Simulated, want)
	}
	if _, err := tc.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	code, out := wait()
	if code != 0 || !strings.Contains(out, "server_new: 0") || !strings.Contains(out, "client mrenclave "+hex.EncodeToString(be.Self.MREnclave[:])) {
		t.Fatalf("C server: exit %d\n%s", code, out)
	}
}

// TestCTLSServerRefusesClientOutsidePolicy: the C server's policy wants
// ISVPRODID 77; the Go client (ISVPRODID 0) gets the ERROR frame with the
// reason, and the C side SE_EATTEST (-5).
func TestCTLSServerRefusesClientOutsidePolicy(t *testing.T) {
	a := lib(t)
	simDir := filepath.Join(t.TempDir(), "sim")
	p, err := sim.Init(simDir, sim.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	be := goBackend(t, simDir)
	policy := writePolicy(t, fmt.Sprintf("mrsigner = [%q]\nisvprodid = 77", p.MRSigner()))
	port, wait := cServer(t, a, simDir, policy)
	_, _, err = goTLSClient(t, be, port, be.DefaultPolicy)
	var re *atls.RefusedError
	if !errors.As(err, &re) || !strings.Contains(strings.ToLower(re.Reason), "isvprodid") {
		t.Errorf("Go client outside the C server's policy: %v, want a refusal naming ISVPRODID", err)
	}
	code, out := wait()
	if code != 0 || !strings.Contains(out, "server_new: -5 ") {
		t.Fatalf("C server: exit %d\n%s", code, out)
	}
}

// TestCTLSPairNonBlocking: a C client session and a C server session over a
// socketpair, 1 MiB each way on non-blocking descriptors, driven by
// SE_WANT_READ / SE_WANT_WRITE and wants_read / wants_write.
func TestCTLSPairNonBlocking(t *testing.T) {
	a := lib(t)
	simDir := filepath.Join(t.TempDir(), "sim")
	if _, err := sim.Init(simDir, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errb := cRun(t, nil, a.seTest, "tls-pair", simDir)
	if code != 0 || !strings.Contains(out, " 0 failures") {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
}

// TestCPeerGone: writes to a TLS peer that closed fail with SE_EIO (the
// library sends with MSG_NOSIGNAL: no SIGPIPE), reads see SE_ECLOSED.
func TestCPeerGone(t *testing.T) {
	a := lib(t)
	simDir := filepath.Join(t.TempDir(), "sim")
	if _, err := sim.Init(simDir, sim.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errb := cRun(t, nil, a.seTest, "peer-gone", simDir)
	if code != 0 || !strings.Contains(out, "survived, 0 failures") {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
}

// TestCRelayGone: a relay that stops under a connected C client turns its
// sends into SE_EIO / SE_ECLOSED, and the program survives (the relay
// client writes from Go code, where the runtime turns SIGPIPE into EPIPE).
func TestCRelayGone(t *testing.T) {
	a := lib(t)
	simDir := filepath.Join(t.TempDir(), "sim")
	rl := relaytest.Start(t, simDir, "127.0.0.1:0", nil)
	host, port, _ := net.SplitHostPort(rl.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.seTest, "relay-gone", simDir, host, port)
	var errb strings.Builder
	cmd.Stderr = &errb
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, _ := r.ReadString('\n'); line != "ready\n" {
		cmd.Wait()
		t.Fatalf("C client: %q %s", line, errb.String())
	}
	sctx, scancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	rl.Server.Shutdown(sctx) // the deadline passes with the client connected: sessions are cut
	scancel()
	io.WriteString(stdin, "go\n")
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil || !strings.Contains(string(rest), "survived, 0 failures") {
		t.Fatalf("C client after the relay stopped: %v %q %s", err, rest, errb.String())
	}
}

// TestCThreadSafety: eight threads share one relay handle (and each checks
// that se_last_error is its own); every message arrives, in order per
// thread. Then, on one TLS session per side, a thread writes 1 MiB while
// another reads 1 MiB, both directions at once.
func TestCThreadSafety(t *testing.T) {
	a := lib(t)
	simDir, host, port := startRelay(t)
	code, out, errb := cRun(t, nil, a.seTest, "threads", simDir, host, port)
	if code != 0 || !strings.Contains(out, "200 messages, 0 failures") {
		t.Fatalf("threads: exit %d\n%s%s", code, out, errb)
	}
	code, out, errb = cRun(t, nil, a.seTest, "tls-duplex", simDir)
	if code != 0 || !strings.Contains(out, "tls-duplex: 0 failures") {
		t.Fatalf("tls-duplex: exit %d\n%s%s", code, out, errb)
	}
}

// TestCExampleClient: the C example_client behaves as the Go example-client
// (cmd/example-client's test, same inputs, same lines).
func TestCExampleClient(t *testing.T) {
	a := lib(t)
	simDir, host, port := startRelay(t)
	run := func(id, input string) (int, string, string) {
		t.Helper()
		args := []string{"--simulation", "--sim-dir", simDir, host, port}
		if id != "" {
			args = append(args, id)
		}
		cmd := exec.Command(a.example, args...)
		cmd.Stdin = strings.NewReader(input)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	code, out, stderr := run("bob", "poll\nquit\n")
	if code != 0 || !strings.Contains(out, "registered as bob") || !strings.Contains(out, "no data available") || !strings.Contains(stderr, "SIMULATION MODE") {
		t.Fatalf("bob: %d %q %q", code, out, stderr)
	}
	_, out, _ = run("alice", "send bob hello bob\nsend nobody x\nbogus\nsend\nquit\n")
	for _, want := range []string{"sent to bob", "refused: ", "recipient not found", `unknown command "bogus"`, "usage: send ID MESSAGE"} {
		if !strings.Contains(out, want) {
			t.Errorf("alice output lacks %q: %s", want, out)
		}
	}
	code, out, _ = run("bob", "poll\npoll\n")
	if code != 0 || !strings.Contains(out, "from alice: hello bob") || !strings.Contains(out, "no data available") {
		t.Fatalf("bob again: %d %q", code, out)
	}
	if _, out, _ = run("", "quit\n"); !strings.Contains(out, "registered as default_client_id") {
		t.Errorf("default id: %q", out)
	}
	if code, _, stderr = run("", ""); code != 0 {
		t.Errorf("end of input: exit %d %s", code, stderr)
	}
	cmd := exec.Command(a.example, "127.0.0.1")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("one argument: %v", err)
	}
	// Without --simulation it needs Gramine and says so; no policy under SGX is refused first.
	cmd = exec.Command(a.example, "127.0.0.1", "1")
	b, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(b), "--simulation") {
		t.Errorf("no SGX: %d %s", cmd.ProcessState.ExitCode(), b)
	}
}

// asanEnv: AddressSanitizer with LeakSanitizer. The Go runtime inside the
// library is not instrumented and keeps its heap in its own mappings, not
// in malloc, so what ASan and LSan see is exactly the C side: the test
// program and the memory the library hands to C (se_message, allocated with
// malloc, freed by se_message_free). lsan.supp suppresses, by name, the two
// allocations the Go runtime's own C glue makes for threads it starts and
// keeps (x_cgo_thread_start, _cgo_try_pthread_create); nothing else.
func asanEnv() []string {
	abs, _ := filepath.Abs("testdata/lsan.supp")
	return []string{
		"ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23:handle_segv=0:allow_user_segv_handler=1",
		"LSAN_OPTIONS=suppressions=" + abs + ":print_suppressions=0",
		"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1",
	}
}

// TestCMemoryChecker runs the C test program built with AddressSanitizer
// (and UBSan): the relay pair, the TLS pairs, the threads and a peer that
// goes away, with no leak or invalid access. Two negative controls show the checker is live in this
// setup: a message left unfreed must be reported as a leak, and a read one
// byte past a message's terminating NUL as a heap-buffer-overflow.
// (valgrind cannot be used: 3.19 stops with SIGILL on the RDTSCP the Go
// runtime executes.)
func TestCMemoryChecker(t *testing.T) {
	a := lib(t)
	if a.asan == "" {
		unavailable(t, "the C compiler cannot build with -fsanitize=address: %v", a.asanErr)
	}
	simDir, host, port := startRelay(t)
	for _, args := range [][]string{
		{"relay-pair", simDir, host, port},
		{"redeliver", simDir, host, port},
		{"tls-pair", simDir},
		{"threads", simDir, host, port},
		{"tls-duplex", simDir},
		{"peer-gone", simDir},
	} {
		code, out, errb := cRun(t, asanEnv(), a.asan, args...)
		if code != 0 || strings.Contains(errb, "Sanitizer") || strings.Contains(errb, "runtime error") {
			t.Errorf("%s under ASan: exit %d\n%s%s", args[0], code, out, errb)
		}
	}
	// The relay pair registered fixed ids; a fresh relay for each control.
	simDir, host, port = startRelay(t)
	code, _, errb := cRun(t, append(asanEnv(), "SE_TEST_FAULT=leak"), a.asan, "relay-pair", simDir, host, port)
	if code != 23 || !strings.Contains(errb, "LeakSanitizer: detected memory leaks") {
		t.Errorf("an unfreed se_message was not reported: exit %d\n%s", code, errb)
	}
	simDir, host, port = startRelay(t)
	code, _, errb = cRun(t, append(asanEnv(), "SE_TEST_FAULT=overflow"), a.asan, "relay-pair", simDir, host, port)
	if code != 23 || !strings.Contains(errb, "heap-buffer-overflow") {
		t.Errorf("a read past a message was not reported: exit %d\n%s", code, errb)
	}
}

// TestCStaticArchive builds the static library (build.sh, SE_BUILD=static),
// links the test program against it with no shared libsharedenclave at
// all, and runs the TLS pair and the relay pair.
func TestCStaticArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("a second library build (c-archive)")
	}
	a := lib(t)
	cc, _ := compiler()
	cmd := exec.Command("./build.sh", a.dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "SE_BUILD=static", "CC="+cc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh (static): %v\n%s", err, out)
	}
	bin := filepath.Join(a.dir, "se_test_static")
	cmd = exec.Command(cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"+filepath.Join(a.dir, "include"), "-o", bin,
		"testdata/se_test.c", filepath.Join(a.dir, "lib", "libsharedenclave.a"), "-lpthread")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("linking against the archive: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ldd", bin).CombinedOutput(); strings.Contains(string(out), "libsharedenclave") {
		t.Fatalf("statically linked program still loads the shared library:\n%s", out)
	}
	simDir, host, port := startRelay(t)
	for _, args := range [][]string{{"tls-pair", simDir}, {"relay-pair", simDir, host, port}} {
		code, out, errb := cRun(t, nil, bin, args...)
		if code != 0 || !strings.Contains(out, " 0 failures") {
			t.Errorf("%s: exit %d\n%s%s", args[0], code, out, errb)
		}
	}
}
