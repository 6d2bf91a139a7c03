package mn

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

func TestRORoutes(t *testing.T) {
	cn := netip.MustParseAddr("2001:db8:cccc::1")
	coa := func(i int) netip.Addr { return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i), 15: 1}) }
	tunnels := []dataplane.Tunnel{{BID: 1, CoA: coa(1)}, {BID: 2, CoA: coa(2)}, {BID: 3, CoA: coa(3)}}
	p := &dataPath{}
	var snap []bul.Entry
	// set puts a correspondent binding in the engine's snapshot (its
	// tunnel its BID's unless tbid says otherwise).
	set := func(e bul.Entry, tbid ...uint16) {
		e.Peer, e.Role, e.TunnelBID = cn, "cn", e.BID
		if len(tbid) > 0 {
			e.TunnelBID = tbid[0]
		}
		removeCN(&snap, e.BID)
		snap = append(snap, e)
	}
	set(bul.Entry{BID: 1, CoA: coa(1), State: bul.StateRegistered})
	set(bul.Entry{BID: 2, CoA: coa(2), State: bul.StatePending})
	// Registered, but with a CoA the tunnel does not have (yet).
	set(bul.Entry{BID: 3, CoA: coa(9), State: bul.StateRegistered})
	// Home agent bindings are not the correspondents'.
	snap = append(snap, bul.Entry{Role: "ha", BID: 2, TunnelBID: 2, CoA: coa(2), State: bul.StateRegistered})
	want := []dataplane.RORoute{{BID: 1, Peer: cn, CoA: coa(1)}}
	if got := p.roRoutes(snap, tunnels); !slices.Equal(got, want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	// A refresh keeps the route while the CoA stays; a refresh to a new
	// CoA is not the correspondent's binding yet.
	set(bul.Entry{BID: 1, CoA: coa(1), State: bul.StateRefreshing})
	if got := p.roRoutes(snap, tunnels); !slices.Equal(got, want) {
		t.Fatalf("refreshing: routes %v, want %v", got, want)
	}
	tunnels[0].CoA = coa(7)
	set(bul.Entry{BID: 1, CoA: coa(7), State: bul.StateRefreshing})
	if got := p.roRoutes(snap, tunnels); len(got) != 0 {
		t.Fatalf("refreshing to a new CoA: routes %v", got)
	}
	set(bul.Entry{BID: 1, CoA: coa(7), State: bul.StateRegistered})
	// A correspondent without MCoA: one binding without BID, on the
	// tunnel the engine numbers (its care-of address's).
	set(bul.Entry{BID: 0, CoA: coa(2), State: bul.StateRegistered}, 2)
	want = []dataplane.RORoute{{BID: 1, Peer: cn, CoA: coa(7)}, {BID: 2, Peer: cn, CoA: coa(2)}}
	if got := p.roRoutes(snap, tunnels); !slices.Equal(got, want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	// Removed or de-registering: gone.
	removeCN(&snap, 0)
	set(bul.Entry{BID: 1, CoA: coa(7), State: bul.StateDeregistering})
	if got := p.roRoutes(snap, tunnels); len(got) != 0 {
		t.Fatalf("routes %v, want none", got)
	}
}

// removeCN takes the correspondent binding of bid out of snap.
func removeCN(snap *[]bul.Entry, bid uint16) {
	*snap = slices.DeleteFunc(*snap, func(e bul.Entry) bool { return e.Role == "cn" && e.BID == bid })
}
