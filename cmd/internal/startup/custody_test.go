package startup

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
	"github.com/sharedenclave/sharedenclave/store"
)

func server(t *testing.T, args ...string) (*Server, error) {
	t.Helper()
	var s Server
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.Register(fs, ":1", "x", "data")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &s, s.Finish(fs, "T_", func(string) string { return "" }, nil)
}

func TestRecoveryFlags(t *testing.T) {
	tmp := t.TempDir()
	ops := custodytest.NewOperators(t, tmp, 3)
	bad := filepath.Join(tmp, "bad.txt")
	os.WriteFile(bad, []byte("age1notarecipient\n"), 0o600)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"backup without data dir": {[]string{"--backup-to", tmp}, "--backup-to needs"},
		"without data dir":        {[]string{"--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", tmp}, "need --data-dir"},
		"no threshold":            {[]string{"--data-dir", tmp, "--recovery-recipients", ops.RecipientsFile, "--recovery-shares-dir", tmp}, "all three"},
		"no shares dir":           {[]string{"--data-dir", tmp, "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2"}, "all three"},
		"threshold 1":             {[]string{"--data-dir", tmp, "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "1", "--recovery-shares-dir", tmp}, "--recovery-threshold 1"},
		"threshold > n":           {[]string{"--data-dir", tmp, "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "4", "--recovery-shares-dir", tmp}, "--recovery-threshold 4"},
		"bad recipient":           {[]string{"--data-dir", tmp, "--recovery-recipients", bad, "--recovery-threshold", "2", "--recovery-shares-dir", tmp}, "line 1"},
		"missing file":            {[]string{"--data-dir", tmp, "--recovery-recipients", filepath.Join(tmp, "none"), "--recovery-threshold", "2", "--recovery-shares-dir", tmp}, "--recovery-recipients"},
	} {
		_, err := server(t, append([]string{"--simulation", "--sim-dir", filepath.Join(tmp, "sim")}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func simBackend(t *testing.T, dir string) *backend.Backend {
	t.Helper()
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: dir, CreateSim: true})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

var quiet = slog.New(slog.DiscardHandler)

// A new data dir gets a custody file; share files are written before it,
// and if they cannot be, nothing is committed.
func TestNewDataDir(t *testing.T) {
	tmp := t.TempDir()
	be := simBackend(t, filepath.Join(tmp, "sim"))
	ops := custodytest.NewOperators(t, tmp, 3)

	// The shares directory cannot be made: no custody file, no store.
	blocked := filepath.Join(tmp, "blocked")
	os.WriteFile(blocked, nil, 0o600)
	data := filepath.Join(tmp, "data")
	s, err := server(t, "--simulation", "--data-dir", data, "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", blocked)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenStore(be, "kms", quiet); err == nil || !strings.Contains(err.Error(), "--recovery-shares-dir") {
		t.Fatalf("unwritable shares dir: %v", err)
	}
	if ents, _ := os.ReadDir(data); len(ents) != 0 {
		t.Fatalf("something was committed: %v", ents)
	}

	shares := filepath.Join(tmp, "shares")
	s.RecoverySharesDir = shares
	st, sealed, err := s.OpenStore(be, "kms", quiet)
	if err != nil || sealed != nil {
		t.Fatal(err, sealed)
	}
	st.Put("kms/test", []byte("k"), []byte("v"), store.Sync)
	st.Close()
	b, err := os.ReadFile(filepath.Join(data, CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := custody.ParseFile(b)
	if err != nil || f.Recovery == nil || f.Recovery.Threshold != 2 || f.Recovery.Shares != 3 {
		t.Fatalf("custody file: %v %+v", err, f)
	}
	ops.Shares(t, shares, "kms-")

	// The same flags again: the same recovery, nothing new written.
	st, _, err = s.OpenStore(be, "kms", quiet)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if ents, _ := os.ReadDir(shares); len(ents) != 3 {
		t.Fatalf("%d share files after a restart, want 3", len(ents))
	}
	// Other recipients: refused, naming the flags.
	other := custodytest.NewOperators(t, t.TempDir(), 3)
	s2, _ := server(t, "--simulation", "--data-dir", data, "--recovery-recipients", other.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", shares)
	if _, _, err := s2.OpenStore(be, "kms", quiet); err == nil || !strings.Contains(err.Error(), "--recovery-recipients") {
		t.Fatalf("other recipients: %v", err)
	}
}

// Recovery added to a custody data dir made without it.
func TestAddRecoveryLater(t *testing.T) {
	tmp := t.TempDir()
	be := simBackend(t, filepath.Join(tmp, "sim"))
	data := filepath.Join(tmp, "data")
	s, _ := server(t, "--simulation", "--data-dir", data)
	st, _, err := s.OpenStore(be, "relay", quiet)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ops := custodytest.NewOperators(t, tmp, 2)
	s, _ = server(t, "--simulation", "--data-dir", data, "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", filepath.Join(tmp, "shares"))
	st, _, err = s.OpenStore(be, "relay", quiet)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ops.Shares(t, filepath.Join(tmp, "shares"), "relay-")
}

// A data dir made before custody opens as before, under the seal key,
// and refuses recovery flags.
func TestLegacyDataDir(t *testing.T) {
	tmp := t.TempDir()
	be := simBackend(t, filepath.Join(tmp, "sim"))
	data := filepath.Join(tmp, "data")
	root, err := be.SealRoot(backend.SealMREnclave)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: data, Root: root, Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	st.Put("kms/test", []byte("k"), []byte("old"), store.Sync)
	st.Close()
	var logs strings.Builder
	s, _ := server(t, "--simulation", "--data-dir", data)
	st, _, err = s.OpenStore(be, "kms", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get("kms/test", []byte("k")); err != nil || string(v) != "old" {
		t.Fatalf("legacy record: %q %v", v, err)
	}
	st.Close()
	if !strings.Contains(logs.String(), "predates custody") {
		t.Errorf("legacy data dir not announced:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(data, CustodyFile)); err == nil {
		t.Error("a custody file was added to a legacy data dir")
	}
	ops := custodytest.NewOperators(t, tmp, 2)
	s, _ = server(t, "--simulation", "--data-dir", data, "--recovery-recipients", ops.RecipientsFile, "--recovery-threshold", "2", "--recovery-shares-dir", filepath.Join(tmp, "shares"))
	if _, _, err := s.OpenStore(be, "kms", quiet); err == nil || !strings.Contains(err.Error(), "made before custody") {
		t.Fatalf("recovery flags on a legacy dir: %v", err)
	}
}

// A tampered custody file is refused, not treated as new or legacy.
func TestTamperedCustodyFile(t *testing.T) {
	tmp := t.TempDir()
	be := simBackend(t, filepath.Join(tmp, "sim"))
	data := filepath.Join(tmp, "data")
	s, _ := server(t, "--simulation", "--data-dir", data)
	st, _, err := s.OpenStore(be, "kms", quiet)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	path := filepath.Join(data, CustodyFile)
	b, _ := os.ReadFile(path)
	f, _ := custody.ParseFile(b)
	f.Sealed[len(f.Sealed)-1] ^= 1
	nb, _ := f.Marshal()
	os.WriteFile(path, nb, 0o600)
	if _, _, err := s.OpenStore(be, "kms", quiet); err == nil || !strings.Contains(err.Error(), "does not open here") {
		t.Fatalf("tampered sealed data key: %v", err)
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if _, _, err := s.OpenStore(be, "kms", quiet); err == nil {
		t.Fatal("malformed custody file accepted")
	}
	// A host that deletes the custody file gains nothing: the store does
	// not open under the seal key, and nothing is written.
	os.Remove(path)
	if _, _, err := s.OpenStore(be, "kms", quiet); !errors.Is(err, store.ErrSealedElsewhere) {
		t.Fatalf("custody file deleted: %v", err)
	}
}

// The recovery flags come from the config file and the environment like
// every flag.
func TestRecoveryFlagsFromConfigAndEnv(t *testing.T) {
	tmp := t.TempDir()
	ops := custodytest.NewOperators(t, tmp, 3)
	conf := filepath.Join(tmp, "conf.toml")
	os.WriteFile(conf, []byte("recovery-recipients = \""+ops.RecipientsFile+"\"\nrecovery-threshold = 2\n"), 0o600)
	var s Server
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	s.Register(fs, ":1", "x", "data")
	fs.Parse([]string{"--simulation", "--data-dir", tmp, "--config", conf})
	env := map[string]string{"T_RECOVERY_SHARES_DIR": filepath.Join(tmp, "shares")}
	if err := s.Finish(fs, "T_", func(k string) string { return env[k] }, nil); err != nil {
		t.Fatal(err)
	}
	if s.RecoveryThreshold != 2 || len(s.recipients) != 3 || s.RecoverySharesDir != env["T_RECOVERY_SHARES_DIR"] {
		t.Fatalf("%+v", s)
	}
}

// FuzzRecipientsFile: every line the parser keeps is a canonical age
// recipient; anything else is an error naming the flag.
func FuzzRecipientsFile(f *testing.F) {
	f.Add([]byte("# ops\nage1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n\n"))
	f.Add([]byte("age1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "r")
		os.WriteFile(p, b, 0o600)
		rc, err := readRecipients(p)
		if err != nil {
			if !strings.Contains(err.Error(), "--recovery-recipients") {
				t.Fatalf("error without the flag's name: %v", err)
			}
			return
		}
		for _, r := range rc {
			if !strings.HasPrefix(r, "age1") || strings.ContainsAny(r, " \n#") {
				t.Fatalf("kept %q", r)
			}
		}
	})
}

// A fresh file system's lost+found does not make a data dir look like
// one made before custody.
func TestNewDataDirOnAFreshFileSystem(t *testing.T) {
	tmp := t.TempDir()
	be := simBackend(t, filepath.Join(tmp, "sim"))
	data := filepath.Join(tmp, "data")
	os.MkdirAll(filepath.Join(data, "lost+found"), 0o700)
	s, _ := server(t, "--simulation", "--data-dir", data)
	st, _, err := s.OpenStore(be, "kms", quiet)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(data, CustodyFile)); err != nil {
		t.Fatalf("no custody file: %v", err)
	}
}
