// Package dataplane moves packets for the home address: tunnels between the
// mobile node and its home agent for each BID, and on the home agent the
// proxy neighbour advertisements that pull home-address traffic off the home
// link (RFC 6275 10.4.1, draft section 3.3).
package dataplane

// Tunnels (Backend, HAPlane). On the mobile node every registered BID b
// has a tunnel device mcoab<b> and a routing table TableBase+b whose only
// route is "default dev mcoab<b> src HoA"; the home address itself sits on a
// device of its own, mcoa0, with nodad and noprefixroute, so applications
// can bind to it while BIDs come and go. Which BID a packet takes is decided
// by routing alone: pkg/policy marks flows, and ip rules send a mark, or the
// home address as source, to a BID's table. The kernel backend makes
// mcoab<b> an ip6tnl link (local CoA, remote HA, bound to the BID's
// interface) and mcoa0 a dummy link; it is chosen where the kernel has
// ip6_tunnel. The userspace backend, for kernels without it, makes
// mcoab<b> and mcoa0 TUN devices: one goroutine per BID reads what the
// kernel routed into mcoab<b>, encapsulates it (RFC 2473: next header 41,
// hop limit 64, traffic class copied, flow label copied or hashed) and
// sends it on a raw socket bound to the BID's interface with the bypass
// mark Config.Mark, so no policy rule routes it back into a tunnel; one
// goroutine receives every IPv6-in-IPv6 packet on a raw socket for
// protocol 41 (which also keeps the kernel from answering them with ICMPv6
// errors), accepts those from the home agent to a known CoA and for the
// home address, and writes them into their BID's device. A packet larger
// than the tunnel MTU (interface MTU less 40) is answered with a Packet
// Too Big written into the device. With TUN offloads the kernel hands over
// 64 KiB TCP packets, cut into segments before encapsulation, and takes
// merged ones back, so a bulk flow costs one TUN read or write per 64 KiB;
// the outer packets are always plain segments. The home agent's HAPlane
// routes each home address with bindings into its TUN device mcoaha0 and
// sends what arrives there to the binding the reverse flow (or peer) last
// came on, else to the one of highest priority; it decapsulates only
// packets from a registered CoA whose inner source is that binding's home
// address, and counts everything it drops.
