package proto

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// DefaultHopLimit is the hop limit AppendPacket uses when Packet.HopLimit
// is 0.
const DefaultHopLimit = 64

// AppendPacket appends a whole IPv6 packet to b: the IPv6 header, a type 2
// routing header when p.RoutingHome is valid, a Destination Options header
// with the Home Address option when p.HomeAddress is valid (after the
// routing header, as RFC 8200 4.1 orders them), and the MH with its
// checksum (over Packet.ChecksumSrc/ChecksumDst). It sets p.MH.AuthOffset.
//
// With a non-nil sign, the MH must carry an authentication option: it is
// built with the checksum and the authenticator zero, sign fills in the
// authenticator, and the checksum is computed last.
func AppendPacket(b []byte, p *Packet, prof *Profile, sign Signer) ([]byte, error) {
	for _, a := range [...]netip.Addr{p.Src, p.Dst} {
		if !a.Is6() {
			return b, fmt.Errorf("proto: packet address %v: %w", a, ErrInvalid)
		}
	}
	for _, a := range [...]netip.Addr{p.HomeAddress, p.RoutingHome} {
		if a.Is4() {
			return b, fmt.Errorf("proto: home address %v: %w", a, ErrInvalid)
		}
	}
	start := len(b)
	hl := p.HopLimit
	if hl == 0 {
		hl = DefaultHopLimit
	}
	src, dst := p.Src.As16(), p.Dst.As16()
	b = append(b, 0x60, 0, 0, 0, 0, 0, 0, hl) // payload length and next header below
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	nh := start + 6 // where the next header value goes
	if p.RoutingHome.IsValid() {
		// RFC 6275 6.4: Hdr Ext Len 2, Routing Type 2, Segments Left 1,
		// Reserved, Home Address.
		b[nh] = ProtoRouting
		nh = len(b)
		a := p.RoutingHome.As16()
		b = append(b, 0, 2, RoutingType2, 1, 0, 0, 0, 0)
		b = append(b, a[:]...)
	}
	if p.HomeAddress.IsValid() {
		// RFC 6275 6.3: the option is 8n+6 aligned, so PadN of 4 octets
		// then the option (type 201, length 16): 24 octets in all.
		b[nh] = ProtoDstOpts
		nh = len(b)
		a := p.HomeAddress.As16()
		b = append(b, 0, 2, DstOptPadN, 2, 0, 0, OptHomeAddress, 16)
		b = append(b, a[:]...)
	}
	b[nh] = ProtoMH
	mhStart := len(b)
	b, err := AppendMessage(b, &p.MH, prof)
	if err != nil {
		return b[:start], err
	}
	mh := b[mhStart:]
	if sign != nil {
		off := p.MH.AuthOffset
		if off < 0 {
			return b[:start], fmt.Errorf("proto: a Signer for a message without an authentication option: %w", ErrInvalid)
		}
		n := AuthenticatorLen
		if p.MH.Options.HasMNHAAuth && len(p.MH.Options.MNHAAuthData) > 0 {
			n = len(p.MH.Options.MNHAAuthData)
		}
		clear(mh[off : off+n])
		if err := sign.Sign(mh, off); err != nil {
			return b[:start], err
		}
	}
	SetChecksum(mh, p.ChecksumSrc(), p.ChecksumDst())
	binary.BigEndian.PutUint16(b[start+4:], uint16(len(b)-start-IPv6HeaderLen))
	return b, nil
}

const (
	whatIPv6    = "IPv6 header"
	whatHBH     = "hop-by-hop options"
	whatDstOpts = "destination options"
	whatRouting = "routing header"
	whatNext    = "next header"
)

// ParsePacket parses a whole IPv6 packet that carries a Mobility Header:
// the IPv6 header (octets beyond its Payload Length, such as link-layer
// padding, are ignored), then Hop-by-Hop Options (first only), Destination
// Options (before and after a routing header; the Home Address option goes
// to p.HomeAddress) and a type 2 routing header (p.RoutingHome; other
// routing types only with Segments Left 0), up to the MH. A final next
// header other than 135 (including a Fragment header: MIPv6 signaling is
// not fragmented) is ErrNotMH. It then verifies the MH checksum
// (ErrChecksum) over ChecksumSrc/ChecksumDst and parses the message into
// p.MH (see ParseMessage for its errors; Src, Dst and the home addresses
// are set whenever the headers were well-formed). p.MHBytes aliases the MH
// in b. It does not allocate on success.
func ParsePacket(b []byte, p *Packet, prof *Profile) error {
	p.Src, p.Dst, p.HomeAddress, p.RoutingHome = netip.Addr{}, netip.Addr{}, netip.Addr{}, netip.Addr{}
	p.HopLimit = 0
	p.MHBytes = nil
	if len(b) < IPv6HeaderLen {
		p.MH.Reset()
		return &ParseError{What: whatIPv6, Offset: len(b), Err: ErrTruncated}
	}
	if b[0]>>4 != 6 {
		p.MH.Reset()
		return &ParseError{What: whatIPv6, Offset: 0, Err: ErrBadHeader}
	}
	plen := int(be16(b[4:])) // 0 (a jumbogram) leaves no room for an MH
	if IPv6HeaderLen+plen > len(b) {
		p.MH.Reset()
		return &ParseError{What: whatIPv6, Offset: 4, Err: ErrTruncated}
	}
	b = b[:IPv6HeaderLen+plen]
	p.HopLimit = b[7]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))

	nh, off := b[6], IPv6HeaderLen
	for nh != ProtoMH {
		what := whatDstOpts
		switch nh {
		case ProtoHopByHop:
			what = whatHBH
			if off != IPv6HeaderLen {
				p.MH.Reset()
				return &ParseError{What: what, Offset: off, Err: ErrBadHeader}
			}
		case ProtoDstOpts:
		case ProtoRouting:
			what = whatRouting
		default:
			p.MH.Reset()
			return &ParseError{What: whatNext, Offset: off, Err: ErrNotMH}
		}
		if off+2 > len(b) {
			p.MH.Reset()
			return &ParseError{What: what, Offset: off, Err: ErrTruncated}
		}
		end := off + (int(b[off+1])+1)*8
		if end > len(b) {
			p.MH.Reset()
			return &ParseError{What: what, Offset: off, Err: ErrTruncated}
		}
		var err error
		if nh == ProtoRouting {
			err = p.parseRouting(b[off:end], off)
		} else {
			err = p.parseTLVs(b[off:end], off, what, nh == ProtoDstOpts)
		}
		if err != nil {
			p.MH.Reset()
			return err
		}
		nh, off = b[off], end
	}
	mh := b[off:]
	p.MHBytes = mh
	// Length errors first, so that a truncated MH is not reported as a bad
	// checksum.
	if len(mh) < 8 || (int(mh[1])+1)*8 != len(mh) {
		return offsetErr(ParseMessage(mh, &p.MH, prof), off)
	}
	if !VerifyChecksum(mh, p.ChecksumSrc(), p.ChecksumDst()) {
		p.MH.Reset()
		p.MH.Type = MHType(mh[2])
		return &ParseError{What: whatMH, Offset: off + 4, Err: ErrChecksum}
	}
	return offsetErr(ParseMessage(mh, &p.MH, prof), off)
}

// offsetErr makes a *ParseError's offset relative to the packet.
func offsetErr(err error, off int) error {
	if pe, ok := err.(*ParseError); ok {
		pe.Offset += off
	}
	return err
}

// parseTLVs walks the options of a Hop-by-Hop or Destination Options header
// h (RFC 8200 4.2), taking the Home Address option (RFC 6275 6.3) from a
// Destination Options header. An unknown option whose two high-order type
// bits ask for the packet to be discarded is an error.
func (p *Packet) parseTLVs(h []byte, base int, what string, dstOpts bool) error {
	for i := 2; i < len(h); {
		t := h[i]
		if t == DstOptPad1 {
			i++
			continue
		}
		if i+2 > len(h) || i+2+int(h[i+1]) > len(h) {
			return &ParseError{What: what, Offset: base + i, Err: ErrBadHeader}
		}
		l := int(h[i+1])
		switch {
		case t == DstOptPadN:
		case t == OptHomeAddress && dstOpts:
			if l != 16 || p.HomeAddress.IsValid() {
				return &ParseError{What: what, Offset: base + i, Err: ErrBadHeader}
			}
			p.HomeAddress = netip.AddrFrom16([16]byte(h[i+2 : i+18]))
		case t>>6 != 0:
			return &ParseError{What: what, Offset: base + i, Err: ErrBadHeader}
		}
		i += 2 + l
	}
	return nil
}

// parseRouting takes a type 2 routing header (RFC 6275 6.4) with one
// segment left; other routing types must have been processed already
// (Segments Left 0, RFC 8200 4.4).
func (p *Packet) parseRouting(h []byte, base int) error {
	typ, left := h[2], h[3]
	if typ != RoutingType2 {
		if left != 0 {
			return &ParseError{What: whatRouting, Offset: base + 3, Err: ErrBadHeader}
		}
		return nil
	}
	if len(h) != RoutingType2Len || left != 1 || p.RoutingHome.IsValid() {
		return &ParseError{What: whatRouting, Offset: base, Err: ErrBadHeader}
	}
	p.RoutingHome = netip.AddrFrom16([16]byte(h[8:24]))
	return nil
}
