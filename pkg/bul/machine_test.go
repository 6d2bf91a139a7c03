package bul

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

func individual(c *Config)  { c.Mode = ModeIndividual }
func keepForeign(c *Config) { c.ReturnHome = KeepForeign }

// registerAll brings eth0, wlan0 and wwan0 to registered and clears the log.
func registerAll(h *harness) {
	h.t.Helper()
	h.set(eth0, wlan, wwan)
	for _, s := range h.take() {
		h.accept(s)
	}
	if h.c.mode == ModeBulk {
		h.none()
	}
	// Individual mode is rate-limited to three BUs per second: all three fit.
	for _, bid := range []uint16{1, 2, 3} {
		h.wantState(bid, StateRegistered)
	}
	// Let the MAX_UPDATE_RATE window pass.
	h.advance(time.Second)
	h.none()
	h.events = nil
}

func TestBulkRegistration(t *testing.T) {
	h := newHarness(t)
	h.set(eth0, wlan, wwan)
	s := h.one()
	// From the highest-priority CoA, one C-flag sub-option per binding.
	checkBU(t, s, coa1, life420)
	wantBIDs(t, s,
		proto.BID{ID: 1, PrioStatus: 30, C: true, CoA: coa1},
		proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa2},
		proto.BID{ID: 3, PrioStatus: 10, C: true, CoA: coa3})
	if s.ifindex != 11 {
		t.Errorf("sent on ifindex %d, want eth0's 11", s.ifindex)
	}
	if s.p.MH.Sequence != 1001 {
		t.Errorf("seq %d, want 1001 (store had 1000)", s.p.MH.Sequence)
	}
	for _, bid := range []uint16{1, 2, 3} {
		h.wantState(bid, StatePending)
	}
	h.accept(s)
	for _, bid := range []uint16{1, 2, 3} {
		e := h.mustEntry(bid)
		if e.State != StateRegistered || e.Lifetime != 420 || e.ExpiresIn != 420 || e.LastStatus != 0 || e.Sequence != 1001 {
			t.Errorf("BID %d after BA: %+v", bid, e)
		}
	}
	if e := h.mustEntry(2); e.Interface != "wlan0" || e.CoA != coa2 || e.Priority != 20 || e.Role != "ha" || e.Peer != ha {
		t.Errorf("entry 2: %+v", e)
	}
	h.advance(5 * time.Minute)
	h.none()
	st := h.c.status()
	if st.Counters.BUsSent != 1 || st.Counters.BAsAccepted != 1 || st.Mode != ModeBulk {
		t.Errorf("status %+v", st)
	}
}

func TestIndividualRegistration(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0, wlan, wwan)
	sent := h.take()
	if len(sent) != 3 {
		t.Fatalf("sent %d BUs, want 3", len(sent))
	}
	for i, co := range []CareOf{eth0, wlan, wwan} {
		s := sent[i]
		checkBU(t, s, co.Addr, life420)
		// No flags for independent registration (draft 5.2).
		wantBIDs(t, s, proto.BID{ID: co.BID, PrioStatus: co.Priority})
		if s.ifindex != co.Ifindex {
			t.Errorf("BID %d sent on %d, want %d", co.BID, s.ifindex, co.Ifindex)
		}
	}
	if sent[0].p.MH.Sequence == sent[1].p.MH.Sequence {
		t.Error("two BUs share a sequence number")
	}
	h.accept(sent[1])
	h.wantState(2, StateRegistered)
	h.wantState(1, StatePending)
	h.accept(sent[0])
	h.accept(sent[2])
	h.wantState(1, StateRegistered)
	h.wantState(3, StateRegistered)
}

func TestRetransmissionBackoff(t *testing.T) {
	h := newHarness(t)
	h.set(eth0)
	var times []time.Duration
	var seqs []uint16
	for range 9 {
		for _, s := range h.take() {
			times = append(times, s.at.Sub(t0))
			seqs = append(seqs, s.p.MH.Sequence)
		}
		d := h.c.nextDeadline(h.now())
		h.advance(d.Sub(h.now()))
	}
	// First registration: InitialBindackTimeoutFirstReg 1.5 s, doubling up
	// to MAX_BINDACK_TIMEOUT 32 s.
	wantGaps := []time.Duration{1500, 3000, 6000, 12000, 24000, 32000, 32000, 32000}
	for i, g := range wantGaps {
		if got := times[i+1] - times[i]; got != g*time.Millisecond {
			t.Fatalf("gap %d = %v, want %v (times %v)", i, got, g*time.Millisecond, times)
		}
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("retransmission sequence numbers %v: each must be new", seqs)
		}
	}
	sends := h.c.status().Counters.BUsSent
	e := h.mustEntry(1)
	if uint64(e.Retransmits) != sends-1 || e.State != StatePending {
		t.Errorf("entry %+v after %d sends", e, sends)
	}
	if got := h.c.status().Counters.Retransmissions; got != sends-1 {
		t.Errorf("retransmissions counter %d after %d sends", got, sends)
	}
	// A BA to an earlier transmission of the same BU still counts.
	last := sent{p: proto.Packet{Src: coa1}}
	last.p.MH.Sequence = seqs[len(seqs)-2]
	last.p.MH.Options.BIDs = []proto.BID{{ID: 1, C: true, CoA: coa1, PrioStatus: 30}}
	h.deliver(ba(last, 0, life420, echo(last, 0)...))
	h.wantState(1, StateRegistered)
}

func TestLaterRegistrationUsesOneSecond(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0)
	h.accept(h.one())
	h.set(eth0, wlan)
	s := h.one()
	wantBIDs(t, s, proto.BID{ID: 2, PrioStatus: 20})
	h.advance(999 * time.Millisecond)
	h.none()
	h.advance(time.Millisecond)
	if r := h.one(); r.p.MH.Sequence == s.p.MH.Sequence {
		t.Fatal("retransmission reused the sequence number")
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, individual)
	cos := []CareOf{eth0, wlan, wwan,
		{BID: 4, Iface: "eth1", Ifindex: 14, Addr: coa4, Priority: 5},
		{BID: 5, Iface: "eth2", Ifindex: 15, Addr: coa5, Priority: 1}}
	h.set(cos...)
	if n := len(h.take()); n != 3 {
		t.Fatalf("sent %d BUs at once, want MAX_UPDATE_RATE 3", n)
	}
	h.advance(999 * time.Millisecond)
	h.none()
	h.advance(time.Millisecond)
	got := h.take()
	if len(got) != 2 {
		t.Fatalf("sent %d BUs after one second, want the 2 queued", len(got))
	}
	wantBIDs(t, got[0], proto.BID{ID: 4, PrioStatus: 5})
	wantBIDs(t, got[1], proto.BID{ID: 5, PrioStatus: 1})
	// A burst of changes never exceeds three per second either.
	for range 10 {
		h.advance(100 * time.Millisecond)
	}
	var times []time.Time
	for _, s := range h.tr.sent {
		times = append(times, s.at)
	}
	for i := 3; i < len(times); i++ {
		if times[i].Sub(times[i-3]) < time.Second {
			t.Fatalf("four BUs within a second: %v", times)
		}
	}
}

func TestRefreshAndExpiry(t *testing.T) {
	h := newHarness(t)
	h.set(eth0, wlan)
	s := h.one()
	// The HA grants 200 s only.
	h.deliver(ba(s, 0, 50, echo(s, 0)...))
	if e := h.mustEntry(1); e.Lifetime != 200 {
		t.Fatalf("granted lifetime %d, want 200", e.Lifetime)
	}
	h.advance(159 * time.Second)
	h.none()
	h.advance(time.Second) // 80% of 200 s
	r := h.one()
	checkBU(t, r, coa1, life420)
	if len(r.p.MH.Options.BIDs) != 2 {
		t.Fatalf("bulk refresh does not carry both bindings: %v", r)
	}
	h.wantState(1, StateRefreshing)
	// No BA: retransmissions until the binding expires at 200 s.
	h.advance(40 * time.Second)
	if e := h.mustEntry(1); e.State != StatePending || e.LastError == "" {
		t.Fatalf("after expiry: %+v", e)
	}
	sent := h.take()
	if len(sent) == 0 {
		t.Fatal("no retransmissions")
	}
	h.accept(sent[len(sent)-1])
	h.wantState(1, StateRegistered)
}

func TestBulkRefreshAligns(t *testing.T) {
	h := newHarness(t)
	h.set(eth0)
	h.accept(h.one())
	h.advance(100 * time.Second)
	h.set(eth0, wlan)
	s := h.one()
	wantBIDs(t, s, proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa2})
	h.accept(s)
	// BID 1's refresh is due at 336 s: the bulk BU refreshes BID 2 as well,
	// so that from then on one BU keeps both.
	h.advance(236 * time.Second)
	r := h.one()
	wantBIDs(t, r,
		proto.BID{ID: 1, PrioStatus: 30, C: true, CoA: coa1},
		proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa2})
	h.accept(r)
	if a, b := h.mustEntry(1), h.mustEntry(2); a.ExpiresIn != b.ExpiresIn {
		t.Fatalf("lifetimes not aligned: %d and %d", a.ExpiresIn, b.ExpiresIn)
	}
	h.advance(335 * time.Second)
	h.none()
	h.advance(time.Second)
	if r := h.one(); len(r.p.MH.Options.BIDs) != 2 {
		t.Fatalf("%v", r)
	}
}

func TestRefreshAdvice(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0)
	s := h.one()
	p := ba(s, 0, life420, echo(s, 0)...)
	p.MH.Options.HasRefreshAdvice, p.MH.Options.RefreshInterval = true, 15 // 60 s
	h.deliver(p)
	h.advance(59 * time.Second)
	h.none()
	h.advance(time.Second)
	wantBIDs(t, h.one(), proto.BID{ID: 1, PrioStatus: 30})
}

func TestPriorityChange(t *testing.T) {
	for _, mode := range []Mode{ModeBulk, ModeIndividual} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Mode = mode })
			registerAll(h)
			// The watcher raises wlan0 above eth0.
			w := wlan
			w.Priority = 50
			h.set(eth0, w, wwan)
			s := h.one()
			if mode == ModeBulk {
				// Only the changed binding; sent from the new best CoA.
				checkBU(t, s, coa2, life420)
				wantBIDs(t, s, proto.BID{ID: 2, PrioStatus: 50, C: true, CoA: coa2})
			} else {
				checkBU(t, s, coa2, life420)
				wantBIDs(t, s, proto.BID{ID: 2, PrioStatus: 50})
			}
			h.wantState(2, StateRefreshing)
			h.accept(s)
			if e := h.mustEntry(2); e.Priority != 50 || e.State != StateRegistered {
				t.Fatalf("entry %+v", e)
			}
			// A change that leaves the best CoA alone re-registers too.
			ww := wwan
			ww.Priority = 40
			h.set(eth0, w, ww)
			if got := h.one().p.MH.Options.BIDs; len(got) != 1 || got[0].ID != 3 || got[0].PrioStatus != 40 {
				t.Fatalf("BIDs %v", got)
			}
		})
	}
}

func TestCoAVanishesAltCoA(t *testing.T) {
	for _, mode := range []Mode{ModeBulk, ModeIndividual} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Mode = mode })
			registerAll(h)
			h.set(eth0, wlan) // wwan0 lost its link
			s := h.one()
			// Through the best remaining CoA, with the Alternate CoA
			// option naming the lost one, and its BID (draft 5.6).
			checkBU(t, s, coa1, 0)
			wantBIDs(t, s, proto.BID{ID: 3})
			if s.p.MH.Options.AltCoA != coa3 {
				t.Fatalf("AltCoA %v, want %v", s.p.MH.Options.AltCoA, coa3)
			}
			h.wantState(3, StateDeregistering)
			h.accept(s)
			h.wantNoEntry(3)
			h.wantState(1, StateRegistered)
			h.wantState(2, StateRegistered)
			found := false
			for _, ev := range h.events {
				if ev.Type == EventRemoved && ev.Binding.BID == 3 {
					found = true
				}
			}
			if !found {
				t.Errorf("no removal event: %+v", h.events)
			}
		})
	}
}

func TestRemovalGivesUpAtExpiry(t *testing.T) {
	h := newHarness(t)
	registerAll(h) // acknowledged at t0: the bindings live until t0+420 s
	h.set(eth0, wlan)
	if s := h.one(); s.p.MH.Options.AltCoA != coa3 {
		t.Fatalf("%v", s)
	}
	// The HA never answers: retransmitted until the binding has expired
	// there anyway, then forgotten.
	h.advance(418 * time.Second)
	if len(h.take()) == 0 {
		t.Fatal("no retransmissions")
	}
	h.wantState(3, StateDeregistering)
	h.advance(2 * time.Second)
	h.take()
	h.wantNoEntry(3)
	// (The unanswered refresh of the other two goes on.)
	h.advance(2 * time.Minute)
	for _, s := range h.take() {
		for _, b := range s.p.MH.Options.BIDs {
			if b.ID == 3 {
				t.Fatalf("BID 3 still signalled: %v", s)
			}
		}
	}
}

func TestBulkUpdateWithRemoval(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	w := wlan
	w.Addr = coa4 // wlan0 moved
	h.set(eth0, w)
	s := h.one()
	checkBU(t, s, coa1, life420)
	// The moved binding is updated; the lost one is removed with R (5.3).
	wantBIDs(t, s,
		proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa4},
		proto.BID{ID: 3, C: true, R: true, CoA: coa3})
	h.accept(s)
	if e := h.mustEntry(2); e.CoA != coa4 || e.State != StateRegistered {
		t.Fatalf("entry 2 %+v", e)
	}
	h.wantNoEntry(3)
}

func TestBulkRemoveSeveral(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	h.set(eth0)
	s := h.one()
	// Lifetime 0 and C-flag sub-options: all listed bindings go (5.4).
	checkBU(t, s, coa1, 0)
	wantBIDs(t, s,
		proto.BID{ID: 2, C: true, CoA: coa2},
		proto.BID{ID: 3, C: true, CoA: coa3})
	h.accept(s)
	if got := h.bids(); !slices.Equal(got, []uint16{1}) {
		t.Fatalf("BUL %v", got)
	}
}

func TestNoCareOfLeft(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	h.set()
	h.none() // nothing to send from
	for _, bid := range []uint16{1, 2, 3} {
		h.wantState(bid, StateDeregistering)
	}
	if !h.c.status().NoCareOf {
		t.Error("status does not say there is no care-of address")
	}
	// The link comes back with the same address: nothing to tell the HA.
	h.set(eth0, wlan, wwan)
	h.none()
	h.wantState(1, StateRegistered)
	// Gone for good: the bindings expire at the HA and leave the list.
	h.set()
	h.advance(421 * time.Second)
	h.none()
	if got := h.bids(); len(got) != 0 {
		t.Fatalf("BUL still holds %v after the lifetime", got)
	}
}

func TestNoCareOfThenAnother(t *testing.T) {
	h := newHarness(t, individual)
	registerAll(h)
	h.set()
	h.none()
	h.advance(10 * time.Second)
	h.none()
	// A new link: its registration, and the old bindings' de-registration
	// through it.
	n := CareOf{BID: 4, Iface: "eth1", Ifindex: 14, Addr: coa4, Priority: 5}
	h.set(n)
	got := h.take()
	h.advance(time.Second)
	got = append(got, h.take()...)
	seen := map[uint16]bool{}
	for _, s := range got {
		if s.p.Src != coa4 {
			t.Errorf("sent from %v: %v", s.p.Src, s)
		}
		b := s.p.MH.Options.BIDs[0]
		seen[b.ID] = true
		if b.ID == 4 {
			checkBU(t, s, coa4, life420)
		} else if s.p.MH.Options.AltCoA != map[uint16]netip.Addr{1: coa1, 2: coa2, 3: coa3}[b.ID] || s.p.MH.Lifetime != 0 {
			t.Errorf("de-registration without the right AltCoA: %v", s)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("within a second sent %v", got)
	}
}

func TestDeregisterCommands(t *testing.T) {
	h := newHarness(t, individual)
	registerAll(h)
	if err := h.c.deregister([]uint16{7}, h.now()); !errors.Is(err, ErrUnknownBID) {
		t.Fatalf("deregister unknown BID: %v", err)
	}
	h.none()
	if err := h.c.deregister([]uint16{2}, h.now()); err != nil {
		t.Fatal(err)
	}
	s := h.one()
	// The CoA is still there: from it, lifetime 0, BID without C (5.4).
	checkBU(t, s, coa2, 0)
	wantBIDs(t, s, proto.BID{ID: 2})
	if s.p.MH.Options.AltCoA.IsValid() {
		t.Errorf("AltCoA on a de-registration from the CoA itself: %v", s)
	}
	h.accept(s)
	h.wantNoEntry(2)
	h.advance(time.Minute)
	h.none() // stays de-registered although the CoA is there

	h.c.register(h.now())
	got := h.take()
	if len(got) != 3 {
		t.Fatalf("Register sent %v, want all three", got)
	}
	for _, s := range got {
		h.accept(s)
	}
	h.wantState(2, StateRegistered)

	h.advance(time.Second) // MAX_UPDATE_RATE
	h.c.deregisterAll(h.now())
	s = h.one()
	checkBU(t, s, coa1, 0)
	if len(s.p.MH.Options.BIDs) != 0 {
		t.Fatalf("de-register all carries BIDs: %v", s)
	}
	for _, bid := range []uint16{1, 2, 3} {
		h.wantState(bid, StateDeregistering)
	}
	h.deliver(ba(s, 0, 0))
	if got := h.bids(); len(got) != 0 {
		t.Fatalf("BUL after de-register all: %v", got)
	}
	if !h.c.status().DeregisteredAll {
		t.Error("status does not show DeregisteredAll")
	}
	h.set(eth0, wlan) // changes do not register while de-registered
	h.advance(10 * time.Minute)
	h.none()
}

func TestBAValidation(t *testing.T) {
	type mut func(p *proto.Packet)
	cases := []struct {
		name   string
		mut    mut
		reason string
	}{
		{"wrong source", func(p *proto.Packet) { p.Src = netip.MustParseAddr("2001:db8:aaaa::99") }, IgnoreWrongSource},
		{"routing header not the HoA", func(p *proto.Packet) { p.RoutingHome = coa2 }, IgnoreWrongDest},
		{"to another CoA", func(p *proto.Packet) { p.Dst = coa2 }, IgnoreWrongDest},
		{"to the CoA without routing header", func(p *proto.Packet) { p.RoutingHome = netip.Addr{} }, IgnoreWrongDest},
		{"unknown sequence", func(p *proto.Packet) { p.MH.Sequence += 7 }, IgnoreUnknownSeq},
		{"unknown BID", func(p *proto.Packet) { p.MH.Options.BIDs = append(p.MH.Options.BIDs, proto.BID{ID: 9}) }, IgnoreUnknownBID},
		{"malformed BID", func(p *proto.Packet) { p.MH.Options.BIDs[0].Err = proto.ErrBIDZero }, IgnoreMalformedBID},
		{"bad authenticator", func(p *proto.Packet) { p.MH.Options.MNHASPI = 2 }, IgnoreAuth},
		{"no authenticator", func(p *proto.Packet) { p.MH.Options.HasMNHAAuth = false }, IgnoreAuth},
		{"not a BA", func(p *proto.Packet) { p.MH.Type = proto.TypeHoT }, IgnoreUnexpected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Auth = &fakeAuth{spi: 1} })
			h.set(eth0, wlan)
			s := h.one()
			if !s.signed || !s.p.MH.Options.HasMNHAAuth || s.p.MH.Options.MNHASPI != 1 {
				t.Fatalf("BU not authenticated: %+v", s)
			}
			good := func() *proto.Packet {
				p := ba(s, 0, life420, echo(s, 0)...)
				p.MH.Options.HasMNHAAuth, p.MH.Options.MNHASPI = true, 1
				return p
			}
			bad := good()
			tc.mut(bad)
			h.deliver(bad)
			h.wantState(1, StatePending)
			st := h.c.status()
			if st.Counters.BAsIgnored[tc.reason] != 1 || st.Counters.BAsAccepted != 0 {
				t.Fatalf("counters %+v, want one %q", st.Counters, tc.reason)
			}
			// Still retransmitting, and the genuine BA still applies.
			h.advance(1500 * time.Millisecond)
			h.one()
			h.deliver(good()) // the first transmission's BA
			h.wantState(1, StateRegistered)
		})
	}
}

func TestFallbackSingleWithoutBID(t *testing.T) {
	h := newHarness(t)
	h.set(eth0, wlan, wwan)
	s := h.one()
	h.deliver(ba(s, 0, life420)) // accepted, but no BID sub-option
	st := h.c.status()
	if st.Mode != ModeSingle || st.FallbackReason == "" {
		t.Fatalf("status %+v", st)
	}
	// A plain RFC 6275 BU from the primary CoA.
	r := h.one()
	checkBU(t, r, coa1, life420)
	if len(r.p.MH.Options.BIDs) != 0 {
		t.Fatalf("single-CoA BU carries BIDs: %v", r)
	}
	if got := h.bids(); !slices.Equal(got, []uint16{0}) {
		t.Fatalf("BUL %v, want the single BID-0 binding", got)
	}
	h.deliver(ba(r, 0, life420))
	if e := h.mustEntry(0); e.State != StateRegistered || e.CoA != coa1 || e.Interface != "eth0" {
		t.Fatalf("entry %+v", e)
	}
	// The primary goes away: the next one is registered from its own CoA.
	h.set(wlan, wwan)
	r = h.one()
	checkBU(t, r, coa2, life420)
	if len(r.p.MH.Options.BIDs) != 0 || r.p.MH.Options.AltCoA.IsValid() {
		t.Fatalf("%v", r)
	}
	var modeEv bool
	for _, ev := range h.events {
		modeEv = modeEv || (ev.Type == EventMode && ev.Mode == ModeSingle)
	}
	if !modeEv {
		t.Error("no mode event")
	}
	// Register returns to the configured mode.
	h.deliver(ba(r, 0, life420))
	h.advance(time.Second) // MAX_UPDATE_RATE
	h.c.register(h.now())
	r = h.one()
	if h.c.mode != ModeBulk || len(r.p.MH.Options.BIDs) != 2 {
		t.Fatalf("after Register: mode %s, BU %v", h.c.mode, r)
	}
}

func TestStatus144(t *testing.T) {
	h := newHarness(t)
	h.set(eth0, wlan)
	s := h.one()
	h.deliver(ba(s, proto.StatusDraftMCoAConflict, life420, echo(s, 0)...))
	for _, bid := range []uint16{1, 2} {
		if e := h.mustEntry(bid); e.State != StateRegistered || e.LastStatus != 144 {
			t.Fatalf("entry %+v", e)
		}
	}
	if h.c.mode != ModeBulk {
		t.Fatalf("mode %s", h.c.mode)
	}
	// From now on every BU carries BIDs (refreshes included).
	h.advance(time.Hour)
	for _, s := range h.take() {
		if len(s.p.MH.Options.BIDs) == 0 {
			t.Fatalf("BU without BID after 144: %v", s)
		}
		h.accept(s)
	}
}

func TestStatus145(t *testing.T) {
	h := newHarness(t)
	h.set(eth0, wlan, wwan)
	s := h.one()
	bids := echo(s, 0)
	bids[1].PrioStatus = 128 // INCOMPLIANT for BID 2
	h.deliver(ba(s, proto.StatusDraftBulkRegFail, life420, bids...))
	h.wantState(1, StateRegistered)
	h.wantState(3, StateRegistered)
	if e := h.mustEntry(2); e.State != StateFailed || e.LastStatus != 128 || e.LastError == "" {
		t.Fatalf("entry 2 %+v", e)
	}
	h.none()
	h.advance(time.Second) // back-off
	r := h.one()
	// Only the failed binding is registered again.
	wantBIDs(t, r, proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa2})
	h.accept(r)
	h.wantState(2, StateRegistered)
}

func TestStatus146FallsBackToIndividual(t *testing.T) {
	h := newHarness(t)
	h.set(eth0, wlan, wwan)
	s := h.one()
	h.deliver(ba(s, proto.StatusDraftBulkRegNotSupported, 0, echo(s, 0)...))
	if st := h.c.status(); st.Mode != ModeIndividual || st.FallbackReason == "" {
		t.Fatalf("status %+v", st)
	}
	got := h.take() // the bulk BU used one of this second's three
	h.advance(time.Second)
	got = append(got, h.take()...)
	if len(got) != 3 {
		t.Fatalf("sent %v, want three individual BUs", got)
	}
	for i, co := range []CareOf{eth0, wlan, wwan} {
		checkBU(t, got[i], co.Addr, life420)
		wantBIDs(t, got[i], proto.BID{ID: co.BID, PrioStatus: co.Priority})
		h.accept(got[i])
	}
	for _, bid := range []uint16{1, 2, 3} {
		h.wantState(bid, StateRegistered)
	}
}

func TestStatus135Resync(t *testing.T) {
	h := newHarness(t)
	h.set(eth0)
	s := h.one()
	p := ba(s, proto.StatusSequenceOutOfWindow, 0, echo(s, 0)...)
	p.MH.Sequence = 40000 // the HA's last accepted number
	h.deliver(p)
	r := h.one()
	if r.p.MH.Sequence != 40001 {
		t.Fatalf("resent with seq %d, want 40001", r.p.MH.Sequence)
	}
	wantBIDs(t, r, proto.BID{ID: 1, PrioStatus: 30, C: true, CoA: coa1})
	if st := h.c.status(); st.Counters.SeqResyncs != 1 || st.Counters.Retransmissions != 0 {
		t.Fatalf("counters %+v", st.Counters)
	}
	h.accept(r)
	h.wantState(1, StateRegistered)
	// The new numbers are persisted.
	st, _ := h.store.Load()
	if got := st.Sequences[ha.String()]; proto.SeqLess(got, 40001) {
		t.Fatalf("stored sequence %d is before 40001", got)
	}
	// A 135 when nothing is in flight is ignored.
	h.deliver(p)
	if h.c.status().Counters.BAsIgnored[IgnoreUnknownSeq] != 1 {
		t.Fatal("stray 135 not ignored")
	}
	h.none()
}

func TestRejectionBackoff(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0)
	var gaps []time.Duration
	last := t0
	for i := range 8 {
		s := h.one()
		if i > 0 {
			gaps = append(gaps, s.at.Sub(last))
		}
		last = s.at
		h.deliver(ba(s, proto.StatusAdminProhibited, 0, echo(s, 129)...))
		if e := h.mustEntry(1); e.State != StateFailed || e.LastStatus != 129 {
			t.Fatalf("entry %+v", e)
		}
		h.advance(h.c.nextDeadline(h.now()).Sub(h.now()))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32}
	for i := range want {
		if gaps[i] != want[i]*time.Second {
			t.Fatalf("retry gaps %v, want %v s", gaps, want)
		}
	}
	// A success clears the failure.
	s := h.one()
	h.accept(s)
	h.wantState(1, StateRegistered)
}

func TestBRR(t *testing.T) {
	brr := func(bids ...proto.BID) *proto.Packet {
		p := &proto.Packet{Src: ha, Dst: hoa}
		p.MH.Type = proto.TypeBRR
		p.MH.Options.BIDs = bids
		return p
	}
	for _, mode := range []Mode{ModeBulk, ModeIndividual} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Mode = mode })
			registerAll(h)
			h.deliver(brr(proto.BID{ID: 2}))
			s := h.one()
			if mode == ModeBulk {
				wantBIDs(t, s, proto.BID{ID: 2, PrioStatus: 20, C: true, CoA: coa2})
			} else {
				checkBU(t, s, coa2, life420)
				wantBIDs(t, s, proto.BID{ID: 2, PrioStatus: 20})
			}
			h.accept(s)
			h.advance(time.Second)
			h.deliver(brr())
			got := h.take()
			n := 0
			for _, s := range got {
				n += len(s.p.MH.Options.BIDs)
			}
			if n != 3 {
				t.Fatalf("BRR without BID refreshed %d bindings: %v", n, got)
			}
			for _, s := range got {
				h.accept(s)
			}
			h.advance(time.Second)
			bad := brr()
			bad.Src = coa5
			h.deliver(bad)
			h.deliver(brr(proto.BID{ID: 9}))
			h.advance(time.Second)
			h.none() // ignored BRRs cause nothing
			if c := h.c.status().Counters; c.BRRs != 4 || c.BRRsIgnored != 2 {
				t.Fatalf("counters %+v", c)
			}
		})
	}
}

func TestBindingErrorStatus2(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	be := &proto.Packet{Src: ha, Dst: coa1}
	be.MH.Type = proto.TypeBE
	be.MH.Status = proto.BEUnknownType
	be.MH.BEHomeAddress = hoa
	h.deliver(be)
	if h.c.mode != ModeSingle {
		t.Fatalf("mode %s after BE status 2", h.c.mode)
	}
	s := h.one()
	checkBU(t, s, coa1, life420)
	if len(s.p.MH.Options.BIDs) != 0 {
		t.Fatalf("%v", s)
	}
	// BE status 1 from the HA: register again.
	h.deliver(ba(s, 0, life420))
	be.MH.Status = proto.BEUnknownHAO
	h.deliver(be)
	checkBU(t, h.one(), coa1, life420)
}

func TestReturnHomeAll(t *testing.T) {
	h := newHarness(t)
	registerAll(h)
	h.set(eth0Home, wlan, wwan)
	s := h.one()
	// RFC 6275 11.5.4: from the home address, no HAO, lifetime 0; no BID
	// (draft 3.3); on the home-link interface.
	checkBU(t, s, hoa, 0)
	if len(s.p.MH.Options.BIDs) != 0 || s.ifindex != eth0.Ifindex {
		t.Fatalf("%v on ifindex %d", s, s.ifindex)
	}
	st := h.c.status()
	if !st.AtHome || st.HomeAddressUsable {
		t.Fatalf("status %+v: the HA still defends the home address", st)
	}
	h.advance(1500 * time.Millisecond) // retransmitted like any BU
	r := h.one()
	checkBU(t, r, hoa, 0)
	h.deliver(ba(r, 0, 0))
	if st := h.c.status(); !st.HomeAddressUsable || st.Bindings != 0 {
		t.Fatalf("status after BA %+v", st)
	}
	usable := false
	for _, ev := range h.events {
		usable = usable || (ev.Type == EventHome && ev.HomeAddressUsable)
	}
	if !usable {
		t.Error("no home event")
	}
	// Nothing is registered while at home.
	h.advance(time.Hour)
	h.none()
	// Leaving home: register the foreign CoAs again (first registration).
	h.set(eth0, wlan, wwan)
	s = h.one()
	checkBU(t, s, coa1, life420)
	if st := h.c.status(); st.AtHome || st.HomeAddressUsable {
		t.Fatalf("status %+v", st)
	}
	h.advance(1499 * time.Millisecond)
	h.none()
	h.advance(time.Millisecond)
	h.one()
}

func TestReturnHome133Completes(t *testing.T) {
	h := newHarness(t)
	h.set(eth0Home) // started at home: the HA may hold a stale binding
	s := h.one()
	checkBU(t, s, hoa, 0)
	h.deliver(ba(s, proto.StatusNotHomeAgentForMN, 0))
	if !h.c.status().HomeAddressUsable {
		t.Fatal("133 to the home de-registration: the HA holds nothing, the HoA is usable")
	}
}

func TestReturnHomeKeepForeign(t *testing.T) {
	h := newHarness(t, keepForeign)
	registerAll(h)
	h.set(eth0Home, wlan, wwan)
	s := h.one()
	// Only the home-link binding goes, through a foreign CoA (5.5, 5.6).
	checkBU(t, s, coa2, 0)
	wantBIDs(t, s, proto.BID{ID: 1})
	if s.p.MH.Options.AltCoA != coa1 {
		t.Fatalf("AltCoA %v, want %v", s.p.MH.Options.AltCoA, coa1)
	}
	st := h.c.status()
	if st.AtHome || st.HomeAddressUsable || st.HomeLinkInterface != "eth0" {
		t.Fatalf("status %+v", st)
	}
	h.accept(s)
	h.wantNoEntry(1)
	h.wantState(2, StateRegistered)
	h.wantState(3, StateRegistered)
	h.advance(time.Minute)
	h.none()
	// With no foreign CoA left, keeping foreign bindings is impossible:
	// return home.
	h.set(eth0Home)
	s = h.one()
	checkBU(t, s, hoa, 0)
	if len(s.p.MH.Options.BIDs) != 0 {
		t.Fatalf("%v", s)
	}
}

func TestSequencePersistence(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0)
	s := h.one()
	st, _ := h.store.Load()
	res := st.Sequences[ha.String()]
	if !proto.SeqLess(s.p.MH.Sequence, res) {
		t.Fatalf("stored %d, not after the sequence in use %d", res, s.p.MH.Sequence)
	}
	saves := h.store.Saves
	h.accept(s)
	// Many BUs: the store is written once per window, not per BU.
	for range 200 {
		h.c.register(h.now())
		s := h.one()
		if s.p.MH.Sequence != h.c.seq {
			t.Fatal("sequence mismatch")
		}
		h.accept(s)
		h.advance(500 * time.Millisecond)
	}
	n := h.store.Saves - saves
	if n == 0 || n > 10 {
		t.Fatalf("%d saves for %d BUs", n, h.c.counters.BUsSent)
	}
	st, _ = h.store.Load()
	if proto.SeqLess(st.Sequences[ha.String()], h.c.seq) {
		t.Fatalf("stored %d is before the last used %d", st.Sequences[ha.String()], h.c.seq)
	}
	// A new engine on the same store continues after the last number.
	last := h.c.seq
	h2 := newHarness(t, individual)
	h2.store = h.store
	h2.cfg.Store = h.store
	h2.c = newMachine(h2.cfg)
	h2.set(eth0)
	if s := h2.one(); !proto.SeqLess(last, s.p.MH.Sequence) {
		t.Fatalf("after restart seq %d, last used %d", s.p.MH.Sequence, last)
	}
}

func TestSendErrorIsRetransmitted(t *testing.T) {
	h := newHarness(t)
	h.tr.err = errors.New("network unreachable")
	h.set(eth0)
	h.one()
	h.tr.err = nil
	h.advance(1500 * time.Millisecond)
	h.accept(h.one())
	h.wantState(1, StateRegistered)
	if h.c.status().Counters.SendErrors != 1 {
		t.Fatal("send error not counted")
	}
}

func TestCoAChangeWhileInFlight(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0)
	s := h.one()
	moved := eth0
	moved.Addr = coa4
	h.set(moved)
	r := h.one()
	checkBU(t, r, coa4, life420)
	// The BA to the superseded BU is not applied.
	h.accept(s)
	if h.c.status().Counters.BAsIgnored[IgnoreUnknownSeq] != 1 {
		t.Fatal("BA to a superseded BU applied")
	}
	h.wantState(1, StatePending)
	h.accept(r)
	if e := h.mustEntry(1); e.CoA != coa4 || e.State != StateRegistered {
		t.Fatalf("%+v", e)
	}
}

func TestEventsSequence(t *testing.T) {
	h := newHarness(t, individual)
	h.set(eth0)
	h.accept(h.one())
	h.set()
	var got []string
	for _, ev := range h.events {
		s := string(ev.Type)
		if ev.Binding != nil {
			s += ":" + string(ev.Binding.State)
		}
		got = append(got, s)
	}
	want := []string{"binding:pending", "binding:registered", "binding:deregistering"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestInvalidInput(t *testing.T) {
	bad := [][]CareOf{
		{{BID: 0, Addr: coa1}},
		{{BID: 1, Addr: coa1}, {BID: 1, Addr: coa2}},
		{{BID: 1, Addr: netip.MustParseAddr("192.0.2.1")}},
		{{BID: 1}},
		{{BID: 1, Addr: netip.MustParseAddr("ff02::1")}},
	}
	for _, cos := range bad {
		if err := validateCareOfs(cos); !errors.Is(err, ErrInvalidCareOf) {
			t.Errorf("%v: err %v", cos, err)
		}
	}
	cfgs := []Config{
		{HomeAgent: ha, Transport: &fakeTransport{}},
		{HomeAddress: hoa, Transport: &fakeTransport{}},
		{HomeAddress: hoa, HomeAgent: ha},
		{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, Lifetime: time.Second},
		{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, Mode: "fast"},
		{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, Mode: ModeSingle},
		{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, ReturnHome: "never"},
	}
	for i, c := range cfgs {
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("config %d: err %v", i, err)
		}
	}
}
