package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Interface indexes of the access links' ends (see build).
const (
	mnIfindexBase     = 10 // eth0, wlan0, wwan0: 10, 11, 12
	routerDownIfindex = 20 // down0 in each access router
)

// sysctl is one /proc/sys/net setting (path relative to /proc/sys).
type sysctl struct{ key, val string }

// nodeSysctls are set right after a namespace is made, before any link
// exists, so that every interface inherits them through "default".
func (l *Lab) nodeSysctls(node string) []sysctl {
	dad := "0" // no DAD: the lab must come up fast
	if node == MN && l.cfg.DAD {
		dad = "1"
	}
	s := []sysctl{
		// DAD runs when either all or the interface's value is positive.
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", dad},
		// Static addresses survive CutLink (admin down of the router side).
		{"net/ipv6/conf/all/keep_addr_on_down", "1"},
		{"net/ipv6/conf/default/keep_addr_on_down", "1"},
	}
	switch {
	case node == MN:
		s = append(s,
			sysctl{"net/ipv6/conf/all/forwarding", "0"},
			sysctl{"net/ipv6/conf/default/accept_ra", "2"},
			// Solicit at once and every second, so a moved interface
			// learns its new prefix quickly.
			sysctl{"net/ipv6/conf/default/router_solicitation_delay", "0"},
			sysctl{"net/ipv6/conf/default/router_solicitation_interval", "1"},
			sysctl{"net/ipv6/conf/default/router_solicitations", "5"},
		)
	case node == Host:
		s = append(s,
			sysctl{"net/ipv6/conf/all/forwarding", "0"},
			sysctl{"net/ipv6/conf/default/accept_ra", "1"},
			sysctl{"net/ipv6/conf/default/router_solicitation_delay", "0"},
			sysctl{"net/ipv6/conf/default/router_solicitation_interval", "1"},
		)
	case isRouter(node):
		s = append(s,
			sysctl{"net/ipv6/conf/all/forwarding", "1"},
			sysctl{"net/ipv6/conf/default/accept_ra", "0"},
		)
	default:
		s = append(s,
			sysctl{"net/ipv6/conf/all/forwarding", "0"},
			sysctl{"net/ipv6/conf/default/accept_ra", "0"},
		)
	}
	return s
}

func pfx(a netip.Addr, bits int) string { return netip.PrefixFrom(a, bits).String() }

// build creates the namespaces, links, addresses and routes. The MN's links
// are left down (Up raises them once radvd runs).
func (l *Lab) build(ctx context.Context) error {
	ns := l.NS
	// Namespaces, loopback, sysctls.
	for _, n := range Nodes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lab: building: %w", err)
		}
		if err := l.ip(ctx, "netns", "add", ns(n)); err != nil {
			return err
		}
		if err := l.ip(ctx, "-n", ns(n), "link", "set", "lo", "up"); err != nil {
			return err
		}
		if err := setSysctls(ns(n), l.nodeSysctls(n)); err != nil {
			return fmt.Errorf("lab: sysctls of %s: %w", ns(n), err)
		}
	}

	var cmds [][]string
	add := func(args ...string) { cmds = append(cmds, args) }

	// Access links: mn <-> arN. The two ends get different interface
	// indexes: the kernel treats a carrier change of a veth whose peer has
	// its own index as not urgent (linkwatch_urgent_event compares ifindex
	// and iflink without regard to namespaces) and then holds it back up
	// to a second after the previous link event, which would blur every
	// fail-over time measured in the lab.
	for i, a := range Accesses {
		add("-n", ns(MN), "link", "add", a.Iface, "index", strconv.Itoa(mnIfindexBase+i), "address", a.MAC, "type", "veth",
			"peer", "name", RouterDownlink, "index", strconv.Itoa(routerDownIfindex), "netns", ns(a.Router))
		add("-n", ns(a.Router), "addr", "add", pfx(a.RouterAddr, 64), "dev", RouterDownlink, "nodad")
		add("-n", ns(a.Router), "link", "set", RouterDownlink, "up")
	}
	// Transit links: core <-> arN, ha, cn.
	for _, t := range transits {
		add("-n", ns(Core), "link", "add", t.node, "type", "veth", "peer", "name", Uplink, "netns", ns(t.node))
		add("-n", ns(Core), "addr", "add", pfx(t.core, 64), "dev", t.node, "nodad")
		add("-n", ns(t.node), "addr", "add", pfx(t.peer, 64), "dev", Uplink, "nodad")
		add("-n", ns(Core), "link", "set", t.node, "up")
		add("-n", ns(t.node), "link", "set", Uplink, "up")
	}
	// The home link: a bridge with the HA's home0 (through its veth peer)
	// as the first port; AttachHome adds MN interfaces as further ports.
	// No multicast snooping (there is no MLD querier), no forwarding delay.
	add("-n", ns(HA), "link", "add", HomeBridge, "type", "bridge", "mcast_snooping", "0", "forward_delay", "0")
	add("-n", ns(HA), "link", "set", HomeBridge, "addrgenmode", "none")
	add("-n", ns(HA), "link", "add", HomeIface, "type", "veth", "peer", "name", HomeIface+"p")
	add("-n", ns(HA), "link", "set", HomeIface+"p", "addrgenmode", "none")
	add("-n", ns(HA), "link", "set", HomeIface+"p", "master", HomeBridge)
	add("-n", ns(HA), "addr", "add", pfx(HAAddr, 64), "dev", HomeIface, "nodad")
	add("-n", ns(HA), "link", "set", HomeBridge, "up")
	add("-n", ns(HA), "link", "set", HomeIface+"p", "up")
	add("-n", ns(HA), "link", "set", HomeIface, "up")
	// The CN's address, routed to it by core.
	add("-n", ns(CN), "addr", "add", pfx(CNAddr, 128), "dev", "lo")

	// Static routes, now that every link is up.
	for _, t := range transits {
		add("-n", ns(t.node), "-6", "route", "add", "default", "via", t.core.String(), "dev", Uplink)
		add("-n", ns(Core), "-6", "route", "add", t.behind.String(), "via", t.peer.String(), "dev", t.node)
	}

	for _, c := range cmds {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lab: building: %w", err)
		}
		if err := l.ip(ctx, c...); err != nil {
			return fmt.Errorf("lab: building: %w", err)
		}
	}
	return nil
}

// buildVehicle adds the vehicle lab's mobile network: Host behind the MN's
// Ingress, on MobileNetPrefix. The MN's end holds MRLanAddr and forwards
// (its own flag: the namespace's forwarding is mcoad's to switch on); the
// host's end is left down until radvd runs.
func (l *Lab) buildVehicle(ctx context.Context) error {
	ns := l.NS
	if err := l.ip(ctx, "netns", "add", ns(Host)); err != nil {
		return err
	}
	if err := l.ip(ctx, "-n", ns(Host), "link", "set", "lo", "up"); err != nil {
		return err
	}
	if err := setSysctls(ns(Host), l.nodeSysctls(Host)); err != nil {
		return fmt.Errorf("lab: sysctls of %s: %w", ns(Host), err)
	}
	if err := l.ip(ctx, "-n", ns(MN), "link", "add", Ingress, "type", "veth",
		"peer", "name", HostIface, "address", hostMAC, "netns", ns(Host)); err != nil {
		return fmt.Errorf("lab: building: %w", err)
	}
	if err := setSysctls(ns(MN), []sysctl{
		{"net/ipv6/conf/" + Ingress + "/forwarding", "1"},
		{"net/ipv6/conf/" + Ingress + "/accept_ra", "0"},
	}); err != nil {
		return fmt.Errorf("lab: sysctls of %s: %w", ns(MN), err)
	}
	// The home agent owns the mobile network's route in the core, as it
	// would announce it to its routers.
	ha := transits[slices.IndexFunc(transits, func(t transit) bool { return t.node == HA })]
	for _, c := range [][]string{
		{"-n", ns(MN), "addr", "add", pfx(MRLanAddr, 64), "dev", Ingress, "nodad"},
		{"-n", ns(MN), "link", "set", Ingress, "up"},
		{"-n", ns(Core), "-6", "route", "add", MobileNetPrefix.String(), "via", ha.peer.String(), "dev", HA},
	} {
		if err := l.ip(ctx, c...); err != nil {
			return fmt.Errorf("lab: building: %w", err)
		}
	}
	return nil
}
