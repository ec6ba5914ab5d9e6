package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

func runClient(t *testing.T, dir, addr, id, input string) (int, string, string) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"--simulation", "--sim-dir", dir, host, port}
	if id != "" {
		args = append(args, id)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(input), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExampleClientSendPoll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	code, out, stderr := runClient(t, dir, addr, "bob", "poll\nquit\n")
	if code != 0 || !strings.Contains(out, "registered as bob") || !strings.Contains(out, "no data available") {
		t.Fatalf("bob: %d %q %q", code, out, stderr)
	}
	if !strings.Contains(stderr, "SIMULATION MODE") {
		t.Errorf("simulation not announced: %q", stderr)
	}
	code, out, _ = runClient(t, dir, addr, "alice", "send bob hello bob\nsend nobody x\nbogus\nsend\nquit\n")
	if code != 0 {
		t.Errorf("alice: exit %d, want 0 (refusals keep the session)", code)
	}
	for _, want := range []string{"sent to bob", "refused: recipient not found", `unknown command "bogus"`, "usage: send ID MESSAGE"} {
		if !strings.Contains(out, want) {
			t.Errorf("alice output lacks %q: %s", want, out)
		}
	}
	code, out, _ = runClient(t, dir, addr, "bob", "poll\npoll\n")
	if code != 0 || !strings.Contains(out, "from alice: hello bob") || !strings.Contains(out, "no data available") {
		t.Fatalf("bob again: %d %q", code, out)
	}
	// The default id is the seed's.
	_, out, _ = runClient(t, dir, addr, "", "quit\n")
	if !strings.Contains(out, "registered as default_client_id") {
		t.Errorf("default id: %q", out)
	}
}

func TestExampleClientUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"127.0.0.1"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("one argument: exit %d", code)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"--help"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "send ID MESSAGE") || errb.Len() != 0 {
		t.Errorf("--help: %d %q", code, errb.String())
	}
	// Without --simulation it needs Gramine, and says so.
	errb.Reset()
	if code := run(context.Background(), []string{"127.0.0.1", "1"}, strings.NewReader(""), &out, &errb); code != 1 || !strings.Contains(errb.String(), "--simulation") {
		t.Errorf("no SGX: %d %q", code, errb.String())
	}
	// A relay on a platform the client does not trust is refused.
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	other := filepath.Join(t.TempDir(), "other")
	relaytest.StartSim(t, other) // creates the other platform
	code, _, stderr := runClient(t, other, addr, "x", "quit\n")
	if code != 1 || !strings.Contains(stderr, "not genuine") && !strings.Contains(stderr, "refused") {
		t.Errorf("untrusted relay: %d %q", code, stderr)
	}
}
