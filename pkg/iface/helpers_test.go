package iface

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/vishvananda/netlink"
)

var (
	hoa      = netip.MustParseAddr("2001:db8:aaaa::100")
	haAddr   = netip.MustParseAddr("2001:db8:aaaa::1")
	homePfx  = netip.MustParsePrefix("2001:db8:aaaa::/64")
	t0       = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ll1      = netip.MustParseAddr("fe80::1")
	ll2      = netip.MustParseAddr("fe80::2")
	foreign1 = netip.MustParsePrefix("2001:db8:1::/64")
	foreign2 = netip.MustParsePrefix("2001:db8:2::/64")
)

// Link states for mkLink.
const (
	up        = "up"        // IFF_UP|IFF_LOWER_UP, operstate up
	noCarrier = "nocarrier" // IFF_UP, operstate lowerlayerdown
	down      = "down"      // no flags, operstate down
	unknown   = "unknown"   // IFF_UP|IFF_LOWER_UP, operstate unknown (dummy, tun)
	dormant   = "dormant"   // IFF_UP|IFF_LOWER_UP, operstate dormant (Wi-Fi associating)
)

// mkLink records a link as netlink.LinkList returns it.
func mkLink(kind string, idx int, name, mac, state string) netlink.Link {
	a := netlink.LinkAttrs{Index: idx, Name: name, EncapType: "ether"}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			panic(err)
		}
		a.HardwareAddr = hw
	}
	switch state {
	case up:
		a.RawFlags, a.Flags, a.OperState = iffUp|iffLowerUp, net.FlagUp, netlink.OperUp
	case noCarrier:
		a.RawFlags, a.Flags, a.OperState = iffUp, net.FlagUp, netlink.OperLowerLayerDown
	case down:
		a.OperState = netlink.OperDown
	case unknown:
		a.RawFlags, a.Flags, a.OperState = iffUp|iffLowerUp, net.FlagUp, netlink.OperUnknown
	case dormant:
		a.RawFlags, a.Flags, a.OperState = iffUp|iffLowerUp, net.FlagUp, netlink.OperDormant
	default:
		panic("state " + state)
	}
	switch kind {
	case "device":
		return &netlink.Device{LinkAttrs: a}
	case "veth":
		return &netlink.Veth{LinkAttrs: a}
	case "tuntap":
		a.EncapType = "none"
		return &netlink.Tuntap{LinkAttrs: a}
	case "loopback":
		a.Flags |= net.FlagLoopback
		a.EncapType = "loopback"
		return &netlink.Device{LinkAttrs: a}
	}
	return &netlink.GenericLink{LinkAttrs: a, LinkType: kind}
}

func eth(idx int, name, state string) netlink.Link {
	return mkLink("device", idx, name, macFor(idx), state)
}

func macFor(idx int) string {
	return net.HardwareAddr{0x02, 0, 0, 0, 0, byte(idx)}.String()
}

// mkAddr records an address as netlink.AddrList returns it. lft: preferred
// and valid lifetimes (default forever).
func mkAddr(idx int, cidr string, flags int, lft ...uint32) netlink.Addr {
	p := netip.MustParsePrefix(cidr)
	scope := scopeUniverse
	switch {
	case p.Addr().IsLinkLocalUnicast():
		scope = scopeLink
	case p.Addr().IsLoopback():
		scope = scopeHost
	}
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	ipn := &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
	pref, valid := Forever, Forever
	if len(lft) == 2 {
		pref, valid = lft[0], lft[1]
	}
	return netlink.Addr{IPNet: ipn, LinkIndex: idx, Scope: scope, Flags: flags, PreferedLft: int(pref), ValidLft: int(valid)}
}

// fakeSource is a recorded kernel state that tests change.
type fakeSource struct {
	mu        sync.Mutex
	links     []netlink.Link
	addrs     []netlink.Addr
	linkCalls int
	err       error
}

func (f *fakeSource) LinkList() ([]netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.linkCalls++
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.links), nil
}

func (f *fakeSource) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l != nil || family != familyV6 {
		panic("AddrList must dump all IPv6 addresses")
	}
	return slices.Clone(f.addrs), nil
}

func (f *fakeSource) set(links []netlink.Link, addrs []netlink.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links, f.addrs = links, addrs
}

func (f *fakeSource) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeSource) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.linkCalls
}

// testSelector returns a selector for cfg, for calling build directly.
func testSelector(t testing.TB, cfg *Config) (*selector, *settings) {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(t0)
	}
	if cfg.ConfirmTimeout == 0 {
		// Most tables are about other rules; TestBuildReattachConfirm
		// tests the wait.
		cfg.ConfirmTimeout = -1
	}
	n, err := cfg.normalize()
	if err != nil {
		t.Fatal(err)
	}
	c := newSelector(&n)
	return c, &settings{rules: n.Rules, prioBID: map[uint16]uint8{}, metered: map[string]bool{}}
}

func co(bid uint16, ifname string, idx int, addr string, prio uint8, home bool) CareOf {
	return CareOf{BID: bid, Iface: ifname, Ifindex: idx, Addr: netip.MustParseAddr(addr), Priority: prio, HomeLink: home}
}

func bidsOf(cos []CareOf) map[string]uint16 {
	m := map[string]uint16{}
	for _, c := range cos {
		m[c.Iface+" "+c.Addr.String()] = c.BID
	}
	return m
}
