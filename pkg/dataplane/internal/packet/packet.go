// Package packet builds and checks the data plane's packets: IPv6-in-IPv6
// encapsulation (RFC 2473), checksums, Packet Too Big, and the TSO/GRO
// segmentation and merging of TUN offloads.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// Packet layout and limits (RFC 8200, RFC 2473).
const (
	ProtoIPv6   = 41 // IPv6-in-IPv6, the outer next header
	ProtoICMPv6 = 58
	ProtoTCP    = 6
	ProtoUDP    = 17
	// OuterHopLimit is the tunnel's own hop limit (RFC 2473 6.3 suggests
	// the default of the node).
	OuterHopLimit = 64
	// Headroom is reserved in front of every inner packet in a buffer so
	// that encapsulation writes the outer header in place.
	Headroom = dataplane.IPv6HeaderLen
	// ptbQuote is how much of the packet a Packet Too Big quotes: as much as
	// fits into the minimum MTU (RFC 4443 3.2).
	ptbQuote = dataplane.MinMTU - dataplane.IPv6HeaderLen - 8
)

// Typed packet errors; PacketError wraps one of these.
var (
	ErrShort     = errors.New("truncated")
	ErrVersion   = errors.New("not IPv6")
	ErrLength    = errors.New("payload length disagrees with the packet")
	ErrJumbo     = errors.New("jumbogram")
	errNotTunnel = errors.New("outer next header is not 41")
	errECNDrop   = errors.New("outer CE on a not-ECT inner packet")
)

// PacketError is a malformed packet; it unwraps to ErrInvalid.
type PacketError struct {
	Op  string // "encap", "decap"
	Err error
}

func (e *PacketError) Error() string { return fmt.Sprintf("dataplane %s: %v", e.Op, e.Err) }
func (e *PacketError) Unwrap() []error {
	return []error{dataplane.ErrInvalid, e.Err}
}

// Preallocated errors keep the per-packet paths free of allocations.
var (
	encapErrShort   = &PacketError{"encap", ErrShort}
	encapErrVersion = &PacketError{"encap", ErrVersion}
	encapErrLength  = &PacketError{"encap", ErrLength}
	encapErrJumbo   = &PacketError{"encap", ErrJumbo}
	decapErrShort   = &PacketError{"decap", ErrShort}
	decapErrVersion = &PacketError{"decap", ErrVersion}
	decapErrLength  = &PacketError{"decap", ErrLength}
	decapErrJumbo   = &PacketError{"decap", ErrJumbo}
	decapErrNotTun  = &PacketError{"decap", errNotTunnel}
	decapErrECN     = &PacketError{"decap", errECNDrop}
)

// checkIPv6 validates an IPv6 packet and returns its length as its header
// says (which may be less than len(p): trailing bytes are ignored).
func checkIPv6(p []byte, op string) (int, error) {
	short, version, length, jumbo := encapErrShort, encapErrVersion, encapErrLength, encapErrJumbo
	if op == "decap" {
		short, version, length, jumbo = decapErrShort, decapErrVersion, decapErrLength, decapErrJumbo
	}
	if len(p) < dataplane.IPv6HeaderLen {
		return 0, short
	}
	if p[0]>>4 != 6 {
		return 0, version
	}
	pl := int(binary.BigEndian.Uint16(p[4:6]))
	if pl == 0 && p[6] == 0 {
		return 0, jumbo
	}
	n := dataplane.IPv6HeaderLen + pl
	if n > len(p) {
		return 0, length
	}
	return n, nil
}

// trafficClass and flowLabel read an IPv6 header's fields.
func trafficClass(p []byte) uint8 { return uint8(binary.BigEndian.Uint32(p[0:4]) >> 20) }
func flowLabel(p []byte) uint32   { return binary.BigEndian.Uint32(p[0:4]) & 0xfffff }

// tunnelFlowLabel is the outer flow label of an inner packet: its own label
// when it has one, otherwise a hash of its flow so that the network can
// still balance and keep the tunnel's flows apart (RFC 6438).
func tunnelFlowLabel(inner []byte) uint32 {
	if fl := flowLabel(inner); fl != 0 {
		return fl
	}
	// A multiply-xor hash over addresses, next header and, for the usual
	// transports, the ports: cheap, and stable for a flow.
	const k = 0x9e3779b97f4a7c15
	nh := inner[6]
	h := uint64(nh) * k
	for off := 8; off < 40; off += 8 {
		h = (h ^ binary.LittleEndian.Uint64(inner[off:])) * k
	}
	switch nh {
	case ProtoTCP, ProtoUDP, 132, 33, 136: // TCP, UDP, SCTP, DCCP, UDP-Lite
		if len(inner) >= dataplane.IPv6HeaderLen+4 {
			h = (h ^ uint64(binary.LittleEndian.Uint32(inner[dataplane.IPv6HeaderLen:]))) * k
		}
	}
	h ^= h >> 32
	fl := uint32(h^h>>20) & 0xfffff
	if fl == 0 {
		fl = 1
	}
	return fl
}

// putOuter writes an outer IPv6 header for payloadLen bytes of inner packet.
func putOuter(b []byte, tc uint8, fl uint32, payloadLen int, src, dst *[16]byte) {
	binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(tc)<<20|fl&0xfffff)
	binary.BigEndian.PutUint16(b[4:6], uint16(payloadLen))
	b[6] = ProtoIPv6
	b[7] = OuterHopLimit
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])
}

// Encap turns b, whose first 40 bytes are headroom and the rest an inner
// IPv6 packet, into an IPv6-in-IPv6 packet from src to dst (RFC 2473): the
// outer header copies the inner traffic class (ECN normal mode, RFC 6040)
// and the inner flow label, or hashes the flow when there is none. It
// returns the length of the outer packet.
func Encap(b []byte, src, dst *[16]byte) (int, error) {
	if len(b) < Headroom {
		return 0, encapErrShort
	}
	inner := b[Headroom:]
	n, err := checkIPv6(inner, "encap")
	if err != nil {
		return 0, err
	}
	if n > dataplane.MaxPacket {
		// The outer payload length would overflow; 40 bytes less, as the
		// tunnel MTU says, fits.
		return 0, encapErrLength
	}
	putOuter(b, trafficClass(inner), tunnelFlowLabel(inner[:n]), n, src, dst)
	return Headroom + n, nil
}

// DecapInner checks the inner packet of a tunnelled packet whose outer
// traffic class was outerTC, applies RFC 6040 ECN decapsulation to it in
// place, and returns its length.
func DecapInner(inner []byte, outerTC uint8) (int, error) {
	n, err := checkIPv6(inner, "decap")
	if err != nil {
		return 0, err
	}
	const ce, ect1 = 3, 1
	in := trafficClass(inner) & 3
	var ecn uint8
	switch out := outerTC & 3; {
	case out == ce && in == 0:
		return 0, decapErrECN
	case out == ce:
		ecn = ce
	case out == ect1 && in == 2:
		ecn = ect1
	default:
		return n, nil
	}
	inner[1] = inner[1]&^0x30 | ecn<<4
	return n, nil
}

// decap parses a whole IPv6-in-IPv6 packet (outer header directly followed
// by the inner packet) and returns the outer addresses and the inner packet,
// ECN-adjusted in place.
func decap(p []byte) (src, dst [16]byte, inner []byte, err error) {
	n, err := checkIPv6(p, "decap")
	if err != nil {
		return src, dst, nil, err
	}
	if p[6] != ProtoIPv6 {
		return src, dst, nil, decapErrNotTun
	}
	copy(src[:], p[8:24])
	copy(dst[:], p[24:40])
	m, err := DecapInner(p[dataplane.IPv6HeaderLen:n], trafficClass(p))
	if err != nil {
		return src, dst, nil, err
	}
	return src, dst, p[dataplane.IPv6HeaderLen : dataplane.IPv6HeaderLen+m], nil
}

// csumAdd adds b to a ones-complement sum (fold it with csumFold): 64-bit
// big-endian words with end-around carry, which is the same sum as over
// 16-bit words since 2^16 = 1 modulo 0xffff. The result stays below 2^33,
// so callers may add a few small values to it. Only the last chunk of a
// sum may have an odd length.
func csumAdd(sum uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b), c)
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[8:]), c)
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[16:]), c)
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	var tail uint64
	if len(b) >= 4 {
		tail += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		tail += uint64(b[0]) << 8
	}
	sum, c = bits.Add64(sum, tail, c)
	sum, c = bits.Add64(sum, 0, c)
	sum += c // cannot carry again: sum is 0 when c is 1 here
	sum = sum>>32 + sum&0xffffffff
	return sum
}

func csumFold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// pseudoSum is the IPv6 pseudo-header's share of an upper-layer checksum.
func pseudoSum(src, dst []byte, proto uint8, length int) uint64 {
	sum := csumAdd(0, src[:16])
	sum = csumAdd(sum, dst[:16])
	return sum + uint64(length) + uint64(proto)
}

// BuildPTB writes into out an ICMPv6 Packet Too Big (RFC 4443 3.2) from src
// to the source of orig, reporting mtu and quoting as much of orig as fits
// into 1280 bytes, and returns its length. out must hold 1280 bytes.
func BuildPTB(out []byte, orig []byte, mtu int, src *[16]byte) int {
	q := min(len(orig), ptbQuote)
	n := dataplane.IPv6HeaderLen + 8 + q
	out = out[:n]
	var dst [16]byte
	copy(dst[:], orig[8:24])
	binary.BigEndian.PutUint32(out[0:4], 6<<28)
	binary.BigEndian.PutUint16(out[4:6], uint16(8+q))
	out[6] = ProtoICMPv6
	out[7] = OuterHopLimit
	copy(out[8:24], src[:])
	copy(out[24:40], dst[:])
	icmp := out[dataplane.IPv6HeaderLen:]
	icmp[0], icmp[1], icmp[2], icmp[3] = 2, 0, 0, 0 // type 2, code 0, checksum 0
	binary.BigEndian.PutUint32(icmp[4:8], uint32(mtu))
	copy(icmp[8:], orig[:q])
	sum := pseudoSum(out[8:24], out[24:40], ProtoICMPv6, 8+q)
	binary.BigEndian.PutUint16(icmp[2:4], ^csumFold(csumAdd(sum, icmp)))
	return n
}
