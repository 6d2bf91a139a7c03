package homeagent

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// TestHAMobileNetworks: a mobile router's prefixes are routed into the
// device, packets to them find its bindings (the longest prefix wins), and
// only its home address and networks are accepted as inner sources.
func TestHAMobileNetworks(t *testing.T) {
	mr2 := netip.MustParseAddr("2001:db8:aaaa::200")
	net1 := netip.MustParsePrefix("2001:db8:aaab::/48")
	net1a := netip.MustParsePrefix("2001:db8:aaab:1::/64")
	want, err := dataplane.CheckHABindings([]dataplane.HABinding{
		{HoA: pkttest.THoA, BID: 1, CoA: pkttest.TCoA[0], Priority: 10, Prefixes: []netip.Prefix{net1}},
		{HoA: pkttest.THoA, BID: 2, CoA: pkttest.TCoA[1], Priority: 30, Prefixes: []netip.Prefix{net1}},
		{HoA: mr2, BID: 1, CoA: pkttest.TCoA[2], Prefixes: []netip.Prefix{net1a}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _, homes := buildHAState(want, nil)
	for _, p := range []string{"2001:db8:aaaa::100/128", "2001:db8:aaaa::200/128", "2001:db8:aaab::/48", "2001:db8:aaab:1::/64"} {
		if !homes[netip.MustParsePrefix(p)] {
			t.Errorf("no route for %s: %v", p, homes)
		}
	}
	if len(homes) != 4 {
		t.Errorf("routes %v, want 4", homes)
	}
	for _, tc := range []struct {
		dst string
		hoa netip.Addr
	}{
		{"2001:db8:aaab:2::5", pkttest.THoA},
		{"2001:db8:aaab:1::5", mr2}, // longest prefix
		{"2001:db8:aaaa::100", pkttest.THoA},
		{"2001:db8:aaac::1", netip.Addr{}},
	} {
		bs := st.bindings(netip.MustParseAddr(tc.dst).As16())
		switch {
		case !tc.hoa.IsValid() && len(bs) != 0:
			t.Errorf("%s: bindings %v, want none", tc.dst, bs)
		case tc.hoa.IsValid() && (len(bs) == 0 || bs[0].b.HoA != tc.hoa):
			t.Errorf("%s: bindings %v, want %v's", tc.dst, bs, tc.hoa)
		}
	}
	b := st.byHoA[pkttest.THoA.As16()][0]
	for _, tc := range []struct {
		src string
		ok  bool
	}{
		{"2001:db8:aaaa::100", true},
		{"2001:db8:aaab:7::9", true},
		{"2001:db8:aaaa::200", false},
		{"2001:db8:aaac::1", false},
	} {
		if got := b.sourceOK(netip.MustParseAddr(tc.src).As16()); got != tc.ok {
			t.Errorf("source %s through %v: %v, want %v", tc.src, pkttest.THoA, got, tc.ok)
		}
	}
	// Without prefixes only the home address.
	st2, _, _ := buildHAState([]dataplane.HABinding{{HoA: pkttest.THoA, BID: 1, CoA: pkttest.TCoA[0]}}, nil)
	if st2.byHoA[pkttest.THoA.As16()][0].sourceOK(netip.MustParseAddr("2001:db8:aaab::1").As16()) || st2.bindings(netip.MustParseAddr("2001:db8:aaab::1").As16()) != nil {
		t.Error("a mobile host's binding accepts a network")
	}
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("2001:db8:aaab::1/48"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:aaaa::/64")} {
		if _, err := dataplane.CheckHABindings([]dataplane.HABinding{{HoA: pkttest.THoA, BID: 1, CoA: pkttest.TCoA[0], Prefixes: []netip.Prefix{bad}}}); !errors.Is(err, dataplane.ErrInvalid) {
			t.Errorf("prefix %v accepted: %v", bad, err)
		}
	}
}
