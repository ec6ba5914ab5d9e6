package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServer is a nats-server child process with TLS (ECDSA P-256, TLS
// 1.3 negotiated) and JetStream on file storage.
type natsServer struct {
	cmd     *exec.Cmd
	url     string
	tls     *tls.Config
	version string
}

// startNATS runs nats-server on loopback; it returns (nil, nil) if
// nats-server is not installed.
func startNATS(ctx context.Context, dir string) (*natsServer, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		return nil, nil
	}
	ver, _ := exec.CommandContext(ctx, bin, "--version").Output()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "nats.crt"), filepath.Join(dir, "nats.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "nats.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
max_payload: 1MB
tls { cert_file: %q, key_file: %q }
jetstream { store_dir: %q, max_file_store: 8GB, max_memory_store: 256MB }
`, port, certFile, keyFile, filepath.Join(dir, "js"))), 0o600)
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	c, _ := x509.ParseCertificate(der)
	pool.AddCert(c)
	s := &natsServer{cmd: cmd, url: fmt.Sprintf("tls://127.0.0.1:%d", port),
		tls: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}, version: strings.TrimSpace(string(ver))}
	for i := 0; i < 100; i++ {
		if nc, err := s.connect(); err == nil {
			nc.Close()
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	return nil, errors.New("nats-server did not come up")
}

func (s *natsServer) connect() (*nats.Conn, error) {
	return nats.Connect(s.url, nats.Secure(s.tls), nats.MaxReconnects(0))
}

func (s *natsServer) cpu() (time.Duration, error) { return procCPU(s.cmd.Process.Pid) }

// natsPair implements pair for one subject.
type natsPair struct {
	snd, rcv *nats.Conn
	subject  string
	ch       chan *nats.Msg
	sub      *nats.Subscription
	js       jetstream.JetStream
	cons     jetstream.Consumer
	mode     string
}

func (s *natsServer) newPair(ctx context.Context, mode, subject string) (pair, error) {
	snd, err := s.connect()
	if err != nil {
		return nil, err
	}
	rcv, err := s.connect()
	if err != nil {
		return nil, err
	}
	p := &natsPair{snd: snd, rcv: rcv, subject: subject, mode: mode}
	switch mode {
	case modeLockStep, modePipelined:
		p.ch = make(chan *nats.Msg, 1<<16)
		if p.sub, err = rcv.ChanSubscribe(subject, p.ch); err != nil {
			return nil, err
		}
		if err := rcv.Flush(); err != nil {
			return nil, err
		}
	case modeDurable:
		if p.js, err = jetstream.New(snd); err != nil {
			return nil, err
		}
		name := strings.ReplaceAll(subject, ".", "_")
		st, err := p.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
			Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy})
		if err != nil {
			return nil, err
		}
		if p.cons, err = st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *natsPair) send(ctx context.Context, payloads [][]byte) (int, error) {
	switch p.mode {
	case modeLockStep: // request/reply
		if _, err := p.snd.Request(p.subject, payloads[0], 5*time.Second); err != nil {
			return 0, err
		}
		return 1, nil
	case modePipelined: // core publish, one flush per batch
		for _, b := range payloads {
			if err := p.snd.Publish(p.subject, b); err != nil {
				return 0, err
			}
		}
		return len(payloads), p.snd.Flush()
	default: // JetStream, synchronous PubAck
		if _, err := p.js.Publish(ctx, p.subject, payloads[0]); err != nil {
			return 0, err
		}
		return 1, nil
	}
}

func (p *natsPair) receive(ctx context.Context, max int) ([][]byte, error) {
	switch p.mode {
	case modeLockStep, modePipelined:
		var out [][]byte
		select {
		case m := <-p.ch:
			out = append(out, m.Data)
			if m.Reply != "" {
				m.Respond(nil)
			}
		case <-time.After(20 * time.Millisecond):
			return nil, nil
		}
		for len(out) < max {
			select {
			case m := <-p.ch:
				out = append(out, m.Data)
				if m.Reply != "" {
					m.Respond(nil)
				}
			default:
				return out, nil
			}
		}
		return out, nil
	default:
		batch, err := p.cons.FetchNoWait(max)
		if err != nil {
			return nil, err
		}
		var out [][]byte
		for m := range batch.Messages() {
			out = append(out, m.Data())
			m.Ack()
		}
		if len(out) == 0 {
			time.Sleep(time.Millisecond)
		}
		return out, batch.Error()
	}
}

func (p *natsPair) close() {
	if p.sub != nil {
		p.sub.Unsubscribe()
	}
	p.snd.Close()
	if p.rcv != p.snd {
		p.rcv.Close()
	}
}

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil
}

// stamp puts the send time in the first 8 bytes of a payload.
func stamp(b []byte) { binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano())) }

func latencyOf(b []byte) time.Duration {
	if len(b) < 8 {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(b)))
}

// newSender makes a sending connection for a subject. For JetStream the
// stream already exists (the receiver made it).
func (s *natsServer) newSender(ctx context.Context, mode, subject string) (pair, error) {
	nc, err := s.connect()
	if err != nil {
		return nil, err
	}
	p := &natsPair{snd: nc, rcv: nc, subject: subject, mode: mode}
	if mode == modeDurable {
		if p.js, err = jetstream.New(nc); err != nil {
			return nil, err
		}
	}
	return p, nil
}
