package iface

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestBuildCareOfs(t *testing.T) {
	ll := func(idx int) netlink.Addr { return mkAddr(idx, "fe80::1/64", 0) }
	tests := []struct {
		name  string
		cfg   Config
		links []netlink.Link
		addrs []netlink.Addr
		want  []CareOf
	}{{
		name:  "one interface",
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::10/64", 0), ll(2)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::10", 0, false)},
	}, {
		name:  "no usable address",
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{
			mkAddr(2, "2001:db8:1::1/64", ifaTentative),
			mkAddr(2, "2001:db8:1::2/64", ifaTentative|ifaDADFailed),
			mkAddr(2, "2001:db8:1::3/64", ifaDeprecated, 0, 100),
			mkAddr(2, "2001:db8:1::4/64", ifaTemporary),
			mkAddr(2, "ff02::1/128", 0),
			ll(2),
		},
	}, {
		name:  "deprecated allowed",
		cfg:   Config{AllowDeprecated: true},
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::3/64", ifaDeprecated, 0, 100)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::3", 0, false)},
	}, {
		name:  "preferred before deprecated",
		cfg:   Config{AllowDeprecated: true},
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::3/64", ifaDeprecated, 0, 100), mkAddr(2, "2001:db8:1::10/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::10", 0, false)},
	}, {
		name:  "most recent first (the kernel lists the newest first)",
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::20/64", 0), mkAddr(2, "2001:db8:1::10/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::20", 0, false)},
	}, {
		name: "link states",
		links: []netlink.Link{
			eth(2, "eth0", down), eth(3, "eth1", noCarrier), eth(4, "eth2", dormant), eth(5, "eth3", unknown),
		},
		addrs: []netlink.Addr{
			mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:1::3/64", 0),
			mkAddr(4, "2001:db8:1::4/64", 0), mkAddr(5, "2001:db8:1::5/64", 0),
		},
		want: []CareOf{co(1, "eth3", 5, "2001:db8:1::5", 0, false)},
	}, {
		name: "never care-of interfaces",
		links: []netlink.Link{
			mkLink("loopback", 1, "lo", "", unknown),
			mkLink("veth", 2, "mip0", macFor(2), up),
			mkLink("tuntap", 3, "tun0", "", unknown),
			mkLink("ip6tnl", 4, "ip6tnl0", "", unknown),
			mkLink("dummy", 5, "dummy0", macFor(5), unknown),
			mkLink("wireguard", 6, "wg0", "", unknown),
			eth(7, "eth0", up),
		},
		addrs: []netlink.Addr{
			mkAddr(1, "::1/128", 0), mkAddr(1, "2001:db8:9::1/128", 0),
			mkAddr(2, "2001:db8:9::2/64", 0), mkAddr(3, "2001:db8:9::3/64", 0),
			mkAddr(4, "2001:db8:9::4/64", 0), mkAddr(5, "2001:db8:9::5/64", 0),
			mkAddr(6, "2001:db8:9::6/64", 0), mkAddr(7, "2001:db8:1::7/64", 0),
		},
		want: []CareOf{co(1, "eth0", 7, "2001:db8:1::7", 0, false)},
	}, {
		name:  "tunnel prefix configurable",
		cfg:   Config{TunnelPrefix: "mcoa"},
		links: []netlink.Link{mkLink("veth", 2, "mip0", macFor(2), up), mkLink("veth", 3, "mcoa0", macFor(3), up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:1::3/64", 0)},
		want:  []CareOf{co(1, "mip0", 2, "2001:db8:1::2", 0, false)},
	}, {
		name:  "excluded by rule",
		cfg:   Config{Rules: []Rule{{Match: "wwan*", Exclude: true}, {Match: "*", Priority: 9}}},
		links: []netlink.Link{eth(2, "eth0", up), eth(3, "wwan0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:3::3/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::2", 9, false)},
	}, {
		name:  "home address on one interface",
		cfg:   Config{HomeAddress: hoa},
		links: []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
		addrs: []netlink.Addr{
			mkAddr(2, "2001:db8:aaaa::7/64", 0), mkAddr(2, "2001:db8:aaaa::100/64", 0), mkAddr(2, "2001:db8:1::2/64", 0),
			mkAddr(3, "2001:db8:2::3/64", 0),
		},
		want: []CareOf{co(1, "eth0", 2, "2001:db8:aaaa::100", 0, true), co(2, "eth1", 3, "2001:db8:2::3", 0, false)},
	}, {
		name:  "address in the home prefix",
		cfg:   Config{HomeAddress: hoa},
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:aaaa::7/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:aaaa::7", 0, true)},
	}, {
		name:  "tentative home address is not home yet",
		cfg:   Config{HomeAddress: hoa},
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:aaaa::100/64", ifaTentative), mkAddr(2, "2001:db8:1::2/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::2", 0, false)},
	}, {
		name:  "explicit home prefix",
		cfg:   Config{HomePrefix: netip.MustParsePrefix("2001:db8:aa00::/40")},
		links: []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:aa55::1/64", 0), mkAddr(3, "2001:db8:1::3/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:aa55::1", 0, true), co(2, "eth1", 3, "2001:db8:1::3", 0, false)},
	}, {
		name:  "one BID per care-of address",
		cfg:   Config{BIDMode: BIDPerCoA},
		links: []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::20/64", 0), mkAddr(2, "2001:db8:5::10/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)},
		want: []CareOf{
			co(1, "eth0", 2, "2001:db8:1::20", 0, false),
			co(2, "eth0", 2, "2001:db8:5::10", 0, false),
			co(3, "eth1", 3, "2001:db8:2::3", 0, false),
		},
	}, {
		name:  "the same address on two interfaces is one binding",
		cfg:   Config{BIDMode: BIDPerCoA},
		links: []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
		addrs: []netlink.Addr{mkAddr(3, "2001:db8:1::10/64", 0), mkAddr(2, "2001:db8:1::10/64", 0)},
		want:  []CareOf{co(1, "eth0", 2, "2001:db8:1::10", 0, false)},
	}, {
		name: "priorities",
		cfg: Config{DefaultPriority: 5, Rules: []Rule{
			{Match: "eth*", Priority: 30}, {Match: "wlan?", Priority: 20}, {Match: "eth0", Priority: 99},
		}},
		links: []netlink.Link{eth(2, "eth0", up), eth(3, "wlan0", up), eth(4, "usb0", up)},
		addrs: []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0), mkAddr(4, "2001:db8:3::4/64", 0)},
		want: []CareOf{
			co(1, "eth0", 2, "2001:db8:1::2", 30, false),
			co(2, "wlan0", 3, "2001:db8:2::3", 20, false),
			co(3, "usb0", 4, "2001:db8:3::4", 5, false),
		},
	}, {
		name:  "IPv4 is not a care-of address",
		links: []netlink.Link{eth(2, "eth0", up)},
		addrs: []netlink.Addr{mkAddr(2, "192.0.2.1/24", 0)},
	}, {
		name:  "BIDs follow the interface index, not the dump order",
		links: []netlink.Link{eth(9, "eth9", up), eth(2, "eth2", up)},
		addrs: []netlink.Addr{mkAddr(9, "2001:db8:9::9/64", 0), mkAddr(2, "2001:db8:2::2/64", 0)},
		want:  []CareOf{co(1, "eth2", 2, "2001:db8:2::2", 0, false), co(2, "eth9", 9, "2001:db8:9::9", 0, false)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, st := testSelector(t, &tt.cfg)
			s := c.build(tt.links, tt.addrs, t0, st)
			if !equalCareOfs(s.CareOfs, tt.want) {
				t.Errorf("CareOfs\n got %+v\nwant %+v", s.CareOfs, tt.want)
			}
			if len(s.Interfaces) != len(tt.links) {
				t.Errorf("%d interfaces, want %d", len(s.Interfaces), len(tt.links))
			}
			for i := 1; i < len(s.Interfaces); i++ {
				if s.Interfaces[i-1].Index >= s.Interfaces[i].Index {
					t.Errorf("interfaces not sorted by index: %d before %d", s.Interfaces[i-1].Index, s.Interfaces[i].Index)
				}
			}
		})
	}
}

func TestBuildInterfaces(t *testing.T) {
	c, st := testSelector(t, &Config{HomeAddress: hoa, Rules: []Rule{{Match: "wwan0", Exclude: true}}})
	links := []netlink.Link{
		mkLink("loopback", 1, "lo", "", unknown),
		eth(2, "eth0", up), eth(3, "eth1", noCarrier), eth(4, "eth2", down),
		eth(5, "wwan0", up), eth(6, "eth3", up), eth(7, "eth4", up),
		mkLink("tuntap", 8, "tun0", "", unknown),
	}
	addrs := []netlink.Addr{
		mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(2, "fe80::2/64", 0),
		mkAddr(6, "2001:db8:1::6/64", ifaTentative),
		mkAddr(7, "2001:db8:aaaa::100/64", 0),
	}
	s := c.build(links, addrs, t0, st)
	want := map[string]IfState{
		"lo": StateIgnored, "eth0": StateCoA, "eth1": StateNoCarrier, "eth2": StateDown,
		"wwan0": StateExcluded, "eth3": StateNoAddress, "eth4": StateHome, "tun0": StateIgnored,
	}
	for _, ifi := range s.Interfaces {
		if ifi.State != want[ifi.Name] {
			t.Errorf("%s: state %q, want %q (reason %q)", ifi.Name, ifi.State, want[ifi.Name], ifi.Reason)
		}
	}
	eth0, _ := s.Interface("eth0")
	if !eth0.Up || !eth0.Carrier || eth0.CoA != netip.MustParseAddr("2001:db8:1::2") || eth0.BID != 1 || eth0.MAC != macFor(2) || eth0.Kind != "device" {
		t.Errorf("eth0 = %+v", eth0)
	}
	if len(eth0.Addrs) != 2 || !eth0.Addrs[0].CoA || eth0.Addrs[1].CoA || eth0.Addrs[1].Scope != "link" || eth0.Addrs[0].ValidLft != Forever {
		t.Errorf("eth0 addresses = %+v", eth0.Addrs)
	}
	eth1, _ := s.Interface("eth1")
	if !eth1.Up || eth1.Carrier {
		t.Errorf("eth1 = %+v", eth1)
	}
	eth3, _ := s.Interface("eth3")
	if !eth3.Addrs[0].Tentative || eth3.Addrs[0].CoA {
		t.Errorf("eth3 addresses = %+v", eth3.Addrs)
	}
	eth4, _ := s.Interface("eth4")
	if !eth4.HomeLink || !eth4.Addrs[0].Home || eth4.BID != 2 {
		t.Errorf("eth4 = %+v", eth4)
	}
	tun, _ := s.Interface("tun0")
	if tun.Reason != "virtual (tuntap)" {
		t.Errorf("tun0 reason %q", tun.Reason)
	}
}

// An address that appears while the watcher runs is the most recently
// configured one, wherever the kernel lists it.
func TestBuildNewestAddressWins(t *testing.T) {
	c, st := testSelector(t, &Config{})
	links := []netlink.Link{eth(2, "eth0", up)}
	a10, a20, a30 := mkAddr(2, "2001:db8:1::10/64", 0), mkAddr(2, "2001:db8:1::20/64", 0), mkAddr(2, "2001:db8:1::30/64", 0)
	if s := c.build(links, []netlink.Addr{a10}, t0, st); s.CareOfs[0].Addr != netip.MustParseAddr("2001:db8:1::10") {
		t.Fatalf("start: %+v", s.CareOfs)
	}
	s := c.build(links, []netlink.Addr{a10, a20}, t0.Add(time.Second), st)
	if got := s.CareOfs[0].Addr; got != netip.MustParseAddr("2001:db8:1::20") {
		t.Errorf("after ::20 appeared: CoA %v", got)
	}
	s = c.build(links, []netlink.Addr{a10, a20, a30}, t0.Add(2*time.Second), st)
	if got := s.CareOfs[0].Addr; got != netip.MustParseAddr("2001:db8:1::30") {
		t.Errorf("after ::30 appeared: CoA %v", got)
	}
	s = c.build(links, []netlink.Addr{a10, a20}, t0.Add(3*time.Second), st)
	if got := s.CareOfs[0].Addr; got != netip.MustParseAddr("2001:db8:1::20") {
		t.Errorf("after ::30 went: CoA %v", got)
	}
	if s.CareOfs[0].BID != 1 {
		t.Errorf("the interface's BID changed: %d", s.CareOfs[0].BID)
	}
}

func TestBuildMeteredAndOverrides(t *testing.T) {
	c, st := testSelector(t, &Config{Rules: []Rule{{Match: "eth*", Priority: 30}, {Match: "wwan*", Priority: 20}}, BIDMode: BIDPerCoA})
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "wwan0", up)}
	addrs := []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(2, "2001:db8:5::2/64", 0), mkAddr(3, "2001:db8:3::3/64", 0)}
	st.metered["wwan0"] = true
	s := c.build(links, addrs, t0, st)
	got := map[netip.Addr]uint8{}
	for _, x := range s.CareOfs {
		got[x.Addr] = x.Priority
	}
	if got[netip.MustParseAddr("2001:db8:3::3")] != 1 || got[netip.MustParseAddr("2001:db8:1::2")] != 30 {
		t.Errorf("metered wwan0 not capped at 1: %v", got)
	}
	if w, _ := s.Interface("wwan0"); !w.Metered {
		t.Error("wwan0 not shown metered")
	}
	// Overrides win over rules and the metered cap.
	bids := bidsOf(s.CareOfs)
	st.prioBID[bids["eth0 2001:db8:5::2"]] = 7
	st.prioBID[bids["wwan0 2001:db8:3::3"]] = 50
	s = c.build(links, addrs, t0, st)
	for _, x := range s.CareOfs {
		want := map[string]uint8{"2001:db8:1::2": 30, "2001:db8:5::2": 7, "2001:db8:3::3": 50}[x.Addr.String()]
		if x.Priority != want {
			t.Errorf("%v: priority %d, want %d", x.Addr, x.Priority, want)
		}
	}
}

func TestBuildHomeLinkByRA(t *testing.T) {
	homeRA := raInfo{Router: ll1, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: time.Hour}}}
	foreignRA := raInfo{Router: ll2, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{{Prefix: foreign1, Valid: time.Hour}}}
	haRA := raInfo{Router: ll2, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{
		{Prefix: netip.MustParsePrefix("2001:db8:ffff::/64"), Valid: time.Hour, RouterAddr: haAddr},
	}}
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)}
	addrs := []netlink.Addr{mkAddr(3, "2001:db8:2::3/64", 0)}

	t.Run("home prefix announced, no address yet", func(t *testing.T) {
		c, st := testSelector(t, &Config{HomeAddress: hoa})
		c.ra.update(2, homeRA, t0)
		s := c.build(links, addrs, t0, st)
		want := []CareOf{co(1, "eth0", 2, hoa.String(), 0, true), co(2, "eth1", 3, "2001:db8:2::3", 0, false)}
		if !equalCareOfs(s.CareOfs, want) {
			t.Errorf("got %+v\nwant %+v", s.CareOfs, want)
		}
		eth0, _ := s.Interface("eth0")
		if !eth0.HomeLink || eth0.State != StateHome || len(eth0.Routers) != 1 || eth0.Routers[0] != ll1 ||
			len(eth0.Prefixes) != 1 || eth0.Prefixes[0] != homePfx || eth0.Moves != 1 {
			t.Errorf("eth0 = %+v", eth0)
		}
	})
	t.Run("home agent as router address", func(t *testing.T) {
		c, st := testSelector(t, &Config{HomeAddress: hoa, HomeAgent: haAddr})
		c.ra.update(2, haRA, t0)
		s := c.build(links, addrs, t0, st)
		if eth0, _ := s.Interface("eth0"); !eth0.HomeLink {
			t.Errorf("eth0 not on the home link: %+v", eth0)
		}
	})
	t.Run("home prefix without home address", func(t *testing.T) {
		c, st := testSelector(t, &Config{HomePrefix: homePfx})
		c.ra.update(2, homeRA, t0)
		s := c.build(links, addrs, t0, st)
		if len(s.CareOfs) != 1 || s.CareOfs[0].Iface != "eth1" {
			t.Errorf("CareOfs %+v: a home-link entry needs an address", s.CareOfs)
		}
		if eth0, _ := s.Interface("eth0"); !eth0.HomeLink {
			t.Errorf("eth0 not on the home link: %+v", eth0)
		}
	})
	t.Run("foreign router", func(t *testing.T) {
		c, st := testSelector(t, &Config{HomeAddress: hoa})
		c.ra.update(2, foreignRA, t0)
		s := c.build(links, addrs, t0, st)
		if eth0, _ := s.Interface("eth0"); eth0.HomeLink || eth0.Moves != 1 || eth0.State != StateNoAddress {
			t.Errorf("eth0 = %+v", eth0)
		}
	})
	t.Run("moved away: stale home-prefix address, foreign router", func(t *testing.T) {
		// The kernel keeps the home link's SLAAC address after a move; the
		// foreign router heard since says the link is not home any more.
		c, st := testSelector(t, &Config{HomeAddress: hoa})
		stale := append([]netlink.Addr{mkAddr(2, "2001:db8:aaaa::ff:fe00:1/64", 0), mkAddr(2, "2001:db8:1::1/64", 0)}, addrs...)
		s := c.build(links, stale, t0, st)
		if eth0, _ := s.Interface("eth0"); !eth0.HomeLink {
			t.Fatalf("before any RA, a home-prefix address means home: %+v", eth0)
		}
		c.ra.update(2, foreignRA, t0)
		s = c.build(links, stale, t0, st)
		eth0, _ := s.Interface("eth0")
		if eth0.HomeLink || eth0.State != StateCoA || eth0.CoA != netip.MustParseAddr("2001:db8:1::1") {
			t.Errorf("after a foreign RA: %+v", eth0)
		}
	})
	t.Run("carrier loss forgets the routers", func(t *testing.T) {
		c, st := testSelector(t, &Config{HomeAddress: hoa})
		c.ra.update(2, homeRA, t0)
		s := c.build([]netlink.Link{eth(2, "eth0", noCarrier), eth(3, "eth1", up)}, addrs, t0, st)
		if len(s.CareOfs) != 1 {
			t.Errorf("CareOfs %+v", s.CareOfs)
		}
		s = c.build(links, addrs, t0, st)
		if eth0, _ := s.Interface("eth0"); eth0.HomeLink || len(eth0.Routers) != 0 || eth0.Moves != 1 {
			t.Errorf("after the carrier came back, before any RA: %+v", eth0)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		c, st := testSelector(t, &Config{HomeAddress: hoa})
		c.ra.update(2, homeRA, t0)
		changed, next := c.ra.prune(t0.Add(time.Minute))
		if changed || !next.Equal(t0.Add(30*time.Minute)) {
			t.Errorf("prune at +1m: changed %v next %v", changed, next)
		}
		if changed, _ = c.ra.prune(t0.Add(time.Hour)); !changed {
			t.Error("nothing expired after an hour")
		}
		s := c.build(links, addrs, t0.Add(time.Hour), st)
		if eth0, _ := s.Interface("eth0"); eth0.HomeLink {
			t.Errorf("still home after the RA expired: %+v", eth0)
		}
	})
}

func TestRAMovement(t *testing.T) {
	s := newRAState(&Config{HomePrefix: homePfx})
	ra := raInfo{Router: ll1, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: foreign1, Valid: time.Hour}}}
	steps := []struct {
		ra      raInfo
		changed bool
		moves   uint64
	}{
		{ra, true, 1},  // first router
		{ra, false, 1}, // the same again
		{raInfo{Router: ll1, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: foreign2, Valid: time.Hour}}}, true, 2},                              // new prefix
		{raInfo{Router: ll2, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: foreign2, Valid: time.Hour}}}, true, 3},                              // new router
		{raInfo{Router: ll2, Lifetime: 0, Prefixes: []raPrefix{{Prefix: foreign2, Valid: 0}}}, true, 3},                                                // goodbye
		{raInfo{Router: ll1, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: infinite}}}, true, 4},                                // home
		{raInfo{Router: ll1, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: infinite}}}, false, 4},                               // still home
		{raInfo{Router: ll1, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: 0}, {Prefix: foreign1, Valid: time.Hour}}}, true, 4}, // home withdrawn
	}
	for i, st := range steps {
		if got := s.update(7, st.ra, t0); got != st.changed {
			t.Errorf("step %d: changed %v, want %v", i, got, st.changed)
		}
		if v := s.view(7, t0); v.moves != st.moves {
			t.Errorf("step %d: moves %d, want %d", i, v.moves, st.moves)
		}
	}
	v := s.view(7, t0)
	if v.home || !reflect.DeepEqual(v.routers, []netip.Addr{ll1}) || !reflect.DeepEqual(v.prefixes, []netip.Prefix{foreign1, foreign2}) {
		t.Errorf("final view %+v", v)
	}
}

// The control API serves Snapshots as JSON: the field names are a contract.
func TestSnapshotJSON(t *testing.T) {
	c, st := testSelector(t, &Config{HomeAddress: hoa})
	s := c.build([]netlink.Link{eth(2, "eth0", up), eth(3, "eth1", noCarrier)},
		[]netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0)}, t0, st)
	s.Generation = 7
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	cos := m["care_ofs"].([]any)
	co0 := cos[0].(map[string]any)
	if m["generation"] != 7.0 || m["bid_mode"] != "interface" || co0["bid"] != 1.0 || co0["interface"] != "eth0" ||
		co0["ifindex"] != 2.0 || co0["coa"] != "2001:db8:1::2" || co0["home_link"] != false || co0["priority"] != 0.0 {
		t.Errorf("JSON %s", b)
	}
	ifs := m["interfaces"].([]any)
	eth1 := ifs[1].(map[string]any)
	if eth1["name"] != "eth1" || eth1["state"] != "no-carrier" || eth1["carrier"] != false || eth1["up"] != true {
		t.Errorf("eth1 JSON %v", eth1)
	}
	if _, ok := eth1["coa"]; ok {
		t.Errorf("an interface without care-of address has a coa key: %v", eth1)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || !equalCareOfs(back.CareOfs, s.CareOfs) || back.Interfaces[0].CoA != s.Interfaces[0].CoA {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

// A link back from a carrier loss may be another link: its old care-of
// address waits for a Router Advertisement (or the timeout) before it is
// used again, so that a stale address is never registered.
func TestBuildReattachConfirm(t *testing.T) {
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)}
	down := []netlink.Link{eth(2, "eth0", noCarrier), eth(3, "eth1", up)}
	addrs := []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)}
	foreignRA := raInfo{Router: ll2, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{{Prefix: foreign1, Valid: time.Hour}}}
	ifaces := func(s *Snapshot) []string {
		var out []string
		for _, c := range s.CareOfs {
			out = append(out, c.Iface)
		}
		return out
	}

	c, st := testSelector(t, &Config{HomeAddress: hoa, ConfirmTimeout: time.Second})
	if got := ifaces(c.build(links, addrs, t0, st)); !slices.Equal(got, []string{"eth0", "eth1"}) {
		t.Fatalf("at start: %v (no wait for links never detached)", got)
	}
	c.build(down, addrs, t0, st)
	s := c.build(links, addrs, t0.Add(time.Millisecond), st)
	if got := ifaces(s); !slices.Equal(got, []string{"eth1"}) {
		t.Fatalf("right after the carrier came back: %v, want eth0 held back", got)
	}
	if eth0, _ := s.Interface("eth0"); eth0.State != StateNoAddress || eth0.Reason == "" {
		t.Errorf("eth0 while confirming: %+v", eth0)
	}
	if _, next := c.ra.prune(t0.Add(time.Millisecond)); !next.Equal(t0.Add(time.Second + time.Millisecond)) {
		t.Errorf("next wake-up %v, want the end of the wait", next)
	}
	// A Router Advertisement ends the wait at once.
	if !c.ra.update(2, foreignRA, t0.Add(2*time.Millisecond)) {
		t.Error("an RA that confirms the link is not reported as a change")
	}
	if got := ifaces(c.build(links, addrs, t0.Add(3*time.Millisecond), st)); !slices.Equal(got, []string{"eth0", "eth1"}) {
		t.Fatalf("after an RA: %v", got)
	}
	// Without an RA, the timeout ends it.
	c.build(down, addrs, t0.Add(time.Second), st)
	c.build(links, addrs, t0.Add(time.Second), st)
	if got := ifaces(c.build(links, addrs, t0.Add(2*time.Second), st)); !slices.Equal(got, []string{"eth0", "eth1"}) {
		t.Fatalf("after the timeout: %v", got)
	}
}

// Container and VM interfaces are never care-of interfaces, unless a rule
// names them.
func TestDefaultExcluded(t *testing.T) {
	c, st := testSelector(t, &Config{Rules: []Rule{{Match: "virbr1", Priority: 5}}})
	links := []netlink.Link{
		eth(2, "enp3s0", up), mkLink("bridge", 3, "docker0", "02:00:00:00:00:03", up),
		mkLink("veth", 4, "veth1a2b", "02:00:00:00:00:04", up), mkLink("bridge", 5, "br-0a1b2c", "02:00:00:00:00:05", up),
		mkLink("bridge", 6, "virbr0", "02:00:00:00:00:06", up), mkLink("bridge", 7, "virbr1", "02:00:00:00:00:07", up),
	}
	var addrs []netlink.Addr
	for i := 2; i <= 7; i++ {
		addrs = append(addrs, mkAddr(i, fmt.Sprintf("2001:db8:%d::2/64", i), 0))
	}
	s := c.build(links, addrs, t0, st)
	want := map[string]IfState{"enp3s0": StateCoA, "docker0": StateExcluded, "veth1a2b": StateExcluded,
		"br-0a1b2c": StateExcluded, "virbr0": StateExcluded, "virbr1": StateCoA}
	for _, ifi := range s.Interfaces {
		if ifi.State != want[ifi.Name] {
			t.Errorf("%s: state %q, want %q (reason %q)", ifi.Name, ifi.State, want[ifi.Name], ifi.Reason)
		}
	}
	if len(s.CareOfs) != 2 {
		t.Errorf("care-of addresses %+v, want enp3s0's and virbr1's", s.CareOfs)
	}
}

func TestDefaultRulesPredictableNames(t *testing.T) {
	for name, want := range map[string]uint8{"enp3s0": 30, "eth0": 30, "wlp2s0": 20, "wlan0": 20, "wwan0": 10, "wwp0s20f0u6": 10, "usb0": 0} {
		r, ok := matchRule(DefaultRules, name)
		if r.Priority != want || ok != (want != 0) {
			t.Errorf("%s: rule %+v (%v), want priority %d", name, r, ok, want)
		}
	}
}
