package deploy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// render substitutes {{ name }} as gramine-manifest (Jinja) would for the
// simple variables the templates use, and fails on any left unset.
func render(t *testing.T, tmpl string, vars map[string]string) string {
	re := regexp.MustCompile(`{{\s*([a-z_]+)\s*}}`)
	out := re.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := re.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			t.Fatalf("template variable %q has no value", name)
		}
		return v
	})
	if strings.Contains(out, "{{") || strings.Contains(out, "{%") {
		t.Fatal("template uses more than simple variables")
	}
	return out
}

type manifest struct {
	Libos struct {
		Entrypoint string `toml:"entrypoint"`
	} `toml:"libos"`
	Loader struct {
		Argv         []string       `toml:"argv"`
		ArgvSrcFile  string         `toml:"argv_src_file"`
		InsecureArgv bool           `toml:"insecure__use_cmdline_argv"`
		Env          map[string]any `toml:"env"`
		LogLevel     string         `toml:"log_level"`
	} `toml:"loader"`
	FS struct {
		Mounts []struct {
			Path string `toml:"path"`
			URI  string `toml:"uri"`
			Type string `toml:"type"`
		} `toml:"mounts"`
	} `toml:"fs"`
	SGX struct {
		RemoteAttestation string   `toml:"remote_attestation"`
		EDMM              bool     `toml:"edmm_enable"`
		Debug             *bool    `toml:"debug"`
		ISVProdID         *int     `toml:"isvprodid"`
		ISVSVN            *int     `toml:"isvsvn"`
		EnclaveSize       string   `toml:"enclave_size"`
		MaxThreads        int      `toml:"max_threads"`
		TrustedFiles      []string `toml:"trusted_files"`
		AllowedFiles      []string `toml:"allowed_files"`
	} `toml:"sgx"`
}

var vars = map[string]string{
	"bin_dir": "/opt/se/bin", "data_dir": "/var/lib/se/x", "policy": "/etc/se/policy.toml",
	"ca_bundle": "/etc/ssl/certs/ca-certificates.crt", "pccs_url": "https://pccs.example:8081/sgx/certification/v4/",
	"gomaxprocs": "8", "isvprodid": "1", "isvsvn": "2", "argv_file": "/opt/se/example-client.argv",
}

func TestGramineManifests(t *testing.T) {
	for _, name := range []string{"relayd", "kmsd", "example-client"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("gramine", name+".manifest.template"))
			if err != nil {
				t.Fatal(err)
			}
			var m manifest
			dec := toml.NewDecoder(strings.NewReader(render(t, string(b), vars))).DisallowUnknownFields()
			if err := dec.Decode(&m); err != nil {
				var sm *toml.StrictMissingError
				if errors.As(err, &sm) {
					t.Fatalf("rendered manifest has keys this test does not check:\n%s", sm.String())
				}
				t.Fatalf("rendered manifest is not TOML: %v", err)
			}
			bin := "/opt/se/bin/" + name
			if m.Libos.Entrypoint != bin {
				t.Errorf("entrypoint %q", m.Libos.Entrypoint)
			}
			if m.Loader.InsecureArgv {
				t.Error("argv taken from the host")
			}
			if (len(m.Loader.Argv) == 0) == (m.Loader.ArgvSrcFile == "") {
				t.Error("want exactly one of a fixed loader.argv and a trusted argv_src_file")
			}
			if slices.Contains(m.Loader.Argv, "--simulation") || slices.Contains(m.Loader.Argv, "--sim-dir") {
				t.Error("a manifest runs in simulation")
			}
			if m.Loader.Env["GOMAXPROCS"] != "8" {
				t.Errorf("GOMAXPROCS %q", m.Loader.Env["GOMAXPROCS"])
			}
			// The host passes no environment, except kmsd's recovery switch
			// (useless without the recovery key).
			for k, v := range m.Loader.Env {
				if _, fixed := v.(string); !fixed && !(name == "kmsd" && k == "KMSD_GENERATE_ROOT") {
					t.Errorf("loader.env.%s = %v is taken from the host", k, v)
				}
			}
			if m.SGX.RemoteAttestation != "dcap" || m.SGX.Debug == nil || *m.SGX.Debug {
				t.Errorf("remote_attestation %q debug %v: want dcap and debug explicitly false", m.SGX.RemoteAttestation, m.SGX.Debug)
			}
			if m.SGX.ISVProdID == nil || *m.SGX.ISVProdID != 1 || m.SGX.ISVSVN == nil || *m.SGX.ISVSVN != 2 {
				t.Error("isvprodid/isvsvn not taken from the variables")
			}
			if m.SGX.EnclaveSize != "1G" && m.SGX.EnclaveSize != "2G" || m.SGX.MaxThreads < 32 {
				t.Errorf("enclave_size %q max_threads %d too small for the Go runtime", m.SGX.EnclaveSize, m.SGX.MaxThreads)
			}
			if !slices.Contains(m.SGX.TrustedFiles, "file:"+bin) || !slices.Contains(m.SGX.TrustedFiles, "file:/etc/ssl/certs/ca-certificates.crt") {
				t.Errorf("trusted files %v lack the binary or the CA bundle", m.SGX.TrustedFiles)
			}
			if m.Loader.ArgvSrcFile != "" && !slices.Contains(m.SGX.TrustedFiles, m.Loader.ArgvSrcFile) {
				t.Error("argv file is not a trusted file")
			}
			var mounts []string
			tmpfs := false
			for _, mt := range m.FS.Mounts {
				mounts = append(mounts, mt.URI)
				tmpfs = tmpfs || mt.Type == "tmpfs"
			}
			if !slices.Contains(mounts, "file:"+bin) || !slices.Contains(mounts, "file:/etc/ssl/certs/ca-certificates.crt") || !tmpfs {
				t.Errorf("mounts %v", mounts)
			}
			// allowed_files: at most the data dir, which we seal ourselves.
			for _, f := range m.SGX.AllowedFiles {
				if f != "file:/var/lib/se/x/" {
					t.Errorf("allowed file %q beyond the data dir", f)
				}
			}
			if name != "example-client" && !slices.Contains(mounts, "file:/var/lib/se/x") {
				t.Errorf("%s: data dir not mounted", name)
			}
		})
	}
}

func repoRoot(t *testing.T) string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// TestStaticBinariesAndMeasurement builds the binaries as build.sh does,
// checks that they are static, and that `enclavectl measure` prints the
// MRENCLAVE relayd itself reports in simulation.
func TestStaticBinariesAndMeasurement(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	out := t.TempDir()
	for _, cmd := range []string{"relayd", "kmsd", "example-client", "enclavectl"} {
		bin := filepath.Join(out, cmd)
		build := exec.Command("go", "build", "-o", bin, "./cmd/"+cmd)
		build.Dir = repoRoot(t)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", cmd, err, b)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a dynamic loader: not static", cmd)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
			t.Errorf("%s links %v", cmd, libs)
		}
		f.Close()
	}
	relayd := filepath.Join(out, "relayd")
	b, _ := os.ReadFile(relayd)
	sum := sha256.Sum256(b)
	printed, err := exec.Command(filepath.Join(out, "enclavectl"), "measure", relayd).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(printed)) != hex.EncodeToString(sum[:]) {
		t.Fatalf("measure printed %s, want SHA-256 %x", printed, sum)
	}
	// relayd, started in simulation, reports the same MRENCLAVE.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayd, "--simulation", "--sim-dir", filepath.Join(out, "sim"), "--listen", "127.0.0.1:0", "--log-format", "json")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var rec struct{ Msg, Mrenclave string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Mrenclave != "" {
			if rec.Mrenclave != strings.TrimSpace(string(printed)) {
				t.Fatalf("relayd reports MRENCLAVE %s, measure printed %s", rec.Mrenclave, printed)
			}
			return
		}
	}
	t.Fatal("relayd never logged its MRENCLAVE")
}

func TestEGoConfigs(t *testing.T) {
	for name, prod := range map[string]int{"relayd": 1, "kmsd": 3, "example-client": 2} {
		b, err := os.ReadFile(filepath.Join("ego", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Exe       string `json:"exe"`
			Debug     *bool  `json:"debug"`
			HeapSize  int    `json:"heapSize"`
			ProductID int    `json:"productID"`
			Mounts    []struct {
				Target, Type string
			} `json:"mounts"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Exe != name || c.Debug == nil || *c.Debug || c.ProductID != prod || c.HeapSize < 512 {
			t.Errorf("%s: %+v", name, c)
		}
	}
}

func TestSystemdUnits(t *testing.T) {
	for _, name := range []string{"relayd", "kmsd"} {
		b, err := os.ReadFile(filepath.Join("systemd", "shared-enclave-"+name+".service"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"ExecStart=/usr/bin/gramine-sgx ", "Restart=on-failure", "NoNewPrivileges=yes", "User=shared-enclave"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s unit lacks %q", name, want)
			}
		}
		if strings.Contains(s, "--simulation") {
			t.Errorf("%s unit runs in simulation", name)
		}
	}
}
