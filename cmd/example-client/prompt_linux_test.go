package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sharedenclave/sharedenclave/relay/relaytest"
)

// openPTY opens a pseudo-terminal pair: what the client reads as its
// standard input (tty) and the side a user types into (ptm).
func openPTY(t *testing.T) (ptm, tty *os.File) {
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptm, tty
}

// On a terminal the client shows its commands and a prompt; piped (every
// other test) it prints neither, so scripts read only answers.
func TestPromptOnTerminalOnly(t *testing.T) {
	ptm, tty := openPTY(t)
	dir := filepath.Join(t.TempDir(), "sim")
	addr := relaytest.StartSim(t, dir)
	host, port, _ := net.SplitHostPort(addr)
	if _, err := ptm.Write([]byte("poll\nquit\n")); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--simulation", "--sim-dir", dir, host, port, "bob"}, tty, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "commands: send ID MESSAGE | poll | quit\n> no data available\n> ") {
		t.Errorf("on a terminal, output %q lacks the prompt", out.String())
	}

	_, piped, _ := runClient(t, dir, addr, "bob", "poll\nquit\n")
	if strings.Contains(piped, "> ") || strings.Contains(piped, "commands:") {
		t.Errorf("piped, output %q shows a prompt", piped)
	}
}
