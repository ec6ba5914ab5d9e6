package flagconf

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func setup() (*flag.FlagSet, *string, *int, *bool, *time.Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("config", "", "")
	listen := fs.String("listen", ":1", "")
	n := fs.Int("max-conns", 10, "")
	b := fs.Bool("simulation", false, "")
	d := fs.Duration("idle-timeout", time.Minute, "")
	return fs, listen, n, b, d
}

func file(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte(body), 0o644)
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	fs, listen, n, b, d := setup()
	fs.Parse([]string{"--listen", ":3"})
	p := file(t, "listen = \":2\"\nmax-conns = 5\nsimulation = true\nidle-timeout = \"2m\"\n")
	if err := Apply(fs, p, "X_", env(map[string]string{"X_MAX_CONNS": "7"})); err != nil {
		t.Fatal(err)
	}
	if *listen != ":3" || *n != 7 || !*b || *d != 2*time.Minute {
		t.Fatalf("flag > env > file > default broken: %s %d %v %v", *listen, *n, *b, *d)
	}
}

func TestDefaultsStay(t *testing.T) {
	fs, listen, n, _, _ := setup()
	fs.Parse(nil)
	if err := Apply(fs, "", "X_", env(nil)); err != nil {
		t.Fatal(err)
	}
	if *listen != ":1" || *n != 10 {
		t.Fatal("defaults changed")
	}
}

func TestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"unknown key": {"listne = \":2\"\n", nil, `unknown key "listne"`},
		"config key":  {"config = \"x\"\n", nil, `unknown key "config"`},
		"bad type":    {"max-conns = \"lots\"\n", nil, `"max-conns"`},
		"table":       {"[listen]\nx = 1\n", nil, "must be a string"},
		"not toml":    {"listen = \n", nil, "config file"},
		"bad env":     {"", map[string]string{"X_IDLE_TIMEOUT": "soon"}, "X_IDLE_TIMEOUT"},
	} {
		fs, _, _, _, _ := setup()
		fs.Parse(nil)
		p := ""
		if tc.file != "" {
			p = file(t, tc.file)
		}
		err := Apply(fs, p, "X_", env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	fs, _, _, _, _ := setup()
	fs.Parse(nil)
	if err := Apply(fs, "/nonexistent/c.toml", "X_", env(nil)); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}
