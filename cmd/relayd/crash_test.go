package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/client"
)

// The crash test runs relayd as a child process: this test binary
// re-executed with RELAYD_TEST_CHILD=1 behaves as relayd itself.
func TestMain(m *testing.M) {
	if os.Getenv("RELAYD_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type child struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuf
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildExe(t, os.Args[0], args...)
}

// startChildExe is startChild for another executable (a rebuilt relayd).
func startChildExe(t *testing.T, exe string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "RELAYD_TEST_CHILD=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		logs.Write([]byte(line + "\n"))
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "relayd listening" {
			go io.Copy(logs, stderr)
			return &child{cmd: cmd, addr: rec.Addr, logs: logs}
		}
	}
	cmd.Wait()
	t.Fatalf("relayd child exited before listening:\n%s", logs.String())
	return nil
}

// TestCrashRecovery: senders keep sending to two receivers' mailboxes while
// relayd (with --data-dir) is killed with SIGKILL at random moments and
// restarted. Afterwards every message that had been acknowledged is
// delivered exactly once, in each sender's order; a message that was in
// flight at the kill may be delivered (once) or not.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	tmp := t.TempDir()
	simDir, dataDir := filepath.Join(tmp, "sim"), filepath.Join(tmp, "data")
	args := []string{"--simulation", "--sim-dir", simDir, "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--log-format", "json", "--mailbox-messages", "1000000", "--mailbox-bytes", "1073741824"}
	const senders, receivers, rounds = 6, 2, 5

	c := startChild(t, args...)
	be, err := backend.Open(backend.Options{Simulation: true, SimDir: simDir})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr, id string) (*client.Conn, error) {
		conn, err := client.Dial(context.Background(), addr, client.Config{Attester: be.Attester, Verifier: be.Verifier, Policy: be.DefaultPolicy, Timeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		if err := conn.Register(id); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	for r := 0; r < receivers; r++ { // mailboxes exist once registered
		conn, err := dial(c.addr, fmt.Sprintf("r%d", r))
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}

	// Per sender: which sequence numbers were acknowledged, and which were
	// in flight (sent, no answer) when relayd was killed.
	acked := make([]map[int]bool, senders)
	maybe := make([]map[int]bool, senders)
	for i := range acked {
		acked[i], maybe[i] = map[int]bool{}, map[int]bool{}
	}
	next := make([]int, senders)
	rng := rand.New(rand.NewPCG(1, 2))
	total := 0
	for round := 0; round < rounds; round++ {
		if round > 0 {
			c = startChild(t, args...)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := dial(c.addr, fmt.Sprintf("s%d", s))
				if err != nil {
					return // killed before we connected
				}
				defer conn.Close()
				for {
					mu.Lock()
					seq := next[s]
					next[s]++
					mu.Unlock()
					var b [8]byte
					binary.BigEndian.PutUint32(b[:4], uint32(s))
					binary.BigEndian.PutUint32(b[4:], uint32(seq))
					err := conn.Send(fmt.Sprintf("r%d", seq%receivers), b[:])
					mu.Lock()
					if err == nil {
						acked[s][seq] = true
						total++
					} else {
						maybe[s][seq] = true // never retried
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(150+rng.IntN(350)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		wg.Wait()
	}
	if total < senders*rounds {
		t.Fatalf("only %d messages acknowledged over %d rounds: the load never got going", total, rounds)
	}

	// Restart once more and drain every mailbox.
	c = startChild(t, args...)
	defer func() { c.cmd.Process.Kill(); c.cmd.Wait() }()
	got := make([][]int, senders)
	for r := 0; r < receivers; r++ {
		conn, err := dial(c.addr, fmt.Sprintf("r%d", r))
		if err != nil {
			t.Fatal(err)
		}
		drain(t, conn, func(m client.Message) {
			s, seq := int(binary.BigEndian.Uint32(m.Data[:4])), int(binary.BigEndian.Uint32(m.Data[4:]))
			if m.From != fmt.Sprintf("s%d", s) || seq%receivers != r {
				t.Fatalf("message %d of s%d arrived from %q at r%d", seq, s, m.From, r)
			}
			got[s] = append(got[s], seq)
		})
		conn.Close()
	}
	for s := 0; s < senders; s++ {
		seen := map[int]int{}
		for _, seq := range got[s] {
			seen[seq]++
		}
		for seq := range acked[s] {
			if seen[seq] != 1 {
				t.Errorf("sender %d: acknowledged message %d delivered %d times", s, seq, seen[seq])
			}
		}
		for seq, n := range seen {
			if n > 1 {
				t.Errorf("sender %d: message %d delivered %d times", s, seq, n)
			}
			if !acked[s][seq] && !maybe[s][seq] {
				t.Errorf("sender %d: message %d delivered but never sent", s, seq)
			}
		}
		// Each sender's messages reach each receiver in the order sent.
		last := map[int]int{}
		for _, seq := range got[s] {
			r := seq % receivers
			if prev, ok := last[r]; ok && seq <= prev {
				t.Errorf("sender %d to r%d: %d after %d", s, r, seq, prev)
			}
			last[r] = seq
		}
	}
	if strings.Contains(c.logs.String(), "refusing") {
		t.Errorf("records refused after plain crashes:\n%s", c.logs.String())
	}
	t.Logf("%d messages acknowledged across %d SIGKILLs; all delivered exactly once in order", total, rounds)
}

// drain polls conn until its mailbox is empty, handing each message to fn.
func drain(t *testing.T, conn *client.Conn, fn func(client.Message)) {
	t.Helper()
	for {
		msgs, err := conn.PollMany(256)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			fn(m)
		}
	}
}
