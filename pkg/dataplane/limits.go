package dataplane

const (
	IPv6HeaderLen = 40
	MinMTU        = 1280
	// MaxPacket bounds an inner packet, a TSO super-packet included.
	MaxPacket = 65535
)
