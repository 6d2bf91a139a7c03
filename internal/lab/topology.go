package lab

import (
	"fmt"
	"net/netip"
	"slices"
)

// Node names. A node's namespace is the lab's Prefix followed by the name.
const (
	MN   = "mn"   // the mobile node
	AR1  = "ar1"  // access router of eth0
	AR2  = "ar2"  // access router of wlan0
	AR3  = "ar3"  // access router of wwan0
	Core = "core" // the routed core
	HA   = "ha"   // the home agent, on the home link
	CN   = "cn"   // the correspondent node
	// Host is a passenger's device behind the mobile router, in the
	// vehicle lab only (Config.Vehicle).
	Host = "host"
)

// Nodes lists every node of the lab, in the order they are built.
var Nodes = []string{MN, AR1, AR2, AR3, Core, HA, CN}

// allNodes are Nodes and the vehicle lab's Host: what may exist.
var allNodes = append(slices.Clone(Nodes), Host)

// Interface names inside the nodes. They are fixed because every node is a
// namespace of its own; only namespace names carry the lab's prefix.
const (
	// HomeIface is the HA's interface on the home link (a veth whose peer is a
	// port of HomeBridge).
	HomeIface = "home0"
	// HomeBridge is the home link itself, a bridge inside the ha namespace;
	// AttachHome plugs MN interfaces into it.
	HomeBridge = "homebr"
	// Uplink is the name of the interface towards core in ar1..3, ha and cn.
	// In core, the interface towards node X is named X.
	Uplink = "core0"
	// RouterDownlink is the name of an access router's interface towards the MN.
	RouterDownlink = "down0"
)

// Well-known addresses of the lab.
var (
	HomePrefix = netip.MustParsePrefix("2001:db8:aaaa::/64")
	HAAddr     = netip.MustParseAddr("2001:db8:aaaa::1")
	// HoA is the MN's home address (configured by mcoad, not by the lab).
	HoA      = netip.MustParseAddr("2001:db8:aaaa::100")
	CNPrefix = netip.MustParsePrefix("2001:db8:cccc::/64")
	CNAddr   = netip.MustParseAddr("2001:db8:cccc::1")
	// MobileNetPrefix is the vehicle lab's mobile network (NEMO): the MN,
	// as mobile router, has MRLanAddr on Ingress and advertises the prefix
	// there; Host configures its address by SLAAC on HostIface.
	MobileNetPrefix = netip.MustParsePrefix("2001:db8:bbbb::/64")
	MRLanAddr       = netip.MustParseAddr("2001:db8:bbbb::1")
)

// Interface names of the vehicle lab's mobile network.
const (
	Ingress   = "lan0" // the MN's interface towards Host
	HostIface = "eth0" // Host's interface towards the MN
	hostMAC   = "02:00:00:00:00:b1"
)

// Access describes one of the MN's access links.
type Access struct {
	Iface      string       // MN-side interface name
	Router     string       // access router node
	Prefix     netip.Prefix // prefix the router advertises
	RouterAddr netip.Addr   // router's address on the link
	MAC        string       // fixed MN-side MAC, so SLAAC addresses are predictable across moves
}

// MNIfaces are the MN's access interfaces, Accesses' in their order (the
// order of DefaultInterfaceRules' priorities, best first).
var MNIfaces = func() []string {
	var out []string
	for _, a := range Accesses {
		out = append(out, a.Iface)
	}
	return out
}()

// Accesses lists the MN's three access links.
var Accesses = []Access{
	{"eth0", AR1, netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParseAddr("2001:db8:1::1"), "02:00:00:00:00:01"},
	{"wlan0", AR2, netip.MustParsePrefix("2001:db8:2::/64"), netip.MustParseAddr("2001:db8:2::1"), "02:00:00:00:00:02"},
	{"wwan0", AR3, netip.MustParsePrefix("2001:db8:3::/64"), netip.MustParseAddr("2001:db8:3::1"), "02:00:00:00:00:03"},
}

// AccessOf returns the access link of an MN interface.
func AccessOf(mnIface string) (Access, error) {
	i := slices.IndexFunc(Accesses, func(a Access) bool { return a.Iface == mnIface })
	if i < 0 {
		return Access{}, fmt.Errorf("%w: %q (want eth0, wlan0 or wwan0)", ErrUnknownIface, mnIface)
	}
	return Accesses[i], nil
}

// homePort is the name of an MN interface's peer while it is plugged into
// the home link.
func homePort(mnIface string) string { return "h" + mnIface }

// transit is a point-to-point link between core and another node.
type transit struct {
	node   string
	net    netip.Prefix
	core   netip.Addr   // core's end (::1)
	peer   netip.Addr   // node's end (::2)
	behind netip.Prefix // prefix routed to the node ({} if none)
}

func mkTransit(node, net string, behind netip.Prefix) transit {
	p := netip.MustParsePrefix(net)
	return transit{
		node:   node,
		net:    p,
		core:   p.Addr().Next(),
		peer:   p.Addr().Next().Next(),
		behind: behind,
	}
}

// transits are core's links: 2001:db8:ff0K::/64 with core at ::1.
var transits = []transit{
	mkTransit(AR1, "2001:db8:ff01::/64", Accesses[0].Prefix),
	mkTransit(AR2, "2001:db8:ff02::/64", Accesses[1].Prefix),
	mkTransit(AR3, "2001:db8:ff03::/64", Accesses[2].Prefix),
	mkTransit(HA, "2001:db8:ff0a::/64", HomePrefix),
	mkTransit(CN, "2001:db8:ff0c::/64", CNPrefix),
}

// isRouter reports whether a node forwards packets.
func isRouter(node string) bool {
	switch node {
	case AR1, AR2, AR3, Core, HA:
		return true
	}
	return false
}
