package relay

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMemoryMailboxesModel drives MemoryMailboxes with random Push, Take,
// Ack, Release and Pop calls and checks every answer against a plain
// model: messages in sequence order, each queued, held, released or gone;
// Take and Pop hand out the oldest message neither held nor gone; counts,
// backlog and bytes follow.
func TestMemoryMailboxesModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { modelRun(t, seed) })
	}
	// And with compactions at almost every acknowledgement.
	defer func(n int) { compactAfter = n }(compactAfter)
	compactAfter = 2
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("compacting-", seed), func(t *testing.T) { modelRun(t, seed) })
	}
}

type modelMsg struct {
	seq         uint64
	data        string
	state       uint8 // entQueued, entHeld, entReleased, entAcked
	redelivered bool
}

func modelRun(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	mm := NewMemoryMailboxes(Limits{MaxMessages: 200, MaxBytes: 1 << 20})
	if err := mm.Create("b"); err != nil {
		t.Fatal(err)
	}
	var model []modelMsg
	var first uint64
	oldest := func() int { // index of the message Take must hand out
		for i, m := range model {
			if m.state == entQueued || m.state == entReleased {
				return i
			}
		}
		return -1
	}
	held := func() []uint64 {
		var h []uint64
		for _, m := range model {
			if m.state == entHeld {
				h = append(h, m.seq)
			}
		}
		return h
	}
	for step := range 3000 {
		switch op := r.IntN(10); {
		case op < 3: // push
			data := fmt.Sprint("m", step)
			err := mm.Push("b", Message{From: "a", Data: []byte(data)})
			live := 0
			for _, m := range model {
				if m.state != entAcked {
					live++
				}
			}
			if live >= 200 {
				if err != ErrMailboxFull {
					t.Fatalf("step %d: push into a full mailbox: %v", step, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d: push: %v", step, err)
			}
			model = append(model, modelMsg{data: data})
		case op < 5: // take up to 3
			n := 1 + r.IntN(3)
			ds, err := mm.TakeN("b", n, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < n; k++ {
				i := oldest()
				if i < 0 {
					if k < len(ds) {
						t.Fatalf("step %d: took %q, the model has nothing", step, ds[k].Data)
					}
					break
				}
				if k >= len(ds) {
					t.Fatalf("step %d: took %d, the model has more", step, len(ds))
				}
				d := ds[k]
				if string(d.Data) != model[i].data || d.Redelivered != model[i].redelivered {
					t.Fatalf("step %d: took %q (redelivered %v), want %q (%v)", step, d.Data, d.Redelivered, model[i].data, model[i].redelivered)
				}
				if model[i].seq == 0 {
					model[i].seq = d.Seq
				} else if model[i].seq != d.Seq {
					t.Fatalf("step %d: %q came back with delivery id %d, first %d", step, d.Data, d.Seq, model[i].seq)
				}
				model[i].state = entHeld
			}
		case op < 7: // ack some held ids, and one that is not held
			h := held()
			var seqs []uint64
			for _, s := range h {
				if r.IntN(2) == 0 {
					seqs = append(seqs, s)
				}
			}
			seqs = append(seqs, first+uint64(r.IntN(5000)))
			want := 0
			for i := range model {
				if model[i].state == entHeld && slices.Contains(seqs, model[i].seq) {
					model[i].state = entAcked
					want++
				}
			}
			if n, err := mm.AckN("b", seqs); err != nil || n != want {
				t.Fatalf("step %d: acked %d (%v), want %d", step, n, err, want)
			}
		case op < 8: // release one held
			h := held()
			if len(h) == 0 {
				continue
			}
			s := h[r.IntN(len(h))]
			if err := mm.Release("b", s); err != nil {
				t.Fatal(err)
			}
			for i := range model {
				if model[i].seq == s {
					model[i].state, model[i].redelivered = entReleased, true
				}
			}
		default: // pop
			m, ok, err := mm.Pop("b")
			if err != nil {
				t.Fatal(err)
			}
			i := oldest()
			if (i >= 0) != ok {
				t.Fatalf("step %d: pop ok %v, model has one: %v", step, ok, i >= 0)
			}
			if ok {
				if string(m.Data) != model[i].data {
					t.Fatalf("step %d: popped %q, want %q", step, m.Data, model[i].data)
				}
				model[i].state = entAcked
			}
		}
		if first == 0 && len(model) > 0 && model[0].seq != 0 {
			first = model[0].seq
		}
		// Forget what is gone at the front, as the mailbox may.
		for len(model) > 0 && model[0].state == entAcked {
			model = model[1:]
		}
		var live, backlog int
		var bytes int64
		for _, m := range model {
			if m.state != entAcked {
				live++
				bytes += int64(len(m.data))
			}
			if m.state == entQueued || m.state == entReleased {
				backlog++
			}
		}
		if n, by := mm.Depth("b"); n != live || by != bytes {
			t.Fatalf("step %d: depth %d messages %d bytes, want %d, %d", step, n, by, live, bytes)
		}
		if n := mm.Backlog("b"); n != backlog {
			t.Fatalf("step %d: backlog %d, want %d", step, n, backlog)
		}
		if tot := mm.total.Load(); tot != bytes {
			t.Fatalf("step %d: total %d bytes, want %d", step, tot, bytes)
		}
	}
}
