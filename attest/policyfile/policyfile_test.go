package policyfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/attest"
)

const h1 = "68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f"
const h2 = "9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"

func TestParse(t *testing.T) {
	f, err := Parse([]byte(`
[peers]
mrenclave = ["` + h1 + `"]
mrsigner = ["` + h2 + `"]
isvprodid = 3
min_isvsvn = 2
tcb_statuses = ["UpToDate"]

[[bindings]]
id = "alice"
mrenclave = ["` + h1 + `"]
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Peers.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.MREnclave[0].String() != h1 || p.MRSigner[0].String() != h2 || *p.ProductID != 3 || p.MinISVSVN != 2 ||
		len(p.TCBStatuses) != 1 || p.TCBStatuses[0] != attest.UpToDate || p.AllowDebug || p.AllowSimulated {
		t.Errorf("policy %+v", p)
	}
	if len(f.Bindings) != 1 || f.Bindings[0].ID != "alice" {
		t.Errorf("bindings %+v", f.Bindings)
	}
}

func TestParseErrors(t *testing.T) {
	for name, src := range map[string]string{
		"no peers":         `[[bindings]]` + "\n" + `id = "a"` + "\n" + `mrenclave = ["` + h1 + `"]`,
		"empty peers":      "[peers]\n",
		"unknown key":      "[peers]\nmrenclave = [\"" + h1 + "\"]\nmrenclav = []\n",
		"bad hex":          "[peers]\nmrenclave = [\"xyz\"]\n",
		"short hash":       "[peers]\nmrenclave = [\"abcd\"]\n",
		"unknown status":   "[peers]\nmrenclave = [\"" + h1 + "\"]\ntcb_statuses = [\"Fine\"]\n",
		"revoked status":   "[peers]\nmrenclave = [\"" + h1 + "\"]\ntcb_statuses = [\"Revoked\"]\n",
		"binding no id":    "[peers]\nmrenclave = [\"" + h1 + "\"]\n[[bindings]]\nmrenclave = [\"" + h1 + "\"]\n",
		"binding twice":    "[peers]\nmrenclave = [\"" + h1 + "\"]\n[[bindings]]\nid = \"a\"\nmrenclave = [\"" + h1 + "\"]\n[[bindings]]\nid = \"a\"\nmrenclave = [\"" + h1 + "\"]\n",
		"binding empty":    "[peers]\nmrenclave = [\"" + h1 + "\"]\n[[bindings]]\nid = \"a\"\n",
		"not toml":         "peers = {",
		"svn out of range": "[peers]\nmrenclave = [\"" + h1 + "\"]\nmin_isvsvn = 70000\n",
	} {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.toml")
	os.WriteFile(p, []byte("[peers]\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v does not name the file", err)
	}
	if _, err := Load(p + ".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}

// FuzzParse: no input panics, and whatever parses yields a policy that
// names an identity (so it cannot accept everything).
func FuzzParse(f *testing.F) {
	f.Add([]byte("[peers]\nmrenclave = [\"" + h1 + "\"]\n"))
	f.Add([]byte("[peers]\nmrsigner = [\"" + h2 + "\"]\n[[bindings]]\nid = \"a\"\nmrenclave = [\"" + h1 + "\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := Parse(b)
		if err != nil {
			return
		}
		p, err := pf.Peers.Policy()
		if err != nil || len(p.MREnclave)+len(p.MRSigner) == 0 {
			t.Fatalf("parsed policy accepts nothing or everything: %v", err)
		}
	})
}

func TestPeerPolicy(t *testing.T) {
	def := &attest.Policy{MRSigner: []attest.Hash32{{1}}}
	if p, err := PeerPolicy("", def); err != nil || p != def {
		t.Fatal("fallback not used")
	}
	if _, err := PeerPolicy("", nil); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("no file, no default: %v", err)
	}
	path := filepath.Join(t.TempDir(), "p.toml")
	os.WriteFile(path, []byte("[peers]\nmrenclave = [\""+h1+"\"]\n"), 0o644)
	if p, err := PeerPolicy(path, def); err != nil || p.MREnclave[0].String() != h1 {
		t.Fatalf("file: %v", err)
	}
}
