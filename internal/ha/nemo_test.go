package ha

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/proto"
)

type bindingsPlane struct {
	mu  sync.Mutex
	got [][]bcache.Binding
}

func (p *bindingsPlane) SetBindings(bs []bcache.Binding) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, slices.Clone(bs))
	return nil
}

func (p *bindingsPlane) last() []bcache.Binding {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return nil
	}
	return p.got[len(p.got)-1]
}

// TestAgentMobileRouter: [[home_agent.mn]] prefixes make a mobile router
// (RFC 3963): its prefixes are checked, acknowledged with the R flag and
// handed to the data plane with its bindings; another home address is
// refused with 140.
func TestAgentMobileRouter(t *testing.T) {
	cfg, err := config.ParseHA("test.toml", []byte(`
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
allow_unauthenticated = true
[[home_agent.mn]]
home_address = "2001:db8:aaaa::100"
prefixes = ["2001:db8:aaab::/64", "2001:db8:aaac::/64"]
`))
	if err != nil {
		t.Fatal(err)
	}
	tr, pl, clk := newFake(), &bindingsPlane{}, clock.NewFake(time.Unix(1_700_000_000, 0))
	a, err := New(cfg, Deps{Transport: tr, Proxy: &fakeProxy{}, Plane: pl, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	mnp := netip.MustParsePrefix("2001:db8:aaac::/64")

	r := bu(coa1, 7, 10, proto.BID{ID: 1, PrioStatus: 9})
	r.Packet.MH.Flags |= proto.FlagR
	r.Packet.MH.Options.Prefixes = []netip.Prefix{mnp}
	tr.in <- r
	ba := tr.next(t)
	if ba.MH.Status != proto.StatusAccepted || ba.MH.Flags&proto.BAFlagR == 0 {
		t.Fatalf("BA status %v flags %#x, want accepted with R", ba.MH.Status, ba.MH.Flags)
	}
	if bs := pl.last(); len(bs) != 1 || !slices.Equal(bs[0].Prefixes, []netip.Prefix{mnp}) {
		t.Fatalf("data plane got %+v, want BID 1 with %v", bs, mnp)
	}

	// A prefix it does not own: 142, and the registered one stays.
	r = bu(coa1, 8, 10, proto.BID{ID: 1, PrioStatus: 9})
	r.Packet.MH.Flags |= proto.FlagR
	r.Packet.MH.Options.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8:dddd::/64")}
	tr.in <- r
	if ba := tr.next(t); ba.MH.Status != proto.StatusNotAuthorizedForPrefix {
		t.Fatalf("BA status %v, want 142", ba.MH.Status)
	}

	// A prefix length over 128, as mhsock delivers it (the options from
	// that one on are lost): 141, and the registered prefix stays.
	r = bu(coa1, 9, 10, proto.BID{ID: 1, PrioStatus: 9})
	r.Packet.MH.Flags |= proto.FlagR
	r.Err = &proto.ParseError{What: "option", Offset: 60, Err: proto.ErrBadPrefix}
	tr.in <- r
	if ba := tr.next(t); ba.MH.Status != proto.StatusInvalidPrefix || ba.MH.Flags&proto.BAFlagR == 0 {
		t.Fatalf("BA status %v flags %#x, want 141 with R", ba.MH.Status, ba.MH.Flags)
	}
	if bs := pl.last(); len(bs) != 1 || !slices.Equal(bs[0].Prefixes, []netip.Prefix{mnp}) {
		t.Fatalf("data plane got %+v after a 141, want BID 1 with %v", bs, mnp)
	}

	// Another home address is not a mobile router.
	r = bu(coa2, 1, 10, proto.BID{ID: 1})
	r.Packet.HomeAddress = netip.MustParseAddr("2001:db8:aaaa::200")
	r.Packet.MH.Flags |= proto.FlagR
	tr.in <- r
	if ba := tr.next(t); ba.MH.Status != proto.StatusMRNotAuthorized || ba.MH.Flags&proto.BAFlagR == 0 {
		t.Fatalf("BA status %v flags %#x, want 140 with R", ba.MH.Status, ba.MH.Flags)
	}

	// De-registration: the prefixes leave with the last binding (a
	// second later: 3 BAs a second per home address).
	clk.Advance(time.Second)
	r = bu(coa1, 10, 0, proto.BID{ID: 1})
	r.Packet.MH.Flags |= proto.FlagR
	tr.in <- r
	if ba := tr.next(t); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("de-registration BA status %v", ba.MH.Status)
	}
	if bs := pl.last(); len(bs) != 0 {
		t.Fatalf("data plane still has %+v", bs)
	}
}
