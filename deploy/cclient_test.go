package deploy

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestGramineManifestCClient checks the C example client's manifest as
// TestGramineManifests checks the Go ones, plus what a dynamically linked
// program needs: Gramine's glibc at /lib, the library mounted and trusted,
// and a fixed LD_LIBRARY_PATH that names only those two places.
func TestGramineManifestCClient(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("gramine", "example-client-c.manifest.template"))
	if err != nil {
		t.Fatal(err)
	}
	// gramine.runtimedir() is the one Jinja call the template makes.
	const runtime = "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"
	tmpl := strings.ReplaceAll(string(b), "{{ gramine.runtimedir() }}", "{{ runtime_dir }}")
	v := maps.Clone(vars)
	v["lib_dir"], v["runtime_dir"], v["bin_dir"] = "/opt/se/c/lib", runtime, "/opt/se/c/bin"
	var m manifest
	dec := toml.NewDecoder(strings.NewReader(render(t, tmpl, v))).DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			t.Fatalf("rendered manifest has keys this test does not check:\n%s", sm.String())
		}
		t.Fatalf("rendered manifest is not TOML: %v", err)
	}
	bin, lib := "/opt/se/c/bin/example_client", "/opt/se/c/lib/libsharedenclave.so"
	if m.Libos.Entrypoint != bin {
		t.Errorf("entrypoint %q", m.Libos.Entrypoint)
	}
	if m.Loader.InsecureArgv || len(m.Loader.Argv) != 0 || m.Loader.ArgvSrcFile != "file:/opt/se/example-client.argv" {
		t.Errorf("argv must come from the trusted argv file only: %+v", m.Loader)
	}
	if !slices.Contains(m.SGX.TrustedFiles, m.Loader.ArgvSrcFile) {
		t.Error("argv file is not a trusted file")
	}
	for k, val := range m.Loader.Env {
		if _, fixed := val.(string); !fixed {
			t.Errorf("loader.env.%s = %v is taken from the host", k, val)
		}
	}
	if m.Loader.Env["LD_LIBRARY_PATH"] != "/lib:/opt/se/c/lib" || m.Loader.Env["GOMAXPROCS"] != "8" {
		t.Errorf("loader.env %v", m.Loader.Env)
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
	for _, f := range []string{"file:" + bin, "file:" + lib, "file:" + runtime + "/", "file:/etc/ssl/certs/ca-certificates.crt", "file:/etc/se/policy.toml"} {
		if !slices.Contains(m.SGX.TrustedFiles, f) {
			t.Errorf("trusted files %v lack %s", m.SGX.TrustedFiles, f)
		}
	}
	mounts := map[string]string{}
	tmpfs := false
	for _, mt := range m.FS.Mounts {
		mounts[mt.Path] = mt.URI
		tmpfs = tmpfs || mt.Type == "tmpfs"
	}
	want := map[string]string{"/lib": "file:" + runtime, bin: "file:" + bin, lib: "file:" + lib,
		"/config/client-policy.toml": "file:/etc/se/policy.toml", "/etc/ssl/certs/ca-certificates.crt": "file:/etc/ssl/certs/ca-certificates.crt"}
	for p, uri := range want {
		if mounts[p] != uri {
			t.Errorf("mount %s = %q, want %q", p, mounts[p], uri)
		}
	}
	if !tmpfs {
		t.Error("no tmpfs")
	}
	if len(m.SGX.AllowedFiles) != 0 {
		t.Errorf("allowed files %v: the client writes nothing", m.SGX.AllowedFiles)
	}
}
