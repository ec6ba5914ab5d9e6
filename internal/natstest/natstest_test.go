package natstest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestClusterReplicatesAndSurvivesAKill starts three real nats-server
// processes, writes to an R3 stream, kills one node with SIGKILL and
// checks that the stream still takes writes and keeps every message.
func TestClusterReplicatesAndSurvivesAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := Start(t, 3)
	nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := js.Publish("t.a", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Nodes[0].Kill()
	if c.Nodes[0].Running() {
		t.Fatal("killed node still running")
	}
	for i := 10; i < 20; i++ {
		var err error
		for try := 0; try < 50; try++ {
			if _, err = js.Publish("t.a", []byte(fmt.Sprint(i))); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("publish %d after a node was killed: %v", i, err)
		}
	}
	info, err := js.StreamInfo("T")
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 20 {
		t.Fatalf("stream holds %d messages, want 20", info.State.Msgs)
	}
	c.Nodes[0].Restart()
	c.WaitReady(t, 60*time.Second)
}

// TestOperatorModeAndClientCerts: with Operator and ClientCerts the
// servers accept only a client presenting the CA's client certificate
// and the credentials of a user of the preloaded account (whose
// JetStream answers); another account's user, no credentials, or no
// client certificate are refused.
func TestOperatorModeAndClientCerts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	c := StartWith(t, 1, Options{TLS: true, ClientCerts: true, Operator: true})
	url := c.Nodes[0].URL
	if err := jetStreamAnswers(url, nil, c.CAFile, c.ClientCertFile, c.ClientKeyFile, c.CredsFile, 0); err != nil {
		t.Fatalf("the account's user with the client certificate: %v", err)
	}
	for name, err := range map[string]error{
		"another account's user": jetStreamAnswers(url, nil, c.CAFile, c.ClientCertFile, c.ClientKeyFile, c.OtherCredsFile, 0),
		"no credentials":         jetStreamAnswers(url, nil, c.CAFile, c.ClientCertFile, c.ClientKeyFile, "", 0),
		"no client certificate":  jetStreamAnswers(url, nil, c.CAFile, "", "", c.CredsFile, 0),
	} {
		if err == nil {
			t.Errorf("%s: connected", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
