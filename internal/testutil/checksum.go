package testutil

import "encoding/binary"

// Sum is a reference Internet checksum written the way RFC 1071 describes
// it (16-bit big-endian words, an odd octet padded, carries folded), kept
// apart from the packages' optimised sums so that tests check one with the
// other.
func Sum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Pseudo is the IPv6 pseudo-header of RFC 8200 8.1 for an upper-layer
// packet of length octets with next header proto.
func Pseudo(src, dst []byte, proto uint8, length int) []byte {
	p := make([]byte, 40)
	copy(p, src)
	copy(p[16:], dst)
	binary.BigEndian.PutUint32(p[32:], uint32(length))
	p[39] = proto
	return p
}
