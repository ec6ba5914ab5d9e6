package jetstream_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyCmdImportsTheBackend: the cluster backend is chosen by main;
// package kms and every other library package build without NATS.
func TestOnlyCmdImportsTheBackend(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH: cannot list the import graph")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/sharedenclave/sharedenclave/kms").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "nats-io") {
		t.Fatal("package kms depends on NATS")
	}
	out, err = exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/sharedenclave/sharedenclave/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if strings.Contains(" "+imports+" ", " github.com/sharedenclave/sharedenclave/kms/jetstream ") && !strings.Contains(pkg, "/cmd/") {
			t.Errorf("%s imports kms/jetstream; only cmd/ may", pkg)
		}
	}
}
