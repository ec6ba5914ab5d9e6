package docs_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// subcommands of enclavectl, as "group sub" (the groups list them).
var enclavectlSubcommands = []string{
	"sim init", "sim quote", "sim refresh", "sim serve",
	"quote verify",
	"relay register", "relay send", "relay poll", "relay receive",
	"kms key create", "kms key read", "kms key list", "kms key rotate",
	"kms encrypt", "kms decrypt", "kms policy write", "kms token create",
	"ratls cert", "ratls inspect",
	"custody keygen", "custody decrypt-share", "custody unseal", "custody status",
	"measure", "explore",
}

// TestCLIConventions checks every command and subcommand the same way:
// help asked for (--help, -h, help) goes to standard output with exit 0
// and nothing on standard error; a mistake (an unknown flag or command, a
// missing subcommand) prints the usage on standard error with exit 2 and
// nothing on standard output.
func TestCLIConventions(t *testing.T) {
	bin, err := bins()
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		args []string
		code int
		want string // in stdout for help, in stderr for a mistake
	}
	var cases []tc
	for _, c := range []string{"relayd", "kmsd", "example-client", "enclavectl", "bench"} {
		for _, h := range []string{"--help", "-h", "help"} {
			cases = append(cases, tc{[]string{c, h}, 0, "Usage"})
		}
	}
	cases = append(cases,
		tc{[]string{"relayd", "--bogus"}, 2, "Usage: relayd"},
		tc{[]string{"kmsd", "--bogus"}, 2, "Usage: kmsd"},
		tc{[]string{"example-client"}, 2, "Usage: example-client"},
		tc{[]string{"example-client", "--bogus"}, 2, "Usage: example-client"},
		tc{[]string{"enclavectl"}, 2, "Usage"},
		tc{[]string{"enclavectl", "bogus"}, 2, "Usage"},
		tc{[]string{"bench"}, 2, "Usage"},
		tc{[]string{"bench", "bogus"}, 2, "Usage"},
		tc{[]string{"bench", "relay", "--bogus"}, 2, "-duration"},
		tc{[]string{"enclavectl", "kms", "key"}, 2, "kms key create"},
		tc{[]string{"enclavectl", "kms", "key", "--help"}, 0, "kms key create"},
	)
	groups := map[string][]string{}
	for _, s := range enclavectlSubcommands {
		w := strings.Fields(s)
		groups[w[0]] = append(groups[w[0]], s)
		cases = append(cases,
			tc{append(append([]string{"enclavectl"}, w...), "--help"), 0, "Usage: enclavectl " + s},
			tc{append(append([]string{"enclavectl"}, w...), "-h"), 0, "Usage: enclavectl " + s},
			tc{append(append([]string{"enclavectl"}, w...), "--bogus"), 2, "Usage: enclavectl " + s},
		)
	}
	for g, subs := range groups {
		if g == "measure" || g == "explore" {
			continue
		}
		// The group alone lists its subcommands (a mistake); asked, the same on stdout.
		cases = append(cases,
			tc{[]string{"enclavectl", g}, 2, strings.Join(subs, "|")},
			tc{[]string{"enclavectl", g, "--help"}, 0, strings.Join(subs, "|")},
			tc{[]string{"enclavectl", g, "help"}, 0, strings.Join(subs, "|")},
			tc{[]string{"enclavectl", g, "bogus"}, 2, strings.Join(subs, "|")},
		)
	}
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, c.args[0]), c.args[1:]...)
			cmd.Dir = t.TempDir()
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			cmd.Run()
			code := cmd.ProcessState.ExitCode()
			shown, other := out.String(), errb.String()
			if c.code != 0 {
				shown, other = other, shown
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			for _, w := range strings.Split(c.want, "|") {
				if !strings.Contains(shown, w) {
					t.Errorf("lacks %q\nstdout: %s\nstderr: %s", w, out.String(), errb.String())
				}
			}
			if other != "" {
				t.Errorf("wrote to the other stream:\nstdout: %s\nstderr: %s", out.String(), errb.String())
			}
		})
	}
}

// TestKMSUsageMatchesFlags checks that the kms usage says what each
// command takes: --policy is the trust policy file everywhere, and token
// create names the new token's Vault policies with --policies.
func TestKMSUsageMatchesFlags(t *testing.T) {
	bin, err := bins()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range enclavectlSubcommands {
		if !strings.HasPrefix(s, "kms ") {
			continue
		}
		out, err := exec.Command(filepath.Join(bin, "enclavectl"), append(strings.Fields(s), "--help")...).Output()
		if err != nil {
			t.Fatalf("%s --help: %v", s, err)
		}
		for _, f := range []string{"-addr", "-policy string\n    \tTOML policy file", "-token-file", "-simulation", "-sim-dir", "-pccs", "-collateral", "-root"} {
			if !bytes.Contains(out, []byte(f)) {
				t.Errorf("%s --help lacks %q:\n%s", s, f, out)
			}
		}
		if bytes.Contains(out, []byte("trust-policy")) {
			t.Errorf("%s --help still offers --trust-policy", s)
		}
	}
	out, _ := exec.Command(filepath.Join(bin, "enclavectl"), "kms", "token", "create", "--help").Output()
	if !bytes.Contains(out, []byte("-policies")) {
		t.Errorf("kms token create --help lacks --policies:\n%s", out)
	}
}
