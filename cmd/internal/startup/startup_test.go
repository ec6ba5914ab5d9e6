package startup

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestFinish(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"ok":                  {[]string{"--simulation"}, ""},
		"stray argument":      {[]string{"x"}, "unexpected argument"},
		"sim with root":       {[]string{"--simulation", "--root", "/etc/hostname"}, "conflicting"},
		"sim dir without sim": {[]string{"--sim-dir", "d"}, "conflicting"},
		"missing root":        {[]string{"--root", "/nonexistent"}, "--root"},
		"seal policy":         {[]string{"--seal-policy", "x"}, "--seal-policy"},
		"bad port":            {[]string{"--listen", ":65536"}, "port"},
		"bad metrics":         {[]string{"--metrics-listen", "x"}, "--metrics-listen"},
		"bad shutdown":        {[]string{"--shutdown-timeout", "0s"}, "--shutdown-timeout"},
	} {
		var s Server
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		s.Register(fs, ":1", "x", "data")
		fs.Parse(tc.args)
		err := s.Finish(fs, "T_", func(string) string { return "" }, nil)
		if tc.want == "" {
			if err != nil || s.SimDir != ".sim" {
				t.Errorf("%s: %v, sim dir %q", name, err, s.SimDir)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := Logger("xml", "info", io.Discard); err == nil {
		t.Error("bad log format accepted")
	}
	if _, err := Logger("json", "loud", io.Discard); err == nil {
		t.Error("bad log level accepted")
	}
}
