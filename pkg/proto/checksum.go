package proto

import (
	"encoding/binary"
	"net/netip"
)

// The Mobility Header checksum (RFC 6275 6.1.1) is the Internet checksum of
// the IPv6 pseudo-header (RFC 8200 8.1: source, destination, upper-layer
// length, next header 135) followed by the whole MH with its checksum field
// taken as zero. Which addresses go into the pseudo-header is the caller's
// choice; Packet.ChecksumSrc and ChecksumDst give the ones Linux, UMIP, scapy
// and Wireshark use.

// csum adds b to s as big-endian 16-bit words, a trailing odd octet padded
// with zero, without folding. Adding 32-bit words is the same one's
// complement sum because 2^16 ≡ 1 (mod 2^16-1); the uint64 cannot overflow
// for any IPv6 payload.
func csum(s uint64, b []byte) uint64 {
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func pseudoSum(src, dst netip.Addr, n int) uint64 {
	a, d := src.As16(), dst.As16()
	s := csum(0, a[:])
	s = csum(s, d[:])
	return s + uint64(uint32(n)>>16) + uint64(uint32(n)&0xffff) + ProtoMH
}

// Checksum computes the MH checksum of mh over the pseudo-header (src, dst,
// length, next header 135), with mh's checksum field taken as zero.
func Checksum(mh []byte, src, dst netip.Addr) uint16 {
	s := pseudoSum(src, dst, len(mh))
	if len(mh) <= 4 {
		return ^fold(csum(s, mh))
	}
	s = csum(s, mh[:4])
	if len(mh) > 6 {
		s = csum(s, mh[6:])
	}
	return ^fold(s)
}

// SetChecksum writes Checksum(mh, src, dst) into mh. It does nothing when mh
// is too short to hold a checksum.
func SetChecksum(mh []byte, src, dst netip.Addr) {
	if len(mh) < 6 {
		return
	}
	binary.BigEndian.PutUint16(mh[4:], Checksum(mh, src, dst))
}

// VerifyChecksum reports whether mh's checksum is right for src and dst:
// the one's complement sum over the pseudo-header and the whole MH,
// checksum included, is all ones (so 0x0000 and 0xffff are both accepted
// where they are equivalent).
func VerifyChecksum(mh []byte, src, dst netip.Addr) bool {
	if len(mh) < 6 {
		return false
	}
	return fold(csum(pseudoSum(src, dst, len(mh)), mh)) == 0xffff
}
