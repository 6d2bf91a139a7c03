package bul

import (
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/proto"
)

func health(states map[uint16]liveness.State) []liveness.Health {
	var out []liveness.Health
	for bid, st := range states {
		out = append(out, liveness.Health{BID: bid, State: st, RTT: 300 * time.Microsecond, Loss: 0.25})
	}
	return out
}

// A dead path's binding is withdrawn through a live care-of address (not
// from its own, whose path is dead), shows as down while it is, and is
// registered again from its own address once alive.
func TestDeadPathWithdrawnAndBack(t *testing.T) {
	for _, mode := range []Mode{ModeBulk, ModeIndividual} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Mode = mode })
			registerAll(h)
			h.c.setHealth(health(map[uint16]liveness.State{1: liveness.Dead, 2: liveness.Alive, 3: liveness.Alive}), h.now())
			s := h.one()
			checkBU(t, s, coa2, 0)
			wantBIDs(t, s, proto.BID{ID: 1})
			if s.p.MH.Options.AltCoA != coa1 || s.ifindex != wlan.Ifindex {
				t.Fatalf("removal %v on ifindex %d: want the Alternate CoA %v, sent out of wlan0", s, s.ifindex, coa1)
			}
			h.wantState(1, StateDeregistering)
			h.accept(s)
			e := h.mustEntry(1)
			if e.State != StateDown || e.Liveness != liveness.Dead || e.CoA != coa1 || e.Interface != "eth0" || e.Loss != 0.25 {
				t.Fatalf("withdrawn BID 1: %+v, want down, dead, its CoA and interface", e)
			}
			var down bool
			for _, ev := range h.events {
				if ev.Type == EventBinding && ev.Binding.BID == 1 && ev.Binding.State == StateDown {
					down = true
				}
			}
			if !down {
				t.Errorf("no event for the withdrawn binding: %+v", h.events)
			}
			// Refreshes go out from a live CoA and leave BID 1 out.
			h.advance(6 * time.Minute)
			for _, s := range h.take() {
				if s.p.Src == coa1 {
					t.Errorf("BU from the dead path's CoA: %v", s)
				}
				for _, b := range s.p.MH.Options.BIDs {
					if b.ID == 1 {
						t.Errorf("BID 1 in a BU while its path is dead: %v", s)
					}
				}
				h.accept(s)
			}
			// Alive again: registered from its own address.
			h.c.setHealth(health(map[uint16]liveness.State{1: liveness.Alive, 2: liveness.Alive, 3: liveness.Alive}), h.now())
			s = h.one()
			checkBU(t, s, coa1, life420)
			h.accept(s)
			h.wantState(1, StateRegistered)
			if e := h.mustEntry(1); e.Liveness != liveness.Alive {
				t.Errorf("liveness %q, want alive", e.Liveness)
			}
		})
	}
}

// With every other path dead too, nothing better exists: what is
// registered stays (the home agent may still reach one of them).
func TestAllPathsDeadKeepBindings(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	h.c.setHealth(health(map[uint16]liveness.State{1: liveness.Dead, 2: liveness.Dead, 3: liveness.Dead}), h.now())
	h.none()
	for _, b := range []uint16{1, 2, 3} {
		if e := h.mustEntry(b); e.State != StateRegistered || e.Liveness != liveness.Dead {
			t.Errorf("BID %d: %s/%s, want registered/dead", b, e.State, e.Liveness)
		}
	}
	// One comes back: the others are withdrawn through it.
	h.c.setHealth(health(map[uint16]liveness.State{1: liveness.Dead, 2: liveness.Dead, 3: liveness.Alive}), h.now())
	s := h.one()
	checkBU(t, s, coa3, 0)
	wantBIDs(t, s, proto.BID{ID: 1, C: true, CoA: coa1}, proto.BID{ID: 2, C: true, CoA: coa2})
}

// Suspect and unknown paths keep their bindings; a liveness change is
// reported on the entry.
func TestSuspectKeepsBinding(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	h.events = nil
	h.c.setHealth(health(map[uint16]liveness.State{1: liveness.Suspect, 2: liveness.Unknown}), h.now())
	h.none()
	h.wantState(1, StateRegistered)
	if len(h.events) != 2 {
		t.Errorf("events %+v, want one per changed liveness", h.events)
	}
}

// Refresh re-registers every binding at once, without lifting an
// administrative de-registration.
func TestRefreshAfterHomeAgentLoss(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	if err := h.c.deregister([]uint16{3}, h.now()); err != nil {
		t.Fatal(err)
	}
	h.accept(h.one())
	h.c.refresh(h.now())
	s := h.one()
	checkBU(t, s, coa1, life420)
	wantBIDs(t, s, proto.BID{ID: 1, PrioStatus: 30, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa2})
	if h.c.status().Counters.Refreshes != 1 {
		t.Errorf("refreshes not counted")
	}
}

// A BU already in flight when the home agent is found without the bindings
// goes again at once, its back-off from the start.
func TestRefreshRestartsBackoff(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	h.c.refresh(h.now())
	first := h.one()
	h.advance(time.Second) // unanswered: the home agent is down
	h.one()
	h.advance(1500 * time.Millisecond)
	h.none() // the next retransmission is 2 s after the last
	h.c.refresh(h.now())
	s := h.one()
	if s.p.MH.Sequence == first.p.MH.Sequence {
		t.Fatal("the restarted BU reuses a sequence number")
	}
	h.advance(999 * time.Millisecond)
	h.none()
	h.advance(time.Millisecond)
	h.accept(h.one())
	h.wantState(1, StateRegistered)
}

// register BID... lifts the de-registration of those BIDs only.
func TestRegisterBIDs(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	if err := h.c.deregister([]uint16{2, 3}, h.now()); err != nil {
		t.Fatal(err)
	}
	h.accept(h.one())
	h.wantNoEntry(2)
	h.wantNoEntry(3)
	if err := h.c.registerBIDs([]uint16{9}, h.now()); err == nil {
		t.Fatal("unknown BID 9 accepted")
	}
	h.none()
	if err := h.c.registerBIDs([]uint16{3}, h.now()); err != nil {
		t.Fatal(err)
	}
	s := h.one()
	wantBIDs(t, s, proto.BID{ID: 3, PrioStatus: 10, C: true, CoA: coa3})
	h.accept(s)
	h.wantState(3, StateRegistered)
	h.wantNoEntry(2)
}
