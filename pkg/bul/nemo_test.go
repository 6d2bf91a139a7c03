package bul

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	mnp1 = netip.MustParsePrefix("2001:db8:aaab::/64")
	mnp2 = netip.MustParsePrefix("2001:db8:aaac:100::/56")
)

func mobileRouter(implicit bool) func(*Config) {
	return func(c *Config) {
		c.MobileRouter = &MobileRouter{Prefixes: []netip.Prefix{mnp1, mnp2}, Implicit: implicit}
	}
}

// acceptR answers bu as a NEMO home agent does: status 0 and the R flag.
func (h *harness) acceptR(bu sent) {
	h.t.Helper()
	p := ba(bu, 0, bu.p.MH.Lifetime, echo(bu, 0)...)
	p.MH.Flags = proto.BAFlagR
	h.deliver(p)
}

// wantNEMO checks the R flag and the Mobile Network Prefix options of a BU,
// both as the engine built it and as it went on the wire.
func wantNEMO(t *testing.T, s sent, prefixes ...netip.Prefix) {
	t.Helper()
	var wire proto.Packet
	if err := proto.ParsePacket(s.wire, &wire, nil); err != nil {
		t.Fatalf("BU does not parse: %v (%v)", err, s)
	}
	for _, m := range []*proto.Message{&s.p.MH, &wire.MH} {
		if m.Flags&proto.FlagR == 0 || m.Flags&^proto.FlagR != proto.FlagA|proto.FlagH {
			t.Errorf("flags %#x, want A|H|R (%v)", m.Flags, s)
		}
		if !slices.Equal(m.Options.Prefixes, prefixes) {
			t.Errorf("prefix options %v, want %v (%v)", m.Options.Prefixes, prefixes, s)
		}
	}
}

func TestMobileRouterBUs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		implicit bool
		mode     func(*Config)
	}{
		{"explicit/bulk", false, func(*Config) {}},
		{"explicit/individual", false, individual},
		{"implicit/bulk", true, func(*Config) {}},
		{"implicit/individual", true, individual},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.mode, mobileRouter(tc.implicit))
			var want []netip.Prefix
			if !tc.implicit {
				want = []netip.Prefix{mnp1, mnp2}
			}
			h.set(eth0, wlan)
			regs := h.take()
			wantN := 1
			if h.c.mode == ModeIndividual {
				wantN = 2
			}
			if len(regs) != wantN {
				t.Fatalf("sent %d BUs, want %d: %v", len(regs), wantN, regs)
			}
			for _, s := range regs {
				wantNEMO(t, s, want...)
				h.acceptR(s)
			}
			h.wantState(1, StateRegistered)
			h.wantState(2, StateRegistered)
			st := h.c.status()
			if st.MobileRouter == nil || st.MobileRouter.HomeAgentNoNEMO || st.MobileRouter.LastStatus != 0 ||
				!slices.Equal(st.MobileRouter.Prefixes, []netip.Prefix{mnp1, mnp2}) ||
				st.MobileRouter.Mode != map[bool]string{false: "explicit", true: "implicit"}[tc.implicit] {
				t.Errorf("status %+v", st.MobileRouter)
			}

			// Refresh: same contents.
			h.advance(336 * time.Second)
			refresh := h.take()
			if len(refresh) != wantN {
				t.Fatalf("refresh: sent %d BUs, want %d: %v", len(refresh), wantN, refresh)
			}
			for _, s := range refresh {
				wantNEMO(t, s, want...)
				h.acceptR(s)
			}

			// Removing one binding still carries R; the prefixes go only
			// with a BU that registers (lifetime > 0).
			h.advance(time.Second)
			h.take()
			h.set(eth0)
			s := h.one()
			if s.p.MH.Lifetime != 0 {
				wantNEMO(t, s, want...)
			} else {
				wantNEMO(t, s)
			}
			h.acceptR(s)
			h.wantNoEntry(2)

			// De-registration of everything: R, no prefixes.
			h.advance(time.Second)
			h.take()
			h.c.deregisterAll(h.now())
			for _, s := range h.take() {
				if s.p.MH.Lifetime != 0 {
					t.Fatalf("de-registration with lifetime %d: %v", s.p.MH.Lifetime, s)
				}
				wantNEMO(t, s)
			}
		})
	}
}

func TestMobileHostSendsNoR(t *testing.T) {
	h := newHarness(t)
	h.set(eth0)
	s := h.one()
	checkBU(t, s, coa1, life420) // flags exactly A|H
	if len(s.p.MH.Options.Prefixes) != 0 || h.c.status().MobileRouter != nil {
		t.Errorf("mobile host BU carries NEMO: %v", s)
	}
}

func TestMobileRouterConfig(t *testing.T) {
	for _, mr := range []*MobileRouter{
		{},
		{Prefixes: []netip.Prefix{{}}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Implicit: true},
	} {
		c := Config{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, MobileRouter: mr}
		if err := c.normalize(); err == nil {
			t.Errorf("%+v accepted", mr)
		}
	}
	in := []netip.Prefix{netip.MustParsePrefix("2001:db8:aaab::1/64")}
	c := Config{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, MobileRouter: &MobileRouter{Prefixes: in}}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.MobileRouter.Prefixes[0] != mnp1 {
		t.Errorf("prefix %v not masked", c.MobileRouter.Prefixes[0])
	}
	in[0] = mnp2
	if c.MobileRouter.Prefixes[0] != mnp1 {
		t.Errorf("the engine shares the caller's slice")
	}
	// Implicit mode may know no prefix at all: the HA has the list.
	c = Config{HomeAddress: hoa, HomeAgent: ha, Transport: &fakeTransport{}, MobileRouter: &MobileRouter{Implicit: true}}
	if err := c.normalize(); err != nil {
		t.Errorf("implicit without prefixes: %v", err)
	}
}

// TestMobileRouterRejections: RFC 3963 statuses 140-142 are retried at the
// slowest rate, 143 with the usual back-off; each is recorded per binding
// and in Status, and a later success clears it.
func TestMobileRouterRejections(t *testing.T) {
	for _, tc := range []struct {
		st    proto.Status
		perID bool // as a per-BID status of a bulk BA (145 overall)
		gaps  []time.Duration
	}{
		{proto.StatusMRNotAuthorized, false, []time.Duration{32, 32, 32}},
		{proto.StatusInvalidPrefix, false, []time.Duration{32, 32, 32}},
		{proto.StatusNotAuthorizedForPrefix, true, []time.Duration{32, 32, 32}},
		{proto.StatusForwardingSetupFailed, false, []time.Duration{1, 2, 4}},
	} {
		t.Run(tc.st.String(), func(t *testing.T) {
			h := newHarness(t, mobileRouter(false))
			h.set(eth0, wlan)
			var gaps []time.Duration
			last := t0
			for i := range len(tc.gaps) + 1 {
				s := h.one()
				wantNEMO(t, s, mnp1, mnp2)
				if i > 0 {
					gaps = append(gaps, (s.at.Sub(last)+time.Second/2)/time.Second)
				}
				last = s.at
				p := ba(s, tc.st, 0, echo(s, uint8(tc.st))...)
				if tc.perID {
					p = ba(s, h.cfg.Profile.StatusBulkRegFail, 0, echo(s, uint8(tc.st))...)
				}
				p.MH.Flags = proto.BAFlagR
				h.deliver(p)
				for _, bid := range []uint16{1, 2} {
					if e := h.mustEntry(bid); e.State != StateFailed || e.LastStatus != int(tc.st) {
						t.Fatalf("entry %+v", e)
					}
				}
				if ms := h.c.status().MobileRouter; ms.LastStatus != int(tc.st) || ms.LastError == "" {
					t.Fatalf("status %+v", ms)
				}
				h.advance(h.c.nextDeadline(h.now()).Sub(h.now()))
			}
			if !slices.Equal(gaps, tc.gaps) {
				t.Fatalf("retry gaps %v s, want %v s", gaps, tc.gaps)
			}
			h.acceptR(h.one())
			h.wantState(1, StateRegistered)
			if ms := h.c.status().MobileRouter; ms.LastStatus != 0 || ms.LastError != "" {
				t.Errorf("status after success %+v", ms)
			}
		})
	}
}

// TestMobileRouterHANoNEMO: an accepting BA without the R flag means the
// home agent does not support NEMO (RFC 3963 5.3): recorded, and cleared
// by a BA with it.
func TestMobileRouterHANoNEMO(t *testing.T) {
	h := newHarness(t, individual, mobileRouter(true))
	h.set(eth0)
	h.accept(h.one()) // no R flag
	h.wantState(1, StateRegistered)
	ms := h.c.status().MobileRouter
	if !ms.HomeAgentNoNEMO || ms.LastError == "" {
		t.Fatalf("status %+v", ms)
	}
	h.advance(336 * time.Second)
	h.acceptR(h.one())
	if ms := h.c.status().MobileRouter; ms.HomeAgentNoNEMO || ms.LastError != "" {
		t.Fatalf("status after a BA with R %+v", ms)
	}
}
