package metrics

import (
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
	fams, err := reg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "relay_nacks_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "reason" {
					counts[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	if len(counts) != len(relay.Reasons()) {
		t.Fatalf("%d relay_nacks_total reason values for %d reasons: %v", len(counts), len(relay.Reasons()), counts)
	}
	for _, r := range relay.Reasons() {
		if counts[r.Label()] != 1 {
			t.Errorf("reason %q counted %v times", r.Label(), counts[r.Label()])
		}
	}
}
