package dataplane

const (
	Ipv6HeaderLen = 40
	MinMTU        = 1280
	// maxPacket bounds an inner packet, a TSO super-packet included.
	MaxPacket = 65535
)
