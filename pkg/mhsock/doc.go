// Package mhsock sends and receives Mobile IPv6 signaling (Mobility Header
// packets with their Home Address option or type 2 routing header) without
// any help from the kernel's MIPv6 code (DESIGN.md section 3).
//
// Sending: whole IPv6 packets built by proto.AppendPacket go out on a raw
// IPPROTO_RAW socket (header included). Send pins the packet to the
// interface that owns its source address with an IPV6_PKTINFO ifindex and
// an unspecified source, which makes the kernel's route lookup strict about
// the interface (RT6_LOOKUP_F_IFACE): a Binding Update from the second
// care-of address leaves through the second interface even when the main
// table prefers another, or fails with ENETUNREACH when that interface has
// no route. Config.Mark sets SO_MARK so that policy routing can tell
// signaling apart.
//
// Receiving: a kernel without CONFIG_IPV6_MIP6 drops packets with a Home
// Address option or a type 2 routing header before any raw socket sees
// them, so Conn reads from an AF_PACKET socket (cooked, all interfaces,
// including those that appear later) with a classic BPF filter that keeps
// IPv6 packets carrying a Mobility Header, possibly behind Hop-by-Hop,
// Destination Options and Routing headers. Go then drops our own outgoing
// copies and packets not addressed to one of this namespace's addresses
// (kept from netlink), parses with proto.ParsePacket (checksum included)
// and counts what it drops (Stats).
//
// The kernel still processes those packets and answers with ICMPv6
// Parameter Problem: code 2 for the Home Address option, code 0 for the
// type 2 routing header, code 1 for a plain Mobility Header when no raw
// socket of protocol 135 is open. Conn opens such a socket (it never queues
// anything: its filter drops all) so the plain case is silent, and installs
// an nftables table of its own (Config.NFTable) that drops exactly the
// other Parameter Problems on output: ICMPv6 type 4, the code, the pointer
// and the offending byte of the embedded packet (a HAO at offset 46 right
// behind the IPv6 header, a routing type 2 at offset 42). The table is
// replaced at Listen (a crashed run leaves a stale one) and removed by
// Close. It is per network namespace: one Conn per table name and
// namespace.
//
// On a kernel with MIPv6 (Debian and Ubuntu ship the mip6 module) the same
// code works unchanged: AF_PACKET taps see every packet before the IPv6
// stack does, so reception does not depend on what the stack does next.
// That stack drops a packet with a Home Address option or a type 2 routing
// header for which it has no xfrm state (mcoad installs none) without
// answering, and hands a plain Mobility Header to the raw socket through
// mip6's filter, which answers only malformed ones. The nftables rules then
// rarely match and cost nothing. Do not run UMIP in the same namespace.
//
// All sockets are opened by Listen in the calling thread's network
// namespace and stay there: call Listen from the namespace it serves.
package mhsock
