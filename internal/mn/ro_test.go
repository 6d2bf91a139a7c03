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
	ev := func(typ bul.EventType, e bul.Entry) {
		e.Peer, e.Role = cn, "cn"
		if !p.observeCN(bul.Event{Type: typ, Binding: &e}) {
			t.Fatal("a cn binding not taken")
		}
	}
	p.kickc = make(chan struct{}, 1)
	ev(bul.EventBinding, bul.Entry{BID: 1, CoA: coa(1), State: bul.StateRegistered})
	ev(bul.EventBinding, bul.Entry{BID: 2, CoA: coa(2), State: bul.StatePending})
	// Registered, but with a CoA the tunnel does not have (yet).
	ev(bul.EventBinding, bul.Entry{BID: 3, CoA: coa(9), State: bul.StateRegistered})
	want := []dataplane.RORoute{{BID: 1, Peer: cn, CoA: coa(1)}}
	if got := p.roRoutes(tunnels); !slices.Equal(got, want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	// A refresh keeps the route while the CoA stays; a refresh to a new
	// CoA is not the correspondent's binding yet.
	ev(bul.EventBinding, bul.Entry{BID: 1, CoA: coa(1), State: bul.StateRefreshing})
	if got := p.roRoutes(tunnels); !slices.Equal(got, want) {
		t.Fatalf("refreshing: routes %v, want %v", got, want)
	}
	tunnels[0].CoA = coa(7)
	ev(bul.EventBinding, bul.Entry{BID: 1, CoA: coa(7), State: bul.StateRefreshing})
	if got := p.roRoutes(tunnels); len(got) != 0 {
		t.Fatalf("refreshing to a new CoA: routes %v", got)
	}
	ev(bul.EventBinding, bul.Entry{BID: 1, CoA: coa(7), State: bul.StateRegistered})
	// A correspondent without MCoA: one binding without BID, on the
	// tunnel of its CoA.
	ev(bul.EventBinding, bul.Entry{BID: 0, CoA: coa(2), State: bul.StateRegistered})
	want = []dataplane.RORoute{{BID: 1, Peer: cn, CoA: coa(7)}, {BID: 2, Peer: cn, CoA: coa(2)}}
	if got := p.roRoutes(tunnels); !slices.Equal(got, want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	// Removed or de-registering: gone.
	ev(bul.EventRemoved, bul.Entry{BID: 0, CoA: coa(2)})
	ev(bul.EventBinding, bul.Entry{BID: 1, CoA: coa(7), State: bul.StateDeregistering})
	if got := p.roRoutes(tunnels); len(got) != 0 {
		t.Fatalf("routes %v, want none", got)
	}
	// Home agent bindings are not the correspondents'.
	if p.observeCN(bul.Event{Type: bul.EventBinding, Binding: &bul.Entry{Role: "ha"}}) {
		t.Error("an ha binding taken as a cn one")
	}
}
