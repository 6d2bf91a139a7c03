package bcache

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	homePfx = netip.MustParsePrefix("2001:db8:aaaa::/64")
	hoa1    = netip.MustParseAddr("2001:db8:aaaa::100")
	hoa2    = netip.MustParseAddr("2001:db8:aaaa::200")
	coa1    = netip.MustParseAddr("2001:db8:1::100")
	coa2    = netip.MustParseAddr("2001:db8:2::100")
	coa3    = netip.MustParseAddr("2001:db8:3::100")
	haAddr  = netip.MustParseAddr("2001:db8:aaaa::1")
	t0      = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// buSpec describes a BU. Zero fields take defaults: source coa1, home
// address hoa1 (in a Home Address option), the environment's next sequence
// number, flags A|H, lifetime 100 units (400 s).
type buSpec struct {
	src, hoa, alt netip.Addr
	noHAO         bool // no Home Address option: the source is the home address
	seq           uint16
	life          uint16
	dereg         bool // lifetime 0
	noA, noH      bool
	flags         uint16 // added to the defaults
	bids          []proto.BID
	parseErr      error
	reject        proto.Status
	mnha          *MNHAKey       // sign with this SA
	prefixes      []netip.Prefix // Mobile Network Prefix options (NEMO)
}

type env struct {
	t   *testing.T
	clk *clock.Fake
	c   *Cache
	seq uint16
	ba  proto.Message
}

func haConfig() Config {
	return Config{
		Role:                 RoleHA,
		Serve:                []netip.Prefix{homePfx},
		HomePrefix:           netip.MustParsePrefix("2001:db8:aaaa::/48"),
		BulkRegistration:     true,
		MaxBAPerSecondPerHoA: -1,
		MaxBAPerSecondNew:    -1,
	}
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	cfg := haConfig()
	if mod != nil {
		mod(&cfg)
	}
	clk := clock.NewFake(t0)
	return &env{t: t, clk: clk, c: New(cfg, clk), seq: 10}
}

func (e *env) input(s buSpec) *BUInput {
	m := &proto.Message{Type: proto.TypeBU, PayloadProto: proto.ProtoNone, AuthOffset: -1}
	if s.seq != 0 {
		e.seq = s.seq
	} else {
		e.seq++
	}
	m.Sequence = e.seq
	m.Lifetime = 100
	if s.life != 0 {
		m.Lifetime = s.life
	}
	if s.dereg {
		m.Lifetime = 0
	}
	m.Flags = proto.FlagA | proto.FlagH | s.flags
	if s.noA {
		m.Flags &^= proto.FlagA
	}
	if s.noH {
		m.Flags &^= proto.FlagH
	}
	m.Options.AltCoA = s.alt
	m.Options.BIDs = slices.Clone(s.bids)
	m.Options.Prefixes = slices.Clone(s.prefixes)
	in := &BUInput{Src: s.src, HoA: s.hoa, Msg: m, ParseErr: s.parseErr, Reject: s.reject}
	if !in.Src.IsValid() {
		in.Src = coa1
	}
	if !in.HoA.IsValid() {
		in.HoA = hoa1
	}
	if s.noHAO {
		in.HoA = netip.Addr{}
	}
	if s.mnha != nil {
		// A real BU on the wire, signed as the mobile node signs it.
		m.Options.HasMNHAAuth = true
		m.Options.MNHASPI = s.mnha.SPI
		raw, err := proto.AppendMessage(nil, m, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		hoa := in.HoA
		if !hoa.IsValid() {
			hoa = in.Src
		}
		if err := proto.NewMNHA(s.mnha.Key).Sign(raw, m.AuthOffset, careOf(in), hoa); err != nil {
			e.t.Fatal(err)
		}
		parsed := &proto.Message{}
		if err := proto.ParseMessage(raw, parsed, nil); err != nil {
			e.t.Fatal(err)
		}
		in.Msg, in.MH = parsed, raw
	}
	return in
}

// bu processes s one second after the previous step.
func (e *env) bu(s buSpec) Result {
	e.t.Helper()
	e.clk.Advance(time.Second)
	return e.c.ProcessBU(e.input(s), &e.ba)
}

// mustAccept processes s and fails the test unless it was accepted.
func (e *env) mustAccept(s buSpec) {
	e.t.Helper()
	r := e.bu(s)
	if r.Dropped != NotDropped || !r.Status.Accepted() {
		e.t.Fatalf("setup BU not accepted: status %v, dropped %v", r.Status, r.Dropped)
	}
}

type bind struct {
	bid  uint16
	coa  netip.Addr
	prio uint8
}

func (b bind) String() string { return fmt.Sprintf("{%d %v p%d}", b.bid, b.coa, b.prio) }

// bindings returns hoa's bindings, ordered by BID.
func (e *env) bindings(hoa netip.Addr) []bind {
	var out []bind
	for _, b := range e.c.LookupHoA(hoa, nil) {
		out = append(out, bind{b.BID, b.CoA, b.Priority})
	}
	return out
}

func bindsString(bs []bind) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

func bid(id uint16, prio uint8) proto.BID { return proto.BID{ID: id, PrioStatus: prio} }
func bulk(id uint16, coa netip.Addr) proto.BID {
	return proto.BID{ID: id, C: true, CoA: coa}
}
func remove(id uint16, coa netip.Addr) proto.BID {
	return proto.BID{ID: id, C: true, R: true, CoA: coa}
}

// checkInvariants verifies the cache's internal consistency.
func checkInvariants(t *testing.T, c *Cache) {
	t.Helper()
	n, hoas := 0, 0
	for i := range c.tab.slots {
		h := &c.tab.slots[i]
		if !h.used {
			continue
		}
		hoas++
		k := h.key
		if c.tab.find(k) != h {
			t.Fatalf("home address %v in slot %d not found by find", netip.AddrFrom16(k), i)
		}
		if len(h.binds) == 0 {
			t.Fatalf("home address %v kept without bindings", netip.AddrFrom16(k))
		}
		seen := map[uint16]bool{}
		for j, b := range h.binds {
			if j > 0 && h.binds[j-1].bid >= b.bid {
				t.Fatalf("bindings of %v not in BID order", netip.AddrFrom16(k))
			}
			seen[b.bid] = true
			if !routable(netip.AddrFrom16(b.coa)) {
				t.Fatalf("binding with unroutable CoA %v", netip.AddrFrom16(b.coa))
			}
			if b.life == 0 || b.life > c.cfg.maxUnits() {
				t.Fatalf("binding lifetime %d units", b.life)
			}
		}
		if seen[0] && len(h.binds) > 1 {
			t.Fatalf("regular binding next to BID bindings for %v", netip.AddrFrom16(k))
		}
		if !h.hasSched {
			t.Fatalf("home address %v without timer", netip.AddrFrom16(k))
		}
		found := false
		for j := range c.timers {
			if c.timers[j].key == k && c.live(&c.timers[j]) == h {
				found = true
			}
		}
		if !found {
			t.Fatalf("home address %v: live timer missing from the heap", netip.AddrFrom16(k))
		}
		n += len(h.binds)
	}
	if n != c.n || hoas != c.tab.n {
		t.Fatalf("counts %d bindings / %d home addresses, counted %d / %d", c.n, c.tab.n, n, hoas)
	}
}
