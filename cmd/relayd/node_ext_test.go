package main

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestNodeClientExtension: the JavaScript client, written from
// docs/PROTOCOL.md alone, goes on after its seed steps with section 8:
// HELLO, SUBSCRIBE, SEND_ID twice (one delivery), the DELIVER pushed to
// it, ACK, and a refused FETCH while subscribed.
func TestNodeClientExtension(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	tmp := t.TempDir()
	enclavectl := filepath.Join(tmp, "enclavectl")
	if b, err := exec.Command("go", "build", "-o", enclavectl, "../enclavectl").CombinedOutput(); err != nil {
		t.Fatalf("building enclavectl: %v\n%s", err, b)
	}
	sim := filepath.Join(tmp, "sim")
	addr, _, stop := startRun(t, "--simulation", "--sim-dir", sim, "--listen", "127.0.0.1:0")
	defer stop()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(node, "../../testdata/interop/relay-client.js", host, port, sim, enclavectl, "ext").Output()
	if err != nil {
		t.Fatalf("node client: %v", err)
	}
	var res struct {
		Error string `json:"error"`
		Ext   struct {
			Features uint32 `json:"features"`
			Steps    []struct {
				Name    string `json:"name"`
				Type    int    `json:"type"`
				Payload string `json:"payload"`
			} `json:"steps"`
			Deliveries []struct {
				ID    string `json:"id"`
				Flags int    `json:"flags"`
				MsgID string `json:"msgid"`
				From  string `json:"from"`
				Data  string `json:"data"`
			} `json:"deliveries"`
		} `json:"ext"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if res.Error != "" {
		t.Fatalf("node client failed: %s", res.Error)
	}
	if res.Ext.Features != 3 {
		t.Errorf("features granted to node: %d", res.Ext.Features)
	}
	want := []struct {
		typ     int
		payload string // hex; "" for any
	}{{0x90, ""}, {0x92, ""}, {0x82, ""}, {0x82, ""}, {0x97, ""}, {0x94, "0000000100000000"},
		{0xE4, hex.EncodeToString([]byte("fetch while subscribed: deliveries go to the subscription"))}}
	if len(res.Ext.Steps) != len(want) {
		t.Fatalf("steps %+v", res.Ext.Steps)
	}
	for i, w := range want {
		s := res.Ext.Steps[i]
		if s.Type != w.typ || (w.payload != "" && s.Payload != w.payload) {
			t.Errorf("%s: answer 0x%02X %s, want 0x%02X %s", s.Name, s.Type, s.Payload, w.typ, w.payload)
		}
	}
	if d := res.Ext.Deliveries; len(d) != 1 || d[0].MsgID != "n1" || d[0].From != "node-client" || d[0].Data != "pushed to node" || d[0].Flags != 0 {
		t.Errorf("deliveries to node: %+v (want one: the duplicate send is dropped)", d)
	}
}
