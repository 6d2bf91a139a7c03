// Package bpftun loads the eBPF IPv6-in-IPv6 tunnel (bpf/tunnel.c): an LWT
// xmit program per tunnel route that pushes the outer header, and a tc
// ingress program that removes it for allowed peers only. The daemon owns
// the programs and maps; this package knows their layout.
package bpftun

import (
	"net/netip"
)

// Drop is why the programs dropped a packet (bpf/tunnel.c enum drop_reason).
type Drop uint32

// The drop reasons, in the programs' order.
const (
	DropNoTunnel  Drop = iota // encapsulation on a route whose tunnel has no addresses
	DropMalformed             // no IPv6 packet inside, or truncated headers
	DropSpoofed               // tunnel packet to a local endpoint from a peer not allowed
	DropEncap                 // the kernel refused to push the outer header
	DropDecap                 // the kernel refused to remove it
	DropECN                   // RFC 6040: congestion marked on a packet that is not ECN-capable
	DropNotHome               // a type 2 routing header for another home address
	DropNoBinding             // a Home Address option no binding covers (a Binding Error goes back)
	numDrops
)

var dropNames = [...]string{"no-tunnel", "malformed", "spoofed", "encap-failed", "decap-failed", "ecn", "not-home", "no-binding"}

// String is the reason as a metric label.
func (d Drop) String() string {
	if int(d) < len(dropNames) {
		return dropNames[d]
	}
	return "unknown"
}

// Endpoints are a tunnel's outer addresses.
type Endpoints struct {
	Src, Dst netip.Addr
}

// Stats are a tunnel's packet and byte counts (inner packets, as the
// other backends count).
type Stats struct {
	TxPackets, TxBytes, RxPackets, RxBytes uint64
}

// HeaderLen is what encapsulation adds: the route needs this much headroom
// and an MTU this much below the link's.
const HeaderLen = 40
