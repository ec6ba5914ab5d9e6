package metrics

import (
	"reflect"
	"testing"

	"github.com/sharedenclave/sharedenclave/relay"
	"github.com/sharedenclave/sharedenclave/wire"
)

// TestEveryNackReasonHasItsOwnSeries: the reason label comes from
// relay.Reason, one value per reason, none folded together.
func TestEveryNackReasonHasItsOwnSeries(t *testing.T) {
	reg := New("relayd", true)
	m := reg.NewRelay(nil)
	for _, r := range relay.Reasons() {
		m.Nack(wire.SendNack, r)
	}
	counts := counts(t, reg, "relay_nacks_total", "reason")
	if len(counts) != len(relay.Reasons()) {
		t.Fatalf("%d relay_nacks_total reason values for %d reasons: %v", len(counts), len(relay.Reasons()), counts)
	}
	for _, r := range relay.Reasons() {
		if counts[r.Label()] != 1 {
			t.Errorf("reason %q counted %v times", r.Label(), counts[r.Label()])
		}
	}
}

// The relay counts every frame it reads, every DELIVER it writes and
// every NACK: per message, on its hottest path.
func BenchmarkRelayFrameMetrics(b *testing.B) {
	m := New("relayd", true).NewRelay(nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Frame(wire.SendData)
			m.Pushed(false)
			m.Nack(wire.SendNack, relay.ReasonMailboxFull)
		}
	})
}

// counts gathers metric name's series into label value → count, keyed by
// the value of label.
func counts(t *testing.T, reg *Registry, name, label string) map[string]float64 {
	t.Helper()
	fams, err := reg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestFrameAndPushedCounts: the cached counters count under the same
// labels as a lookup by label values would, unknown frame types folded
// into one, and a series appears only once something was counted.
func TestFrameAndPushedCounts(t *testing.T) {
	reg := New("relayd", true)
	m := reg.NewRelay(nil)
	if got := counts(t, reg, "relay_pushed_total", "redelivered"); len(got) != 0 {
		t.Fatalf("pushed series before anything was pushed: %v", got)
	}
	want := map[string]float64{}
	for i := range 256 {
		ty := wire.Type(i)
		name := ty.String()
		if !ty.Known() && !ty.Extension() {
			name = "UNKNOWN"
		}
		for range 2 {
			m.Frame(ty)
			want[name]++
		}
	}
	got := counts(t, reg, "relay_frames_total", "type")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("relay_frames_total by type:\n got %v\nwant %v", got, want)
	}
	m.Pushed(true)
	m.Pushed(false)
	m.Pushed(true)
	if got := counts(t, reg, "relay_pushed_total", "redelivered"); got["true"] != 2 || got["false"] != 1 || len(got) != 2 {
		t.Fatalf("relay_pushed_total by redelivered: %v", got)
	}
}
