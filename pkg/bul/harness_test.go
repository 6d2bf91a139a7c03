package bul

import (
	"errors"
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
	hoa  = netip.MustParseAddr("2001:db8:aaaa::100")
	ha   = netip.MustParseAddr("2001:db8:aaaa::1")
	coa1 = netip.MustParseAddr("2001:db8:1::10")
	coa2 = netip.MustParseAddr("2001:db8:2::10")
	coa3 = netip.MustParseAddr("2001:db8:3::10")
	coa4 = netip.MustParseAddr("2001:db8:4::10")
	coa5 = netip.MustParseAddr("2001:db8:5::10")
	home = netip.MustParseAddr("2001:db8:aaaa::2:10") // an address on the home link
	t0   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

var (
	eth0 = CareOf{BID: 1, Iface: "eth0", Ifindex: 11, Addr: coa1, Priority: 30}
	wlan = CareOf{BID: 2, Iface: "wlan0", Ifindex: 12, Addr: coa2, Priority: 20}
	wwan = CareOf{BID: 3, Iface: "wwan0", Ifindex: 13, Addr: coa3, Priority: 10}
	// eth0Home is eth0 attached to the home link.
	eth0Home = CareOf{BID: 1, Iface: "eth0", Ifindex: 11, Addr: home, Priority: 30, HomeLink: true}
)

// sent is one packet the fake transport got, deep-copied.
type sent struct {
	p       proto.Packet
	ifindex int
	mark    uint32 // SendMarked's
	signed  bool
	at      time.Time
	wire    []byte // the packet as sent (signed)
}

func (s sent) String() string {
	m := &s.p.MH
	var b strings.Builder
	fmt.Fprintf(&b, "BU seq=%d src=%v hao=%v life=%d flags=%#x", m.Sequence, s.p.Src, s.p.HomeAddress, m.Lifetime, m.Flags)
	if m.Options.AltCoA.IsValid() {
		fmt.Fprintf(&b, " alt=%v", m.Options.AltCoA)
	}
	for _, x := range m.Options.BIDs {
		fmt.Fprintf(&b, " [bid=%d p=%d C=%v R=%v coa=%v]", x.ID, x.PrioStatus, x.C, x.R, x.CoA)
	}
	return b.String()
}

type fakeTransport struct {
	clk    clock.Clock
	sent   []sent
	err    error
	ch     chan sent // when set, also delivered here (Run tests)
	encErr error     // the first BU the codec refused
	buf    []byte
}

func (f *fakeTransport) record(ifindex int, p *proto.Packet, sign proto.Signer) error {
	// Every BU the engine sends must be one the codec can put on the wire.
	var err error
	if f.buf, err = proto.AppendPacket(f.buf[:0], p, nil, sign); err != nil && f.encErr == nil {
		f.encErr = fmt.Errorf("BU %v does not encode: %w", p, err)
	}
	s := sent{p: *p, ifindex: ifindex, signed: sign != nil, wire: slices.Clone(f.buf)}
	s.p.MH.Options.BIDs = slices.Clone(p.MH.Options.BIDs)
	s.p.MH.Options.Prefixes = slices.Clone(p.MH.Options.Prefixes)
	if f.clk != nil {
		s.at = f.clk.Now()
	}
	if f.ch != nil {
		f.ch <- s
	} else {
		f.sent = append(f.sent, s)
	}
	return f.err
}

func (f *fakeTransport) Send(p *proto.Packet, sign proto.Signer) error { return f.record(0, p, sign) }
func (f *fakeTransport) SendOn(ifindex int, p *proto.Packet, sign proto.Signer) error {
	return f.record(ifindex, p, sign)
}
func (f *fakeTransport) SendMarked(mark uint32, p *proto.Packet, sign proto.Signer) error {
	err := f.record(0, p, sign)
	if f.ch == nil {
		f.sent[len(f.sent)-1].mark = mark
	}
	return err
}

// fakeAuth marks BUs with an MN-HA option and fails BAs whose SPI is wrong.
type fakeAuth struct{ spi uint32 }

func (a *fakeAuth) AddOption(m *proto.Message) {
	m.Options.HasMNHAAuth = true
	m.Options.MNHASubtype = proto.AuthSubtypeMNHA
	m.Options.MNHASPI = a.spi
}
func (a *fakeAuth) Signer(p *proto.Packet) proto.Signer { return a }
func (a *fakeAuth) Sign(mh []byte, off int) error       { return nil }
func (a *fakeAuth) Verify(p *proto.Packet) error {
	if !p.MH.Options.HasMNHAAuth || p.MH.Options.MNHASPI != a.spi {
		return errors.New("bad MN-HA authenticator")
	}
	return nil
}

type harness struct {
	t      *testing.T
	clk    *clock.Fake
	tr     *fakeTransport
	c      *machine
	cfg    Config
	store  *MemStore
	events []Event
}

func newHarness(t *testing.T, mut ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewFake(t0), store: NewMemStore()}
	h.tr = &fakeTransport{clk: h.clk}
	h.store.Save(PersistentState{Sequences: map[string]uint16{ha.String(): 1000}})
	cfg := Config{
		HomeAddress: hoa,
		HomeAgent:   ha,
		Transport:   h.tr,
		Clock:       h.clk,
		Store:       h.store,
		OnChange:    func(ev Event) { h.events = append(h.events, ev) },
	}
	for _, f := range mut {
		f(&cfg)
	}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	h.c = newMachine(cfg)
	t.Cleanup(func() {
		if h.tr.encErr != nil {
			t.Error(h.tr.encErr)
		}
	})
	return h
}

func (h *harness) now() time.Time { return h.clk.Now() }

func (h *harness) set(cos ...CareOf) {
	h.t.Helper()
	if err := validateCareOfs(cos); err != nil {
		h.t.Fatal(err)
	}
	h.c.setCareOfs(cos, h.now())
}

// advance moves the fake clock by d, ticking the machine at every deadline on
// the way, as Run's timer would.
func (h *harness) advance(d time.Duration) {
	end := h.now().Add(d)
	for {
		dl := h.c.nextDeadline(h.now())
		if dl.IsZero() || dl.After(end) {
			break
		}
		h.clk.Advance(dl.Sub(h.now()))
		h.c.tick(h.now())
	}
	h.clk.Advance(end.Sub(h.now()))
	h.c.tick(h.now())
}

// take returns the packets sent so far and forgets them.
func (h *harness) take() []sent {
	s := h.tr.sent
	h.tr.sent = nil
	return s
}

// one expects exactly one packet to have been sent.
func (h *harness) one() sent {
	h.t.Helper()
	s := h.take()
	if len(s) != 1 {
		h.t.Fatalf("sent %d packets, want 1: %v", len(s), s)
	}
	return s[0]
}

func (h *harness) none() {
	h.t.Helper()
	if s := h.take(); len(s) != 0 {
		h.t.Fatalf("sent %d packets, want none: %v", len(s), s)
	}
}

// ba builds the home agent's BA to bu: to the BU's source, with a type 2
// routing header unless the BU came from the home address.
func ba(bu sent, status proto.Status, lifetime uint16, bids ...proto.BID) *proto.Packet {
	p := &proto.Packet{Src: ha, Dst: bu.p.Src}
	if bu.p.Src != hoa {
		p.RoutingHome = hoa
	}
	p.MH.Type = proto.TypeBA
	p.MH.Status = status
	p.MH.Sequence = bu.p.MH.Sequence
	p.MH.Lifetime = lifetime
	p.MH.Options.BIDs = bids
	return p
}

// echo returns bu's BID sub-options with their status set to st.
func echo(bu sent, st uint8) []proto.BID {
	out := slices.Clone(bu.p.MH.Options.BIDs)
	for i := range out {
		out[i].PrioStatus = st
	}
	return out
}

// accept answers bu with status 0, its own lifetime and its BIDs echoed.
func (h *harness) accept(bu sent) {
	h.t.Helper()
	h.deliver(ba(bu, 0, bu.p.MH.Lifetime, echo(bu, 0)...))
}

func (h *harness) deliver(p *proto.Packet) {
	h.c.handleInbound(newInbound(p, h.cfg.Auth, ha, h.cfg.Correspondents), h.now())
}

func (h *harness) entry(bid uint16) (Entry, bool) {
	for _, e := range h.c.snapshot(h.now()) {
		if e.BID == bid {
			return e, true
		}
	}
	return Entry{}, false
}

func (h *harness) mustEntry(bid uint16) Entry {
	h.t.Helper()
	e, ok := h.entry(bid)
	if !ok {
		h.t.Fatalf("no BUL entry for BID %d; list: %+v", bid, h.c.snapshot(h.now()))
	}
	return e
}

func (h *harness) wantState(bid uint16, st State) {
	h.t.Helper()
	if e := h.mustEntry(bid); e.State != st {
		h.t.Fatalf("BID %d: state %s, want %s (%+v)", bid, e.State, st, e)
	}
}

func (h *harness) wantNoEntry(bid uint16) {
	h.t.Helper()
	if e, ok := h.entry(bid); ok {
		h.t.Fatalf("BID %d still in the list: %+v", bid, e)
	}
}

func (h *harness) bids() []uint16 {
	var out []uint16
	for _, e := range h.c.snapshot(h.now()) {
		out = append(out, e.BID)
	}
	return out
}

// checkBU asserts the fixed part of a home registration BU.
func checkBU(t *testing.T, s sent, src netip.Addr, lifetime uint16) {
	t.Helper()
	m := &s.p.MH
	if m.Type != proto.TypeBU {
		t.Fatalf("type %v, want BU", m.Type)
	}
	if s.p.Dst != ha {
		t.Errorf("dst %v, want %v", s.p.Dst, ha)
	}
	if s.p.Src != src {
		t.Errorf("src %v, want %v (%v)", s.p.Src, src, s)
	}
	if src == hoa {
		if s.p.HomeAddress.IsValid() {
			t.Errorf("BU from the home address carries a HAO: %v", s)
		}
	} else if s.p.HomeAddress != hoa {
		t.Errorf("HAO %v, want %v", s.p.HomeAddress, hoa)
	}
	if m.Flags != proto.FlagA|proto.FlagH {
		t.Errorf("flags %#x, want A|H", m.Flags)
	}
	if m.Lifetime != lifetime {
		t.Errorf("lifetime %d, want %d (%v)", m.Lifetime, lifetime, s)
	}
}

// wantBIDs asserts the BID sub-options, in order.
func wantBIDs(t *testing.T, s sent, want ...proto.BID) {
	t.Helper()
	got := s.p.MH.Options.BIDs
	if len(got) != len(want) {
		t.Fatalf("BID sub-options %v, want %v (%v)", got, want, s)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.PrioStatus != w.PrioStatus || g.C != w.C || g.R != w.R || g.CoA != w.CoA {
			t.Fatalf("BID sub-option %d = %+v, want %+v (%v)", i, g, w, s)
		}
	}
}

const life420 = 105 // 420 s in 4 s units
