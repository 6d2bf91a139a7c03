package homeagent

import (
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/relay"
)

func TestHAPick(t *testing.T) {
	other := netip.MustParseAddr("2001:db8:aaaa::200")
	want, err := dataplane.CheckHABindings([]dataplane.HABinding{
		{HoA: pkttest.THoA, BID: 1, CoA: pkttest.TCoA[0], Priority: 10},
		{HoA: pkttest.THoA, BID: 2, CoA: pkttest.TCoA[1], Priority: 30},
		{HoA: pkttest.THoA, BID: 3, CoA: pkttest.TCoA[2], Priority: 30},
		{HoA: other, BID: 1, CoA: pkttest.TCoA[0]},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, ctrs, homes := buildHAState(want, nil)
	if len(ctrs) != 4 || len(homes) != 2 {
		t.Fatalf("%d counters, %d homes", len(ctrs), len(homes))
	}
	bs := st.byHoA[pkttest.THoA.As16()]
	if bs[0].b.BID != 2 || bs[1].b.BID != 3 || bs[2].b.BID != 1 {
		t.Fatalf("order %d %d %d: want priority, then lowest BID", bs[0].b.BID, bs[1].b.BID, bs[2].b.BID)
	}
	if l := st.byCoA[pkttest.TCoA[0].As16()]; len(l) != 2 {
		t.Fatalf("CoA 1 serves %d bindings, want 2", len(l))
	}
	flows := relay.NewFlowMemory()
	toHoA := func(sport uint16) []byte {
		return pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.TCN, pkttest.THoA, pkttest.TCPSeg(sport, 40000, 1, 1, packet.TCPFlagACK, nil))
	}
	if b := relay.PickBinding(flows, bs, toHoA(443)); b.b.BID != 2 {
		t.Fatalf("nothing learnt: BID %d, want 2 (highest priority)", b.b.BID)
	}
	// The mobile node sends this flow on BID 1: the answer follows.
	k, ports := relay.InnerFlow(pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 443, 1, 1, packet.TCPFlagACK, nil)), true)
	flows.Learn(&k, ports, 1)
	if b := relay.PickBinding(flows, bs, toHoA(443)); b.b.BID != 1 {
		t.Fatalf("flow learnt on BID 1: picked %d", b.b.BID)
	}
	// Another flow from that peer goes where the peer was last seen.
	if b := relay.PickBinding(flows, bs, toHoA(8443)); b.b.BID != 1 {
		t.Fatalf("peer learnt on BID 1: picked %d", b.b.BID)
	}
	// A BID that is gone is not used.
	st2, _, _ := buildHAState(want[1:3], ctrs)
	if b := relay.PickBinding(flows, st2.byHoA[pkttest.THoA.As16()], toHoA(443)); b.b.BID != 2 {
		t.Fatalf("BID 1 gone: picked %d", b.b.BID)
	}
	if st2.byHoA[pkttest.THoA.As16()][0].ctr != ctrs[dataplane.BindingKey{HoA: pkttest.THoA, BID: 2}] {
		t.Fatal("counters not kept across SetBindings")
	}
	if a := testing.AllocsPerRun(100, func() { relay.PickBinding(flows, bs, toHoA(443)) }); a > 0 {
		// toHoA allocates the test packet; pick itself must not.
		pkt := toHoA(443)
		if a := testing.AllocsPerRun(100, func() { relay.PickBinding(flows, bs, pkt) }); a != 0 {
			t.Fatalf("pick: %v allocations", a)
		}
	}
}
