package jetstream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/sharedenclave/sharedenclave/client"
	"github.com/sharedenclave/sharedenclave/internal/natstest"
)

// The benchmarks send messages through three systems, the same way:
//
//   - ClusterRelay: three relayd nodes on a three-node JetStream cluster
//     (R3 file stream). The sender's client on one node sends and waits
//     for SEND_ACK (the sealed record stored on a quorum); the receiver's
//     client on the next node gets it by push and acknowledges it,
//     waiting for ACKED (the record deleted on a quorum).
//   - JetStreamR3Direct: JetStream used directly: a synchronous publish
//     (PubAck) through one server into an R3 file stream with work-queue
//     retention, a pull consumer on the next server acking each message
//     and waiting for the server to confirm the ack (DoubleAck), as the
//     relay client waits for ACKED. Work-queue retention makes the ack
//     remove the message, as the relay's ACK does: with the default
//     (limits) retention JetStream would keep every acknowledged
//     message and do less work than the relay.
//   - SingleNodeRelay: one relayd with durable mailboxes (Pebble, fsync
//     before SEND_ACK and before ACKED), the same clients.
//
// The relays are relayd processes built from cmd/relayd. Each pair sends
// one message at a time (lock-step); with ×16, sixteen pairs run at once,
// spread over the nodes. Reported: delivered msg/s, p50/p99
// send→receive latency, and the servers' CPU per message (relayd and
// nats-server processes; the clients, in this process, are not counted).
// Run: go test ./relay/jetstream -run - -bench . -benchtime 2000x

// pairIO is one sender/receiver pair of a system under test.
type pairIO struct {
	send func(ctx context.Context, payload []byte) error
	// recv waits for the next message and returns its acknowledgement.
	recv func(ctx context.Context) (ack func() error, err error)
}

// runPairs sends b.N messages over pairs (lock-step within each pair, the
// pairs at once) and reports rate, latency and CPU per message.
// servers returns the nats-server and the relayd process ids.
func runPairs(b *testing.B, size int, pairs []pairIO, servers func() (nats, relays []int)) {
	per := max(b.N/len(pairs), 1)
	payload := make([]byte, size)
	lats := make([][]time.Duration, len(pairs))
	// The phases of each round: the send until it is acknowledged, and
	// the receiver's acknowledgement until it is confirmed.
	sendLats := make([][]time.Duration, len(pairs))
	ackLats := make([][]time.Duration, len(pairs))
	errs := make(chan error, len(pairs))
	ctx := context.Background()
	b.SetBytes(int64(size))
	n0, r0 := servers()
	natsCPU0, relayCPU0 := cpuOf(n0), cpuOf(r0)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, per)
			sendLat := make([]time.Duration, 0, per)
			ackLat := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				if err := p.send(ctx, payload); err != nil {
					errs <- err
					return
				}
				sendLat = append(sendLat, time.Since(t0))
				ack, err := p.recv(ctx)
				if err != nil {
					errs <- err
					return
				}
				lat = append(lat, time.Since(t0))
				t1 := time.Now()
				if err := ack(); err != nil {
					errs <- err
					return
				}
				ackLat = append(ackLat, time.Since(t1))
			}
			lats[i], sendLats[i], ackLats[i] = lat, sendLat, ackLat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	n1, r1 := servers()
	natsCPU, relayCPU := cpuOf(n1)-natsCPU0, cpuOf(r1)-relayCPU0
	all := sorted(lats)
	n := len(all)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64((natsCPU+relayCPU).Microseconds())/float64(n), "cpu-µs/msg")
	if len(n1) > 0 && len(r1) > 0 {
		b.ReportMetric(float64(relayCPU.Microseconds())/float64(n), "relayd-cpu-µs/msg")
	}
	b.ReportMetric(float64(all[n/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[n*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(sorted(sendLats)[n/2].Microseconds()), "send-p50-µs")
	b.ReportMetric(float64(sorted(ackLats)[n/2].Microseconds()), "ack-p50-µs")
}

// sorted merges the latencies of every pair, in order.
func sorted(per [][]time.Duration) []time.Duration {
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all
}

// cpuOf is the user+system CPU time of the server processes pids.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100
	}
	return total
}

func natsPids(c *natstest.Cluster) func() []int {
	return func() []int {
		var p []int
		for _, n := range c.Nodes {
			if pid := n.Pid(); pid != 0 {
				p = append(p, pid)
			}
		}
		return p
	}
}

var benchShapes = []struct {
	size, pairs int
}{{64, 1}, {1024, 1}, {64, 16}}

func shapeName(size, pairs int) string { return fmt.Sprintf("%dB-x%d", size, pairs) }

// relayPair is a pair of relay clients: tx on txAddr, rx on rxAddr.
func relayPair(b *testing.B, cfg client.Config, i int, txAddr, rxAddr string) pairIO {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rxID, txID := fmt.Sprintf("rx-%d", i), fmt.Sprintf("tx-%d", i)
	rx, err := client.Connect(ctx, cfg, client.Options{Addrs: []string{rxAddr}, ID: rxID, Receive: true, Window: 256})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rx.Close() })
	tx, err := client.Connect(ctx, cfg, client.Options{Addrs: []string{txAddr}, ID: txID})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tx.Close() })
	return pairIO{
		send: func(ctx context.Context, p []byte) error { return tx.Send(ctx, rxID, p) },
		recv: func(ctx context.Context) (func() error, error) {
			d, err := rx.Receive(ctx)
			if err != nil {
				return nil, err
			}
			return func() error { return rx.Ack(ctx, d) }, nil
		},
	}
}

// relaydBin builds cmd/relayd into dir.
func relaydBin(b *testing.B, dir string) string {
	bin := filepath.Join(dir, "relayd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sharedenclave/sharedenclave/cmd/relayd").CombinedOutput()
	if err != nil {
		b.Fatalf("building relayd: %v\n%s", err, out)
	}
	return bin
}

// startRelayd runs relayd with args (plus --log-format json and a
// listener on any port) and returns its address and process id once it
// listens.
func startRelayd(b *testing.B, bin string, args ...string) (string, int) {
	cmd := exec.Command(bin, append(args, "--listen", "127.0.0.1:0", "--log-format", "json")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	var seen []string
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "relayd listening" {
			go io.Copy(io.Discard, stderr)
			return rec.Addr, cmd.Process.Pid
		}
		seen = append(seen, sc.Text())
	}
	b.Fatalf("relayd did not start:\n%s", strings.Join(seen, "\n"))
	return "", 0
}

func freePort(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BenchmarkClusterRelay: three relayd processes (simulation) on the
// three-node JetStream cluster; the second and third join through the
// first (--join). CPU per message is the relayd and nats-server
// processes'.
func BenchmarkClusterRelay(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(shapeName(sh.size, sh.pairs), func(b *testing.B) {
			tmp := b.TempDir()
			bin := relaydBin(b, tmp)
			nc := natstest.Start(b, 3)
			nc.WaitReady(b, 30*time.Second)
			sim, join := filepath.Join(tmp, "sim"), freePort(b)
			var addrs []string
			var pids []int
			for i := range 3 {
				args := []string{"--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, fmt.Sprint("node", i)), "--cluster", nc.URL()}
				if i == 0 {
					args = append(args, "--join-listen", join)
				} else {
					args = append(args, "--join", join)
				}
				addr, pid := startRelayd(b, bin, args...)
				addrs, pids = append(addrs, addr), append(pids, pid)
			}
			cfg := simClientConfig(b, sim)
			pairs := make([]pairIO, sh.pairs)
			for i := range pairs {
				pairs[i] = relayPair(b, cfg, i, addrs[i%3], addrs[(i+1)%3])
			}
			runPairs(b, sh.size, pairs, func() ([]int, []int) { return natsPids(nc)(), pids })
		})
	}
}

// BenchmarkSingleNodeRelay: one relayd process with --data-dir (durable
// Pebble mailboxes: an fsync before SEND_ACK and before ACKED).
func BenchmarkSingleNodeRelay(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(shapeName(sh.size, sh.pairs), func(b *testing.B) {
			tmp := b.TempDir()
			sim := filepath.Join(tmp, "sim")
			addr, pid := startRelayd(b, relaydBin(b, tmp), "--simulation", "--sim-dir", sim, "--data-dir", filepath.Join(tmp, "data"))
			cfg := simClientConfig(b, sim)
			pairs := make([]pairIO, sh.pairs)
			for i := range pairs {
				pairs[i] = relayPair(b, cfg, i, addr, addr)
			}
			runPairs(b, sh.size, pairs, func() ([]int, []int) { return nil, []int{pid} })
		})
	}
}

func BenchmarkJetStreamR3Direct(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(shapeName(sh.size, sh.pairs), func(b *testing.B) {
			tc := startCluster(b, 0, 10*time.Second)
			urls := tc.nats.URLs()
			ctx := context.Background()
			conn := func(url string) natsjs.JetStream {
				nc, err := nats.Connect(url)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(nc.Close)
				js, err := natsjs.New(nc)
				if err != nil {
					b.Fatal(err)
				}
				return js
			}
			admin := conn(urls[0])
			var err error
			for range 80 { // a cluster just started may not place replicas yet
				if _, err = admin.CreateStream(ctx, natsjs.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Replicas: 3, Storage: natsjs.FileStorage, Retention: natsjs.WorkQueuePolicy}); err == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if err != nil {
				b.Fatal(err)
			}
			pairs := make([]pairIO, sh.pairs)
			for i := range pairs {
				pjs, cjs := conn(urls[i%3]), conn(urls[(i+1)%3])
				subj := fmt.Sprintf("bench.rx-%d", i)
				cons, err := cjs.CreateOrUpdateConsumer(ctx, "BENCH", natsjs.ConsumerConfig{Durable: fmt.Sprintf("rx-%d", i), FilterSubject: subj, AckPolicy: natsjs.AckExplicitPolicy})
				if err != nil {
					b.Fatal(err)
				}
				it, err := cons.Messages(natsjs.PullMaxMessages(256))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(it.Stop)
				pairs[i] = pairIO{
					send: func(ctx context.Context, p []byte) error { _, err := pjs.Publish(ctx, subj, p); return err },
					recv: func(ctx context.Context) (func() error, error) {
						m, err := it.Next()
						if err != nil {
							return nil, err
						}
						return func() error { return m.DoubleAck(ctx) }, nil
					},
				}
			}
			runPairs(b, sh.size, pairs, func() ([]int, []int) { return natsPids(tc.nats)(), nil })
		})
	}
}
