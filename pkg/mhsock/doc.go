// Package mhsock sends and receives Mobile IPv6 signaling (Mobility Header
// packets with their Home Address option or type 2 routing header) without
// the kernel's MIPv6 code.
//
// Send writes whole IPv6 packets on a raw socket, pinned to the interface
// that owns the source address (Config.NoPin leaves it to the routing
// table); Config.Mark sets SO_MARK. Recv reads through AF_PACKET with a BPF
// filter, since a kernel without CONFIG_IPV6_MIP6 drops packets with a
// Home Address option before raw sockets see them; it keeps packets for
// this namespace's addresses (Config.Monitor) and counts what it drops
// (Stats).
//
// The kernel's ICMPv6 Parameter Problem answers to those packets are
// dropped by an nftables table of Conn's own (Config.NFTable), replaced at
// Listen and removed by Close, and by a raw IPPROTO_MH socket that never
// queues anything. On a kernel with MIPv6 the same code works unchanged;
// do not run UMIP in the same namespace.
//
// Listen opens every socket in the calling thread's network namespace:
// call it from the namespace it serves.
package mhsock
