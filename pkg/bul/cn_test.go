package bul

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
	"github.com/mcoad/mcoad/pkg/rr"
)

var cnAddr = netip.MustParseAddr("2001:db8:cccc::1")

// tunIndex is the fake data plane's: the tunnel of BID b has ifindex 100+b.
func tunIndex(bid uint16) int { return 100 + int(bid) }

// tunnels are the fake data plane's working tunnels of bids.
func tunnels(bids ...uint16) []Tunnel {
	out := make([]Tunnel, 0, len(bids))
	for _, b := range bids {
		out = append(out, Tunnel{BID: b, Ifindex: tunIndex(b), Name: fmt.Sprintf("mcoab%d", b)})
	}
	return out
}

// cnHarness is the harness with one correspondent, answered by a real
// rr.CN on the same fake clock.
type cnHarness struct {
	*harness
	cn       *rr.CN
	bindings map[uint16]netip.Addr // the correspondent's cache: BID -> CoA
	forge    bool                  // corrupt the next BA's authenticator
}

func newCNHarness(t *testing.T, mut ...func(*Config)) *cnHarness {
	t.Helper()
	h := newHarness(t, append([]func(*Config){func(c *Config) {
		c.Correspondents = []netip.Addr{cnAddr}
		c.DataPlane = true
	}}, mut...)...)
	cn, err := rr.NewCN(rr.CNConfig{Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	// The data plane's tunnels work from the start (TestCNHoTIWaitsForTunnel
	// takes them away).
	h.c.setTunnels(tunnels(1, 2, 3, 4, 5), h.now())
	return &cnHarness{harness: h, cn: cn, bindings: map[uint16]netip.Addr{}}
}

// homeUp registers cos with the home agent (bulk, accepted) and returns
// what was sent to the correspondent as a result.
func (h *cnHarness) homeUp(cos ...CareOf) []sent {
	h.t.Helper()
	h.set(cos...)
	var toCN []sent
	for _, s := range h.take() {
		if s.p.Dst == cnAddr {
			toCN = append(toCN, s)
			continue
		}
		h.accept(s)
	}
	return append(toCN, h.take()...)
}

func parse(t *testing.T, s sent) *proto.Packet {
	t.Helper()
	var q proto.Packet
	if err := proto.ParsePacket(s.wire, &q, nil); err != nil {
		t.Fatalf("parse %v: %v", s, err)
	}
	return &q
}

// serve lets the correspondent answer every packet in ss (HoTI, CoTI,
// BU), delivers the answers, and returns what the MN sent meanwhile.
func (h *cnHarness) serve(ss []sent) []sent {
	h.t.Helper()
	var more []sent
	for _, s := range ss {
		if s.p.Dst != cnAddr {
			more = append(more, s)
			continue
		}
		q := parse(h.t, s)
		switch q.MH.Type {
		case proto.TypeHoTI, proto.TypeCoTI:
			var out proto.Packet
			if err := h.cn.Answer(q, &out); err != nil {
				h.t.Fatal(err)
			}
			h.deliver(&out)
		case proto.TypeBU:
			st, err := h.cn.VerifyBU(q)
			if err != nil {
				continue // silently discarded
			}
			var bid uint16
			if len(q.MH.Options.BIDs) > 0 {
				bid = q.MH.Options.BIDs[0].ID
			}
			if st == 0 {
				if q.MH.Lifetime == 0 {
					delete(h.bindings, bid)
				} else {
					h.bindings[bid] = q.Src
				}
			}
			out := proto.Packet{Src: cnAddr, Dst: q.Src, RoutingHome: q.HomeAddress, MH: proto.Message{
				Type: proto.TypeBA, PayloadProto: proto.ProtoNone, Status: st, Sequence: q.MH.Sequence, Lifetime: q.MH.Lifetime}}
			out.MH.Options.BIDs = q.MH.Options.BIDs
			var sign proto.Signer
			if rr.NeedsAuthData(st) {
				out.MH.Options.HasAuthData = true
				sign = h.cn.BASigner(rr.Addrs(q).Auth, cnAddr)
			}
			b, err := proto.AppendPacket(nil, &out, nil, sign)
			if err != nil {
				h.t.Fatal(err)
			}
			var in proto.Packet
			if h.forge && sign != nil {
				// A wrong authenticator with a right checksum.
				b[len(b)-1] ^= 1
				h.forge = false
				proto.ParsePacket(b, &in, nil)
				proto.SetChecksum(in.MHBytes, in.ChecksumSrc(), in.ChecksumDst())
			}
			if err := proto.ParsePacket(b, &in, nil); err != nil {
				h.t.Fatal(err)
			}
			h.deliver(&in)
		default:
			h.t.Fatalf("correspondent got %v", q.MH.Type)
		}
	}
	return append(more, h.take()...)
}

// converge serves until the MN sends nothing more to the correspondent.
func (h *cnHarness) converge(ss []sent) (all []sent) {
	for range 10 {
		all = append(all, ss...)
		ss = h.serve(ss)
		n := 0
		for _, s := range ss {
			if s.p.Dst == cnAddr {
				n++
			}
		}
		if n == 0 {
			return append(all, ss...)
		}
	}
	h.t.Fatal("no convergence with the correspondent")
	return nil
}

func cnEntries(h *harness) map[uint16]Entry {
	out := map[uint16]Entry{}
	for _, e := range h.c.snapshot(h.now()) {
		if e.Role == "cn" {
			if e.Peer != cnAddr {
				h.t.Errorf("cn entry with peer %v", e.Peer)
			}
			out[e.BID] = e
		}
	}
	return out
}

func count(ss []sent, typ proto.MHType) (n int) {
	for _, s := range ss {
		if s.p.MH.Type == typ && s.p.Dst == cnAddr {
			n++
		}
	}
	return n
}

func TestCNFullRegistrationThreeCoAs(t *testing.T) {
	h := newCNHarness(t)
	ss := h.homeUp(eth0, wlan, wwan)
	all := h.converge(ss)
	if n := count(all, proto.TypeHoTI); n != 1 {
		t.Errorf("%d HoTIs, want 1", n)
	}
	if n := count(all, proto.TypeCoTI); n != 3 {
		t.Errorf("%d CoTIs, want 3", n)
	}
	if n := count(all, proto.TypeBU); n != 3 {
		t.Errorf("%d BUs to the correspondent, want 3", n)
	}
	for _, s := range all {
		if s.p.Dst != cnAddr {
			continue
		}
		switch s.p.MH.Type {
		case proto.TypeHoTI:
			// From the home address, into the best BID's tunnel (eth0: BID 1).
			if s.p.Src != hoa || s.ifindex != tunIndex(1) || s.p.HomeAddress.IsValid() {
				t.Errorf("HoTI %v via %d, want from %v via %d", s.p.Src, s.ifindex, hoa, tunIndex(1))
			}
		case proto.TypeCoTI:
			if s.p.Src == hoa || s.p.HomeAddress.IsValid() {
				t.Errorf("CoTI from %v hao %v", s.p.Src, s.p.HomeAddress)
			}
		case proto.TypeBU:
			m := &s.p.MH
			if m.Flags&proto.FlagH != 0 || m.Flags&proto.FlagA == 0 || s.p.HomeAddress != hoa || !s.signed {
				t.Errorf("BU to CN: %v signed=%v", s, s.signed)
			}
			if len(m.Options.BIDs) != 1 || m.Options.BIDs[0].C {
				t.Errorf("BU to CN must carry one BID without C: %v", s)
			}
			if !m.Options.HasNonceIndices {
				t.Errorf("no nonce indices: %v", s)
			}
			if m.Lifetime*4 > 420 {
				t.Errorf("lifetime %d units > 420 s", m.Lifetime)
			}
		}
	}
	want := map[uint16]netip.Addr{1: coa1, 2: coa2, 3: coa3}
	for bid, coa := range want {
		if h.bindings[bid] != coa {
			t.Errorf("CN binding BID %d = %v, want %v", bid, h.bindings[bid], coa)
		}
	}
	ents := cnEntries(h.harness)
	if len(ents) != 3 {
		t.Fatalf("%d cn entries, want 3: %+v", len(ents), ents)
	}
	for bid, coa := range want {
		if e := ents[bid]; e.State != StateRegistered || e.CoA != coa || e.Lifetime == 0 {
			t.Errorf("cn entry %d: %+v", bid, e)
		}
	}

	// Refresh before expiry: the bindings stay registered for longer than
	// one lifetime, with the tokens fetched again along the way.
	for range 30 {
		h.advance(30 * time.Second)
		h.converge(h.take())
	}
	for bid, e := range cnEntries(h.harness) {
		if e.State != StateRegistered && e.State != StateRefreshing {
			t.Errorf("after 15 min, cn entry %d: %+v", bid, e)
		}
	}
}

func TestCNExpiredCareofNonce(t *testing.T) {
	h := newCNHarness(t)
	h.converge(h.homeUp(eth0))
	if h.bindings[1] != coa1 {
		t.Fatalf("not registered: %v", h.bindings)
	}
	// A BRR with the BID makes the MN send a BU with the tokens it holds;
	// the correspondent has forgotten the care-of nonce by then.
	h.advance(200 * time.Second)
	h.converge(h.take())
	cn2, err := rr.NewCN(rr.CNConfig{Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	// Forward the BU to a CN that knows none of the nonces: 138. Build a
	// 137 instead by answering the BU by hand.
	h.deliver(&proto.Packet{Src: cnAddr, Dst: hoa, MH: proto.Message{Type: proto.TypeBRR, Options: proto.Options{BIDs: []proto.BID{{ID: 1}}}}})
	bus := h.take()
	if count(bus, proto.TypeBU) != 1 || count(bus, proto.TypeCoTI) != 0 {
		t.Fatalf("after BRR: %v", bus)
	}
	bu := bus[0]
	ba := &proto.Packet{Src: cnAddr, Dst: bu.p.Src, RoutingHome: hoa, MH: proto.Message{
		Type: proto.TypeBA, Status: proto.StatusExpiredCareofNonce, Sequence: bu.p.MH.Sequence}}
	h.deliver(ba)
	again := h.take()
	if count(again, proto.TypeCoTI) != 1 || count(again, proto.TypeHoTI) != 0 || count(again, proto.TypeBU) != 0 {
		t.Fatalf("after 137: want one CoTI only, got %v", again)
	}
	h.cn = cn2 // the correspondent restarted: new Kcn and nonces
	h.converge(append(again, h.take()...))
	if e := cnEntries(h.harness)[1]; e.State != StateRegistered {
		t.Fatalf("after 137 and new RR: %+v", e)
	}
}

func TestCNCoALossDeregisters(t *testing.T) {
	h := newCNHarness(t)
	h.converge(h.homeUp(eth0, wlan, wwan))
	if len(h.bindings) != 3 {
		t.Fatalf("bindings %v", h.bindings)
	}
	h.advance(time.Second) // out of MAX_UPDATE_RATE's window
	h.converge(h.take())
	h.set(wlan, wwan) // eth0 gone
	ss := h.take()
	var dereg []sent
	for _, s := range ss {
		if s.p.Dst == cnAddr && s.p.MH.Type == proto.TypeBU {
			dereg = append(dereg, s)
		}
	}
	if len(dereg) != 1 {
		t.Fatalf("want one BU to the CN, got %v", ss)
	}
	d := dereg[0]
	if d.p.MH.Lifetime != 0 || len(d.p.MH.Options.BIDs) != 1 || d.p.MH.Options.BIDs[0].ID != 1 || d.p.Src == coa1 {
		t.Fatalf("de-registration %v", d)
	}
	if count(ss, proto.TypeCoTI) != 0 {
		t.Errorf("de-registration needs the home token only: %v", ss)
	}
	h.converge(dereg)
	if _, ok := h.bindings[1]; ok || len(h.bindings) != 2 {
		t.Fatalf("CN bindings after eth0 loss: %v", h.bindings)
	}
	if _, ok := cnEntries(h.harness)[1]; ok {
		t.Fatalf("cn entry 1 still there: %+v", cnEntries(h.harness))
	}
}

func TestCNNeverBulk(t *testing.T) {
	h := newCNHarness(t, func(c *Config) { c.Mode = ModeBulk })
	all := h.converge(h.homeUp(eth0, wlan, wwan))
	h.set(eth0)
	all = append(all, h.converge(h.take())...)
	for range 20 {
		h.advance(30 * time.Second)
		all = append(all, h.converge(h.take())...)
	}
	n := 0
	for _, s := range all {
		if s.p.Dst != cnAddr || s.p.MH.Type != proto.TypeBU {
			continue
		}
		n++
		if len(s.p.MH.Options.BIDs) != 1 {
			t.Fatalf("BU to CN with %d BID sub-options: %v", len(s.p.MH.Options.BIDs), s)
		}
		for _, b := range s.p.MH.Options.BIDs {
			if b.C || b.CoA.IsValid() {
				t.Fatalf("bulk BU to a correspondent: %v", s)
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d BUs to the correspondent", n)
	}
}

func TestCNForgedBAIgnored(t *testing.T) {
	h := newCNHarness(t)
	h.forge = true
	h.converge(h.homeUp(eth0))
	if h.c.counters.BAsIgnored[IgnoreAuth] != 1 {
		t.Fatalf("ignored %v", h.c.counters.BAsIgnored)
	}
	// The retransmission is answered properly.
	h.advance(2 * time.Second)
	h.converge(h.take())
	if e := cnEntries(h.harness)[1]; e.State != StateRegistered {
		t.Fatalf("%+v", e)
	}
}

func TestCNSingleFallback(t *testing.T) {
	h := newCNHarness(t)
	ss := h.homeUp(eth0, wlan)
	h.deliver(&proto.Packet{Src: cnAddr, Dst: coa1, MH: proto.Message{Type: proto.TypeBE, Status: proto.BEUnknownType}})
	h.converge(append(ss, h.take()...))
	ents := cnEntries(h.harness)
	if len(ents) != 1 || ents[0].State != StateRegistered || ents[0].CoA != coa1 {
		t.Fatalf("single binding: %+v", ents)
	}
	if h.bindings[0] != coa1 {
		t.Fatalf("CN bindings %v", h.bindings)
	}
}

func TestCNNoDataPlane(t *testing.T) {
	h := newCNHarness(t, func(c *Config) { c.DataPlane = false })
	ss := h.homeUp(eth0)
	if n := count(ss, proto.TypeHoTI) + count(ss, proto.TypeCoTI) + count(ss, proto.TypeBU); n != 0 {
		t.Fatalf("sent to the correspondent without data plane: %v", ss)
	}
	if len(cnEntries(h.harness)) != 0 {
		t.Fatal("cn entries without data plane")
	}
}

func TestCNDeregisterOnStop(t *testing.T) {
	h := newCNHarness(t)
	h.converge(h.homeUp(eth0, wlan))
	h.advance(time.Second)
	h.converge(h.take())
	h.c.stop(true, h.now())
	ss := h.take()
	var dereg []sent
	for _, s := range ss {
		if s.p.Dst == cnAddr && s.p.MH.Type == proto.TypeBU {
			if s.p.MH.Lifetime != 0 {
				t.Fatalf("BU to CN on stop with lifetime %d", s.p.MH.Lifetime)
			}
			dereg = append(dereg, s)
		}
	}
	if len(dereg) != 2 {
		t.Fatalf("want 2 de-registrations to the CN, got %v", ss)
	}
	h.converge(dereg)
	if len(h.bindings) != 0 {
		t.Fatalf("CN bindings after stop: %v", h.bindings)
	}
	if len(cnEntries(h.harness)) != 0 {
		t.Fatalf("cn entries after stop: %+v", cnEntries(h.harness))
	}
}

// TestCNPrefetchCareofTest: a new CoA's care-of test starts while its home
// BU is in flight, so that its correspondent BU leaves with the home
// agent's BA, not a round trip later.
func TestCNPrefetchCareofTest(t *testing.T) {
	h := newCNHarness(t)
	h.converge(h.homeUp(eth0, wlan))
	if len(h.bindings) != 2 {
		t.Fatalf("bindings %v", h.bindings)
	}
	h.advance(time.Second) // out of MAX_UPDATE_RATE's window
	h.converge(h.take())
	h.set(eth0, wlan, wwan)
	var home []sent
	var cotis int
	for _, s := range h.take() {
		switch {
		case s.p.Dst != cnAddr:
			home = append(home, s)
		case s.p.MH.Type == proto.TypeCoTI && s.p.Src == wwan.Addr:
			cotis++
			h.serve([]sent{s}) // the CoT comes back before the home BA
		case s.p.MH.Type == proto.TypeBU:
			t.Fatalf("correspondent BU before the home agent holds the CoA: %v", s)
		}
	}
	if cotis != 1 {
		t.Fatalf("%d CoTIs from the new CoA before its home registration, want 1", cotis)
	}
	if len(home) == 0 {
		t.Fatal("no BU to the home agent for the new CoA")
	}
	for _, s := range home {
		h.accept(s)
	}
	ss := h.take()
	var bu *sent
	for i, s := range ss {
		if s.p.Dst == cnAddr && s.p.MH.Type == proto.TypeBU {
			bu = &ss[i]
		}
	}
	if bu == nil || bu.p.Src != wwan.Addr || count(ss, proto.TypeCoTI) != 0 {
		t.Fatalf("with the home BA, want the correspondent BU from %v at once and no new CoTI, got %v", wwan.Addr, ss)
	}
	h.converge(ss)
	if len(h.bindings) != 3 || h.bindings[wwan.BID] != wwan.Addr {
		t.Fatalf("CN bindings %v", h.bindings)
	}
}
