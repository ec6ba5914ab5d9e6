// Package docs_test runs the commands that README.md and docs/*.md show,
// so that the documents cannot drift from the binaries.
//
// Every command in a ```sh block, and every inline `code span` that starts
// with one of our commands (or go, make, gramine-sgx…), must be listed in
// docCommands below, as one of:
//
//   - run:     executed by TestDocCommands, against binaries built once, in
//     simulation, in a temporary directory;
//   - mention: a flag or subcommand named in prose (`kmsd --generate-root`):
//     `BINARY [SUBCOMMAND] --help` must exit 0 and list every flag named;
//   - fuzz:    `go test ./PKG -fuzz NAME`: the fuzz target NAME must exist in
//     PKG (fuzzing itself runs until stopped);
//   - a skip with its reason (real SGX, Gramine signing, the suite itself,
//     benchmarks that take minutes).
//
// A command in the documents that is not in the table fails the test, and
// so does an entry of the table that no document shows any more.
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	run     = "run"
	mention = "mention"
	fuzz    = "fuzz"
)

func skip(reason string) string { return "skip: " + reason }

// docCommands is every command the documents show, and how it is checked.
// Keys are the command as written, comments dropped and spaces collapsed.
var docCommands = map[string]string{
	// README.md, Quick start, in order (DEPLOY.md's simulation quick start
	// shows the same relayd, example-client and kmsd commands).
	"go run ./cmd/relayd --simulation": run,
	"go mod download -x":               skip("downloads modules (network); building the binaries for this test does the same"),
	"go test -race ./...":              skip("the whole suite, which this test is part of"),
	"go run ./cmd/kmsd --simulation --data-dir kms-data --root-token-file root.token":                                                                     run,
	"go run ./cmd/enclavectl kms key create app --simulation --token-file root.token":                                                                     run,
	"go run ./cmd/enclavectl kms encrypt app \"hello\" --simulation --token-file root.token":                                                              run,
	"go run ./cmd/example-client --simulation 127.0.0.1 12345 bob":                                                                                        run,
	"go run ./cmd/example-client --simulation 127.0.0.1 12345 alice":                                                                                      run,
	"go run ./cmd/enclavectl sim quote --sim-dir .sim --report-data cafe --out q.bin":                                                                     run,
	"go run ./cmd/enclavectl quote verify --quote q.bin --collateral .sim/collateral --root .sim/root_ca.pem":                                             run,
	"go run ./cmd/enclavectl quote verify --quote testdata/dcap-real-quote-a/quote.bin --collateral testdata/dcap-real-quote-a --at 2022-12-20T00:50:04Z": run,
	"kmsd --generate-root":                                      mention,
	"enclavectl sim init DIR":                                   run,
	"npm ci --prefix testdata/qvl":                              skip("installs the differential verifier from npm; .ci/run does it"),
	"npm ci --prefix testdata/node-vault":                       skip("installs node-vault from npm for cmd/kmsd TestNodeVault; .ci/run does it"),
	"go install github.com/getsops/sops/v3/cmd/sops@v3.13.3":    skip("installs sops from the Go module proxy (minutes) for cmd/kmsd TestSops; .ci/run does it"),
	"SHARED_ENCLAVE_REQUIRE_CLIENTS=1":                          skip("an environment setting of cmd/kmsd's TestVaultCLI, TestSops and TestNodeVault named in prose (.ci/run sets it); not a command"),
	"go test ./kms -fuzz FuzzParseSaltLength":                   fuzz,
	"go test ./kms -fuzz FuzzScanBody":                          fuzz,
	"go test -short ./...":                                      skip("the whole suite, which this test is part of"),
	"go test ./attest/sgxquote -fuzz FuzzParse":                 fuzz,
	"go test ./attest/dcap -fuzz FuzzCollateral":                fuzz,
	"go test ./attest/dcap -fuzz FuzzPCKExtensions":             fuzz,
	"go test ./wire -fuzz FuzzReadFrame":                        fuzz,
	"go test ./atls -fuzz FuzzTaggedEvidence":                   fuzz,
	"go test ./attest/policyfile -fuzz FuzzParse":               fuzz,
	"go test ./kms -fuzz FuzzParseVersioned":                    fuzz,
	"make bench":                                                skip("every benchmark: minutes of CPU"),
	"go test ./attest/dcap ./atls ./wire ./kms -run - -bench .": skip("benchmarks: minutes of CPU"),
	"go run ./bench relay":                                      skip("benchmark harness: seconds to minutes of CPU (bench's own test checks its command line)"),
	"go tool nats-server":                                       skip("names the pinned nats-server tool in prose; natstest builds it"),
	"go tool nats-server -c nats-1.conf":                        skip("a long-running NATS server; natstest builds the same pinned nats-server and starts three (relay/jetstream, cmd/relayd cluster tests)"),
	"go run ./cmd/relayd --simulation --data-dir relay-c1 --listen :12345 --cluster nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224": skip("needs the NATS cluster of the step before; TestRelaydClusterNodeKilled and TestRelaydClusterJoinRefused (cmd/relayd) run relayd --simulation --data-dir --cluster against three nats-servers"),
	"go test ./relay/jetstream ./cmd/relayd -run Cluster": skip("other packages' tests, part of go test ./..."),
	"apt-get install nats-server":                         skip("installs a system package"),

	"CGO_ENABLED=0": skip("a build setting named in prose, not a command (deploy's test builds with it)"),

	// README.md, the attestation explorer.
	"go run ./cmd/enclavectl explore": run,
	"enclavectl explore":              mention,
	"SHARED_ENCLAVE_SCREENSHOTS=$PWD/docs go test ./explorer -run TestBrowser": skip("the explorer's browser test (needs chromium), rewriting docs/*.png; go test ./explorer runs TestBrowser without the screenshots"),
	"SHARED_ENCLAVE_REQUIRE_BROWSER=1":                                         skip("an environment setting of explorer's TestBrowser named in prose (.ci/run sets it); not a command"),

	// README.md, the C library: a cgo build (a minute of CPU) that
	// go test ./cshared makes once, as documented, and runs.
	"cshared/build.sh out":                                                                      skip("cgo build of the library; go test ./cshared runs build.sh (cshared_test.go build, SE_BUILD=shared; TestCStaticArchive, all)"),
	"cshared/build.sh out /usr/local":                                                           skip("the same cgo build with prefix=/usr/local written into the .pc file; go test ./cshared runs build.sh with the default prefix"),
	"export PKG_CONFIG_PATH=$PWD/out/lib/pkgconfig":                                             skip("needs the C build; go test ./cshared runs pkg-config with PKG_CONFIG_PATH at the lib/pkgconfig that build.sh wrote (cshared_test.go pkgConfig)"),
	"cc -o app app.c $(pkg-config --cflags --libs sharedenclave)":                               skip("needs the C build; go test ./cshared compiles testdata/se_test.c with these pkg-config flags against libsharedenclave.so"),
	"cc -o app app.c $(pkg-config --cflags sharedenclave) out/lib/libsharedenclave.a -lpthread": skip("needs the C build; TestCStaticArchive (cshared) links testdata/se_test.c with libsharedenclave.a -lpthread"),
	"out/bin/example_client --simulation --sim-dir .sim 127.0.0.1 12345 bob":                    skip("needs the C build; TestCExampleClient (cshared) runs build.sh's bin/example_client with --simulation --sim-dir against a relayd, with the Go example-client's inputs"),
	"out/bin/example_client --simulation --sim-dir .sim 127.0.0.1 12345 alice":                  skip("needs the C build; TestCExampleClient (cshared) runs it, as for bob"),
	"C_CLIENT=1 deploy/gramine/build.sh OUT_DIR":                                                skip("Gramine signing (deploy's TestGramineManifestCClient checks the C client's manifest)"),
	"gramine-sgx OUT_DIR/example-client-c":                                                      skip("needs an SGX machine and Gramine"),
	"go test ./cshared":                                                                         skip("another package's tests, part of go test ./..."),
	"SHARED_ENCLAVE_REQUIRE_CC=1":                                                               skip("an environment setting of go test ./cshared named in prose (.ci/run sets it); not a command"),

	// README.md and docs/DEPLOY.md, recovery (run in a directory of its
	// own: first starts with shares, a backup, the backup started sealed
	// on another simulated platform, unsealed by two operators).
	"enclavectl custody keygen --out share.key": run,
	"kmsd --data-dir data --root-token-file root.token --recovery-recipients recipients.txt --recovery-threshold 2 --recovery-shares-dir shares":                                                             run,
	"enclavectl custody unseal --addr HOST:PORT --policy POLICY.toml --identity share.key SHARE_FILE":                                                                                                        run,
	"enclavectl custody keygen --out ~/.config/shared-enclave/share.key":                                                                                                                                     run,
	"kmsd --data-dir /var/lib/shared-enclave/kmsd/data --root-token-file …/root.token --recovery-recipients recipients.txt --recovery-threshold 2 --recovery-shares-dir /var/lib/shared-enclave/kmsd/shares": run,
	"KMSD_RECOVERY_THRESHOLD=2":              mention,
	"kmsd --data-dir DIR --backup-to BACKUP": run,
	"KMSD_BACKUP_TO=…":                       mention,
	"enclavectl custody status --addr kms.example:8443 --policy kms-policy.toml":                                                                             run,
	"enclavectl custody unseal --addr kms.example:8443 --policy kms-policy.toml --identity ~/.config/shared-enclave/share.key kms-1a2b3c4d-share-2-of-3.age": run,
	"enclavectl custody decrypt-share --identity FILE SHARE_FILE --out FILE":                                                                                 run,
	"enclavectl custody unseal --policy": mention,
	"enclavectl measure":                 run,

	// README.md, tests.
	"go test ./custody -fuzz FuzzParseFile":      fuzz,
	"go test ./custody -fuzz FuzzKeyFrame":       fuzz,
	"go test ./store/snapshot -fuzz FuzzExtract": fuzz,
	"enclavectl backup save --out kms-2026-11-24.snap --addr kms.example:8443 --policy kms-policy.toml --token-file root.token": skip("needs a kmsd at kms.example; TestBackupCommands (cmd/enclavectl) runs backup save against a KMS over RA-TLS"),
	"vault operator raft snapshot save kms-2026-11-24.snap":                                                                     skip("needs the vault CLI and a kmsd; TestVaultCLI (cmd/kmsd) runs it against kmsd"),
	"curl -X POST http://127.0.0.1:9412/backup":                                                                                 skip("needs a running relayd with --backup-dir; TestRelaydOnlineBackupRestoredElsewhere (cmd/relayd) posts to /backup"),
	"enclavectl backup check kms-2026-11-24.snap":                                                                               skip("needs a snapshot file; TestBackupCommands (cmd/enclavectl) checks one"),
	"enclavectl backup restore kms-2026-11-24.snap --data-dir /data/kms-restored":                                               skip("needs a snapshot file; TestBackupCommands (cmd/enclavectl) restores one"),
	"enclavectl backup save": mention,
	"enclavectl custody inspect --identity ~/.config/shared-enclave/share.key FILE": mention,
	"enclavectl backup check":   mention,
	"enclavectl backup restore": mention,
	"kmsd --data-dir /data/kms --cluster nats://… --join-listen 10.0.0.11:9445":                                            skip("needs a three-node NATS cluster and a second machine; TestKMSDClusterJoinThroughHandoff (cmd/kmsd) runs --join-listen and --join against a real nats-server cluster"),
	"kmsd --data-dir /data/kms --cluster nats://… --join 10.0.0.11:9445":                                                   skip("see --join-listen: TestKMSDClusterJoinThroughHandoff"),
	"go run ./cmd/relayd --simulation --data-dir relay-c1 --listen :12345 --cluster nats://… --join-listen 127.0.0.1:9446": skip("needs the NATS cluster of step 1; TestRelaydClusterJoinThroughHandoff (cmd/relayd) runs --join-listen and --join against a real nats-server cluster"),
	"go run ./cmd/relayd --simulation --data-dir relay-c2 --listen :12346 --cluster nats://… --join 127.0.0.1:9446":        skip("see --join-listen: TestRelaydClusterJoinThroughHandoff"),
	"go test ./relay/jetstream -fuzz FuzzOpenRecord":                                                                       fuzz,
	"go test ./custody/unseal -fuzz FuzzUnsealBody":                                                                        fuzz,
	"go test ./attest/dcap -fuzz FuzzCanonicalPEM":                                                                         fuzz,

	// docs/DEPLOY.md, SGX steps.
	"ls /dev/sgx_enclave /dev/sgx_provision":                        skip("needs an SGX machine"),
	"gramine-sgx-gen-private-key ~/.config/gramine/enclave-key.pem": skip("needs Gramine"),
	"PCCS_URL=https://pccs.example:8081/sgx/certification/v4/ deploy/gramine/build.sh /opt/shared-enclave ~/.config/gramine/enclave-key.pem": skip("Gramine signing (deploy's own test builds the binaries)"),
	"cd /opt/shared-enclave && gramine-sgx relayd":                                                skip("needs an SGX machine and Gramine"),
	"KMSD_GENERATE_ROOT=true gramine-sgx kmsd < root.token.recovery":                              skip("needs an SGX machine and Gramine (the same recovery runs below in simulation)"),
	"gramine-sgx example-client":                                                                  skip("needs an SGX machine and Gramine"),
	"enclavectl kms key list --addr kms.example:8443 --policy kms-policy.toml --token-file token": run,
	"enclavectl quote verify --quote q.bin --pccs URL":                                            run,
	"enclavectl relay …":                                                                          mention,
	"relayd --rotate-seal-key":                                                                    mention,

	// docs/KMS-API.md
	"kmsd --simulation --data-dir kms-data --generate-root --root-token-file root2.token < root.token.recovery": run,
	"KMSD_GENERATE_ROOT=true":       mention,
	"kmsd --open-seed-endpoints":    mention,
	"KMSD_OPEN_SEED_ENDPOINTS=true": mention,
	"enclavectl kms …":              mention,

	// docs/PROTOCOL.md, docs/SECURITY.md
	"relayd --max-payload":                           mention,
	"relayd --help":                                  run,
	"enclavectl ratls cert":                          mention,
	"enclavectl ratls inspect CERT":                  mention,
	"enclavectl quote verify":                        mention,
	"go test -v -run DifferentialWalk ./attest/dcap": skip("needs Node.js and @phala/dcap-qvl (npm ci --prefix testdata/qvl), then minutes of CPU for ~45,000 inputs; go test ./attest/dcap runs TestDifferentialWalk, and skips it without them"),

	// docs/BENCHMARKS.md
	"go test ./attest/dcap -run - -bench . -benchtime 2s":                                                   skip("benchmark: minutes of CPU"),
	"go test ./atls -run - -bench . -benchtime 1s":                                                          skip("benchmark: minutes of CPU"),
	"go test ./wire -run - -bench .":                                                                        skip("benchmark: minutes of CPU"),
	"go run ./bench relay --duration 2s --pairs 1,4,16 --payloads 64,1024":                                  skip("benchmark: minutes of CPU"),
	"go run ./bench durable --duration 2s --pairs 1,16,64":                                                  skip("benchmark: minutes of CPU"),
	"go test ./kms -run - -bench .":                                                                         skip("benchmark: minutes of CPU"),
	"go run ./bench kms --duration 3s --vault \"$VAULT_BIN\"":                                               skip("benchmark: minutes of CPU, and a vault binary"),
	"go run ./bench compare --duration 1s --reps 3 --write docs/BENCHMARKS.md --png docs/relay-vs-nats.png": skip("benchmark against nats-server; rewrites this directory"),
	"go test ./relay/jetstream -run - -bench . -benchtime 2000x":                                            skip("benchmark: starts a three-node nats-server cluster per system and shape, minutes of CPU"),
	"go test ./relay/jetstream -run - -bench MailboxPhases -benchtime 1000x":                                skip("benchmark: starts a three-node nats-server cluster and times a thousand messages"),
	"go test ./relay/jetstream -run - -bench 'Cluster|Direct|SingleNode' -benchtime 2000x":                  skip("benchmark: the three systems of the cluster comparison, minutes of CPU"),
	"go test ./relay -run - -bench Pipelined":                                                               skip("benchmark: minutes of CPU"),
	"go run ./bench compare --duration 2s --reps 3 --pairs 1,16 --payloads 64 --modes push":                 skip("benchmark against nats-server: minutes of timed load, and a timing no test can check"),
	"go test ./client -run - -bench 'Push$|Receive$' -benchtime 400000x":                                    skip("benchmark: a go test build of ./client plus seconds of timed CPU, and a timing no test can check; go test ./client tests the push path"),
	"go run ./bench attest --duration 3s":                                                                   skip("benchmark: minutes of CPU"),

	// kmsd clusters: DEPLOY.md, SECURITY.md, README.md.
	"kmsd --cluster": mention,
	"KMSD_CLUSTER=…": mention,
	// The upgrade hand-off: DEPLOY.md.
	"kmsd --data-dir DATA --handoff-listen 127.0.0.1:9444":                                                                                 mention,
	"kmsd --data-dir /data/kms --cluster nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222 --root-token-file /run/root.token": skip("needs a three-node NATS cluster at those addresses; cmd/kmsd's TestKMSDCluster runs kmsd --cluster against a real one"),
	"go test ./kms/jetstream -run XXX -bench Cluster":                                                                                      skip("a benchmark (starts three nats-server processes)"),
	"go test ./kms -run XXX -bench 'EncryptHandler$'":                                                                                      skip("a benchmark"),
	"go test ./kms/jetstream -fuzz FuzzDecodeRecord":                                                                                       fuzz,
}

// documents are the files whose commands are checked, relative to the
// repository root.
func documents(t *testing.T) []string {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md"}, files...)
}

var (
	fence      = regexp.MustCompile("^\\s*```(\\w*)\\s*$")
	inlineSpan = regexp.MustCompile("`([^`]+)`")
	spaces     = regexp.MustCompile(`\s+`)
	comment    = regexp.MustCompile(`\s+#.*$`)
	envAssign  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=`)
)

// commandWords are the first words that make an inline code span a command.
var commandWords = map[string]bool{
	"go": true, "make": true, "npm": true, "apt-get": true, "ls": true, "cd": true,
	"relayd": true, "kmsd": true, "enclavectl": true, "example-client": true,
	"gramine-sgx": true, "gramine-sgx-gen-private-key": true,
}

func normalize(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// extract returns the commands a Markdown document shows: lines of ```sh
// blocks (continuations joined, comments dropped) and inline spans that
// start with a command word or an environment assignment and have more
// than one word (or are an assignment).
func extract(doc string) []string {
	var out, prose []string
	lang, inFence := "", false
	var cont string
	for _, line := range strings.Split(doc, "\n") {
		if m := fence.FindStringSubmatch(line); m != nil {
			if !inFence {
				inFence, lang = true, m[1]
			} else {
				inFence = false
			}
			prose = append(prose, "")
			continue
		}
		if !inFence {
			prose = append(prose, line)
			continue
		}
		if lang != "sh" {
			continue
		}
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cont = cont+line, ""
		if line = normalize(comment.ReplaceAllString(line, "")); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	for _, m := range inlineSpan.FindAllStringSubmatch(strings.Join(prose, "\n"), -1) {
		span := normalize(m[1])
		words := strings.Fields(span)
		if envAssign.MatchString(span) || (len(words) > 1 && commandWords[words[0]]) {
			out = append(out, span)
		}
	}
	return out
}

func TestDocCommandsListed(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range documents(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range extract(string(b)) {
			seen[c] = true
			if _, ok := docCommands[c]; !ok {
				t.Errorf("%s shows `%s`, which docs/commands_test.go neither runs nor lists as skipped: add it to docCommands", f, c)
			}
		}
	}
	for c := range docCommands {
		if !seen[c] {
			t.Errorf("docCommands lists `%s`, which no document shows any more: remove it", c)
		}
	}
}

func TestDocFuzzTargetsExist(t *testing.T) {
	for c, how := range docCommands {
		if how != fuzz {
			continue
		}
		w := strings.Fields(c) // go test ./PKG -fuzz NAME
		pkg, name := w[2], w[4]
		files, _ := filepath.Glob(filepath.Join("..", pkg, "*_test.go"))
		found := false
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if bytes.Contains(b, []byte("func "+name+"(f *testing.F)")) {
				found = true
			}
		}
		if !found {
			t.Errorf("`%s`: no fuzz target %s in %s", c, name, pkg)
		}
	}
}

// bins builds relayd, kmsd, enclavectl, example-client and bench once for the
// tests of this package.
var bins = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "docs-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/relayd", "./cmd/kmsd", "./cmd/enclavectl", "./cmd/example-client", "./bench")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
})

// binDir is where bins built them, if it ran.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// shell runs documented commands in one working directory, with the built
// binaries first on PATH and `go run ./cmd/X` meaning the built X.
type shell struct {
	t   *testing.T
	dir string
	bin string
	ran map[string]bool
}

func newShell(t *testing.T) *shell {
	bin, err := bins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	abs, err := filepath.Abs("../testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	return &shell{t: t, dir: dir, bin: bin, ran: map[string]bool{}}
}

// rewrite marks doc as run and returns the shell text to execute: doc with
// `go run ./cmd/X` as X, each replacement applied (old, new pairs), and
// extra arguments appended.
func (s *shell) rewrite(doc string, repl []string, extra string) string {
	s.t.Helper()
	if docCommands[doc] != run {
		s.t.Fatalf("`%s` is not a run entry of docCommands", doc)
	}
	s.ran[doc] = true
	line := strings.ReplaceAll(doc, "go run ./cmd/", "")
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(line, repl[i]) {
			s.t.Fatalf("`%s` does not contain %q any more", doc, repl[i])
		}
		line = strings.ReplaceAll(line, repl[i], repl[i+1])
	}
	if extra != "" {
		line += " " + extra
	}
	return line
}

func (s *shell) command(line string, env []string) *exec.Cmd {
	cmd := exec.Command("sh", "-c", "exec "+line)
	cmd.Dir = s.dir
	cmd.Env = append(append(os.Environ(), "PATH="+s.bin+string(os.PathListSeparator)+os.Getenv("PATH")), env...)
	return cmd
}

// result is what a finished command printed.
type result struct {
	code           int
	stdout, stderr string
}

// exec runs a documented command to completion with stdin and returns
// what it printed; it fails the test if the exit status is not want.
func (s *shell) exec(doc string, want int, stdin string, repl []string, extra string, env ...string) result {
	s.t.Helper()
	line := s.rewrite(doc, repl, extra)
	cmd := s.command(line, env)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		s.t.Fatalf("`%s` (run as %q) did not finish in 60s\nstdout: %s\nstderr: %s", doc, line, out.String(), errb.String())
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	if err != nil && r.code < 0 {
		s.t.Fatalf("`%s`: %v", doc, err)
	}
	if r.code != want {
		s.t.Fatalf("`%s` (run as %q): exit %d, want %d\nstdout: %s\nstderr: %s", doc, line, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// daemon is a documented long-running command started in the background.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// start runs a documented daemon and waits until a line of its output
// matches ready, whose first group is returned as the address.
func (s *shell) start(doc string, ready *regexp.Regexp, repl []string, extra string, env ...string) *daemon {
	s.t.Helper()
	return s.startLine(s.rewrite(doc, repl, extra), ready, env...)
}

// startLine starts line in the background and waits until a line of its
// output matches ready.
func (s *shell) startLine(line string, ready *regexp.Regexp, env ...string) *daemon {
	s.t.Helper()
	d := &daemon{cmd: s.command(line, env), done: make(chan struct{})}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { d.cmd.Wait(); pw.Close(); close(d.done) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	s.t.Cleanup(func() { d.stop() })
	select {
	case d.addr = <-addr:
		return d
	case <-d.done:
	case <-time.After(60 * time.Second):
	}
	d.stop()
	s.t.Fatalf("%q did not get ready:\n%s", line, d.output())
	return nil
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// stop sends SIGTERM, as systemd does, and waits for the process to end.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

func (s *shell) file(name string) string {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

func wantIn(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Fatalf("%s: output lacks %q:\n%s", what, w, got)
		}
	}
}

var (
	relaydReady  = regexp.MustCompile(`"relayd listening" addr=(\S+)`)
	kmsdReady    = regexp.MustCompile(`"kmsd listening" addr=(\S+)`)
	serveReady   = regexp.MustCompile(`serving SIMULATED collateral at (\S+)`)
	exploreReady = regexp.MustCompile(`attestation explorer at (http://\S+/)`)
)

// TestDocCommands runs the documents' commands in the order a reader
// would, in one directory: relayd and kmsd listen on free loopback ports
// (RELAYD_LISTEN, KMSD_LISTEN: the documented environment form of
// --listen), and the commands that talk to them are given those ports.
func TestDocCommands(t *testing.T) {
	s := newShell(t)

	// README: the relay, in simulation.
	relayd := s.start("go run ./cmd/relayd --simulation", relaydReady, nil, "", "RELAYD_LISTEN=127.0.0.1:0")
	_, port, _ := strings.Cut(relayd.addr, ":")
	wantIn(t, "relayd", relayd.output(), "SIMULATION MODE")

	// README: the KMS, then a key and an encryption with its root token.
	kmsd := s.start("go run ./cmd/kmsd --simulation --data-dir kms-data --root-token-file root.token", kmsdReady, nil, "", "KMSD_LISTEN=127.0.0.1:0")
	kmsAddr := "--addr " + kmsd.addr
	r := s.exec("go run ./cmd/enclavectl kms key create app --simulation --token-file root.token", 0, "", nil, kmsAddr)
	wantIn(t, "kms key create", r.stdout, "created app")
	r = s.exec(`go run ./cmd/enclavectl kms encrypt app "hello" --simulation --token-file root.token`, 0, "", nil, kmsAddr)
	wantIn(t, "kms encrypt", r.stdout, "vault:v1:")

	// README: two clients through the relay ("then type: poll", "then type: send bob hello").
	bob := "go run ./cmd/example-client --simulation 127.0.0.1 12345 bob"
	alice := "go run ./cmd/example-client --simulation 127.0.0.1 12345 alice"
	r = s.exec(bob, 0, "poll\n", []string{"12345", port}, "")
	wantIn(t, "example-client bob", r.stdout, "registered as bob", "no data available")
	r = s.exec(alice, 0, "send bob hello\n", []string{"12345", port}, "")
	wantIn(t, "example-client alice", r.stdout, "sent to bob")
	r = s.exec(bob, 0, "poll\n", []string{"12345", port}, "")
	wantIn(t, "example-client bob, second time", r.stdout, "from alice: hello")

	// README: a simulated quote, verified like a real one; the real Intel quote.
	s.exec("go run ./cmd/enclavectl sim quote --sim-dir .sim --report-data cafe --out q.bin", 0, "", nil, "")
	r = s.exec("go run ./cmd/enclavectl quote verify --quote q.bin --collateral .sim/collateral --root .sim/root_ca.pem", 0, "", nil, "")
	wantIn(t, "quote verify (simulated)", r.stdout, `"genuine": true`, `"simulated": true`)
	r = s.exec("go run ./cmd/enclavectl quote verify --quote testdata/dcap-real-quote-a/quote.bin --collateral testdata/dcap-real-quote-a --at 2022-12-20T00:50:04Z", 0, "", nil, "")
	wantIn(t, "quote verify (real)", r.stdout, `"genuine": true`, `"simulated": false`)
	r = s.exec("enclavectl sim init DIR", 0, "", []string{"DIR", "other-sim"}, "")
	wantIn(t, "sim init", r.stdout, "SIMULATED SGX platform created in other-sim")

	// DEPLOY.md step 7: a client that only verifies kmsd, outside any
	// enclave and without --simulation. kmsd here is simulated, so its
	// quotes chain to the simulated root: the command is given that root
	// and collateral (--root, --collateral) in place of Intel's, and a
	// policy naming the simulated signer, as `enclavectl measure` prints it.
	m := s.exec("enclavectl measure", 0, "", nil, filepath.Join(s.bin, "kmsd")+" --sim-dir .sim").stdout
	os.WriteFile(filepath.Join(s.dir, "kms-policy.toml"), []byte("[peers]\n"+m+"allow_simulated = true\n"), 0o644)
	os.WriteFile(filepath.Join(s.dir, "token"), []byte(s.file("root.token")), 0o600)
	r = s.exec("enclavectl kms key list --addr kms.example:8443 --policy kms-policy.toml --token-file token", 0, "",
		[]string{"kms.example:8443", kmsd.addr}, "--root .sim/root_ca.pem --collateral .sim/collateral")
	wantIn(t, "kms key list", r.stdout, `"app"`)

	// DEPLOY.md step 7: any quote's report, collateral from a PCCS (here the
	// simulated platform's, served at PCS paths).
	serve := s.startLine("enclavectl sim serve --sim-dir .sim --listen 127.0.0.1:0", serveReady)
	r = s.exec("enclavectl quote verify --quote q.bin --pccs URL", 0, "", []string{"URL", serve.addr}, "--root .sim/root_ca.pem")
	wantIn(t, "quote verify --pccs", r.stdout, `"genuine": true`)

	// KMS-API.md: a lost root token, replaced with kmsd stopped.
	kmsd.stop()
	s.exec("kmsd --simulation --data-dir kms-data --generate-root --root-token-file root2.token < root.token.recovery", 0, "", nil, "")
	if tok := strings.TrimSpace(s.file("root2.token")); tok == "" || tok == strings.TrimSpace(s.file("root.token")) {
		t.Fatalf("--generate-root wrote %q", tok)
	}

	// PROTOCOL.md: relayd --help.
	r = s.exec("relayd --help", 0, "", nil, "")
	wantIn(t, "relayd --help", r.stdout, "Usage: relayd", "-max-payload")

	// README: the explorer, on a free port instead of its default (which
	// its --help must name as the README does), its two pages fetched.
	explore := s.start("go run ./cmd/enclavectl explore", exploreReady, nil, "--listen 127.0.0.1:0")
	for page, want := range map[string]string{"": "attestation explorer", "status": "server status"} {
		resp, err := http.Get(explore.addr + page)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("explorer %s/%s: %s", explore.addr, page, resp.Status)
		}
		wantIn(t, "explorer /"+page, string(b), want)
	}
	explore.stop()
	wantIn(t, "enclavectl explore --help", s.exec0("enclavectl explore --help"), "127.0.0.1:8844")

	s.recovery()

	for c, how := range docCommands {
		if how == run && !s.ran[c] {
			t.Errorf("`%s` is listed to run but TestDocCommands does not run it", c)
		}
	}
}

// recovery runs README's and DEPLOY.md's recovery commands in a directory
// of their own (its own .sim): three operators' keys (README's, DEPLOY.md's
// under HOME, a third), README's and DEPLOY.md's first starts with shares,
// a backup of DEPLOY.md's data dir, and that backup started on another
// simulated platform (another CPU), where it is sealed until two operators
// submit their shares; then it serves the keys with the same root token.
func (s *shell) recovery() {
	t := s.t
	rs := &shell{t: t, dir: filepath.Join(s.dir, "recovery"), bin: s.bin, ran: s.ran}
	home := "HOME=" + rs.dir
	// DEPLOY.md: mkdir -p ~/.config/shared-enclave, then keygen.
	for _, d := range []string{".config/shared-enclave", "srv"} {
		if err := os.MkdirAll(filepath.Join(rs.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var rcpts []string
	for _, r := range []result{
		rs.exec("enclavectl custody keygen --out share.key", 0, "", nil, ""),
		rs.exec("enclavectl custody keygen --out ~/.config/shared-enclave/share.key", 0, "", nil, "", home),
		{stdout: rs.exec0("enclavectl custody keygen --out op3.key")},
	} {
		if !strings.HasPrefix(r.stdout, "age1") || strings.Contains(r.stdout, "AGE-SECRET-KEY") {
			t.Fatalf("custody keygen printed %q, want only the recipient", r.stdout)
		}
		rcpts = append(rcpts, strings.TrimSpace(r.stdout))
	}
	if st, err := os.Stat(filepath.Join(rs.dir, ".config/shared-enclave/share.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("custody keygen under HOME: %v %v", st, err)
	}
	os.WriteFile(filepath.Join(rs.dir, "recipients.txt"), []byte("# the operators\n"+strings.Join(rcpts, "\n")+"\n"), 0o644)

	// First starts (simulated: --simulation, on a free port), each writing
	// one share per operator and naming it in the log.
	readme := rs.start("kmsd --data-dir data --root-token-file root.token --recovery-recipients recipients.txt --recovery-threshold 2 --recovery-shares-dir shares",
		kmsdReady, nil, "--simulation", "KMSD_LISTEN=127.0.0.1:0")
	wantIn(t, "kmsd with recovery (README)", readme.output(), append([]string{"recovery shares made"}, rcpts...)...)
	readme.stop()
	deploy := rs.start("kmsd --data-dir /var/lib/shared-enclave/kmsd/data --root-token-file …/root.token --recovery-recipients recipients.txt --recovery-threshold 2 --recovery-shares-dir /var/lib/shared-enclave/kmsd/shares",
		kmsdReady, []string{"/var/lib/shared-enclave/kmsd", "srv", "…/root.token", "srv/root.token"}, "--simulation", "KMSD_LISTEN=127.0.0.1:0")
	deploy.stop()
	shareName := regexp.MustCompile(`^kms-[0-9a-f]{8}-share-([1-3])-of-3\.age$`)
	shares := map[string]string{}
	for _, dir := range []string{"shares", "srv/shares"} {
		ents, err := os.ReadDir(filepath.Join(rs.dir, dir))
		if err != nil || len(ents) != 3 {
			t.Fatalf("%s: %d files, want 3 shares (%v)", dir, len(ents), err)
		}
		for _, e := range ents {
			m := shareName.FindStringSubmatch(e.Name())
			if m == nil {
				t.Fatalf("%s/%s: not named kms-DEPLOY-share-I-of-N.age as DEPLOY.md says", dir, e.Name())
			}
			if dir == "srv/shares" {
				shares[m[1]] = filepath.Join(dir, e.Name())
			}
		}
	}

	// DEPLOY.md, Backups: kmsd stopped, then the backup.
	rs.exec("kmsd --data-dir DIR --backup-to BACKUP", 0, "", []string{"DIR", "srv/data", "BACKUP", "backup"}, "--simulation")
	rs.file("backup/custody.json")

	// The backup restored on another machine: another simulated platform,
	// so it starts sealed; the operators pin its measurement.
	sealed := rs.startLine("kmsd --simulation --sim-dir .sim-b --data-dir backup", kmsdReady, "KMSD_LISTEN=127.0.0.1:0")
	wantIn(t, "kmsd on another machine", sealed.output(), "SEALED", "sealed=true")
	policy := "[peers]\n" + rs.exec0("enclavectl measure "+filepath.Join(rs.bin, "kmsd")+" --sim-dir .sim-b") + "allow_simulated = true\n"
	os.WriteFile(filepath.Join(rs.dir, "kms-policy.toml"), []byte(policy), 0o644)
	sim := "--simulation --sim-dir .sim-b"
	r := rs.exec("enclavectl custody status --addr kms.example:8443 --policy kms-policy.toml", 0, "", []string{"kms.example:8443", sealed.addr}, sim)
	wantIn(t, "custody status", r.stdout, "sealed: 0 of 2")
	r = rs.exec("enclavectl custody unseal --addr HOST:PORT --policy POLICY.toml --identity share.key SHARE_FILE", 0, "",
		[]string{"HOST:PORT", sealed.addr, "POLICY.toml", "kms-policy.toml", "SHARE_FILE", shares["1"]}, sim)
	wantIn(t, "custody unseal (README, operator 1)", r.stdout, "sealed: 1 of 2")
	rs.exec("enclavectl custody decrypt-share --identity FILE SHARE_FILE --out FILE", 0, "",
		[]string{"SHARE_FILE", shares["2"], "--identity FILE", "--identity ~/.config/shared-enclave/share.key", "--out FILE", "--out share-2.txt"}, "", home)
	if st, err := os.Stat(filepath.Join(rs.dir, "share-2.txt")); err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
		t.Fatalf("decrypt-share --out: %v %v", st, err)
	}
	r = rs.exec("enclavectl custody unseal --addr kms.example:8443 --policy kms-policy.toml --identity ~/.config/shared-enclave/share.key kms-1a2b3c4d-share-2-of-3.age", 0, "",
		[]string{"kms.example:8443", sealed.addr, "kms-1a2b3c4d-share-2-of-3.age", shares["2"]}, sim, home)
	wantIn(t, "custody unseal (DEPLOY.md, operator 2)", r.stdout, "unsealed")
	// Unsealed, it serves the API on the same listener with the first
	// start's root token.
	out := rs.exec0("enclavectl kms key list --addr " + sealed.addr + " --policy kms-policy.toml --token-file srv/root.token --root .sim-b/root_ca.pem --collateral .sim-b/collateral")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("kms key list after unseal: %q", out)
	}
}

// exec0 runs a helper command that is not itself a documented one (a
// step between documented commands) and returns its standard output.
func (s *shell) exec0(line string) string {
	s.t.Helper()
	out, err := s.command(line, nil).Output()
	if err != nil {
		s.t.Fatalf("%s: %v", line, err)
	}
	return string(out)
}

// TestDocMentions checks the flags and subcommands the documents name in
// prose: `BINARY [SUBCOMMAND…] --help` exits 0 and lists each flag.
func TestDocMentions(t *testing.T) {
	s := newShell(t)
	var mentions []string
	for c, how := range docCommands {
		if how == mention {
			mentions = append(mentions, c)
		}
	}
	sort.Strings(mentions)
	for _, c := range mentions {
		var bin string
		var sub, flags []string
		if envAssign.MatchString(c) { // KMSD_OPEN_SEED_ENDPOINTS=true
			name, _, _ := strings.Cut(c, "=")
			prefix, rest, _ := strings.Cut(name, "_")
			bin = strings.ToLower(prefix)
			flags = []string{"-" + strings.ToLower(strings.ReplaceAll(rest, "_", "-"))}
		} else {
			w := strings.Fields(c)
			bin = w[0]
			for _, x := range w[1:] {
				switch {
				case strings.HasPrefix(x, "-"):
					flags = append(flags, strings.TrimLeft(x, "-"))
				case x == "…" || strings.ToUpper(x) == x:
					// a placeholder: DIR, CERT, …
				default:
					sub = append(sub, x)
				}
			}
		}
		line := strings.Join(append(append([]string{bin}, sub...), "--help"), " ")
		cmd := s.command(line, nil)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			t.Errorf("`%s`: %s: %v\n%s", c, line, err, errb.String())
			continue
		}
		for _, f := range flags {
			if !strings.Contains(out.String(), "-"+strings.TrimLeft(f, "-")) {
				t.Errorf("`%s`: %s does not list %s:\n%s", c, line, f, out.String())
			}
		}
	}
}
