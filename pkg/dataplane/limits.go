package dataplane

// Packet sizes every data plane works with (RFC 8200, RFC 2473).
const (
	// IPv6HeaderLen is also what IPv6-in-IPv6 adds to a packet.
	IPv6HeaderLen = 40
	// MinMTU is IPv6's minimum link MTU; no tunnel MTU goes below it.
	MinMTU = 1280
	// MaxPacket bounds an inner packet, a TSO super-packet included.
	MaxPacket = 65535
)
