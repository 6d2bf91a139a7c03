// Package routeopt adds and removes the headers of route optimisation in
// place: the Home Address option and the type 2 routing header (RFC 6275
// 6.3, 6.4), and the socket filters that find them.
package routeopt

import (
	"encoding/binary"
	"errors"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// Route optimisation between a mobile node and a correspondent (RFC 6275
// 6.3, 6.4, 9.3.1, 11.3.3; draft section 5.2: per BID). The mobile node
// sends from a care-of address with a Home Address destination option
// holding the home address; the correspondent sends to a care-of address
// with a type 2 routing header holding it. Upper-layer checksums need no
// change either way: RFC 6275 computes them over the home address, which
// is what the stacks at both ends used. These functions add and remove
// the two headers in place, moving only the IPv6 header (and a Hop-by-Hop
// header) into the room in front of the packet or behind it.

// Header numbers route optimisation deals with.
const (
	protoHopByHop  = 0
	protoRouting   = 43
	protoDstOpts   = 60
	protoMH        = 135
	optPad1        = 0
	optPadN        = 1
	optHomeAddress = 201 // RFC 6275 6.3
	routingType2   = 2   // RFC 6275 6.4
	// ExtLen is the length of either header we add: a Destination
	// Options header with a PadN and the Home Address option (at 8n+6,
	// the layout pkg/proto and pkg/mhsock's ICMP filter use), or a type 2
	// routing header.
	ExtLen = 24
)

var (
	errROChain  = errors.New("extension headers route optimisation leaves alone")
	errROMH     = errors.New("mobility header (signaling is not route-optimised)")
	ErrNoHAO    = errors.New("no home address option")
	errBadHAO   = errors.New("bad home address option")
	errNoRH2    = errors.New("no type 2 routing header")
	errBadRH2   = errors.New("bad type 2 routing header")
	ErrNotOurs  = errors.New("type 2 routing header for another home address")
	errTooLarge = errors.New("too large with the header added")
	errRoom     = errors.New("no room in front of the packet")
)

// Preallocated: the per-packet paths allocate nothing.
var (
	roErrShort    = &packet.PacketError{Op: "ro", Err: packet.ErrShort}
	roErrVersion  = &packet.PacketError{Op: "ro", Err: packet.ErrVersion}
	roErrLength   = &packet.PacketError{Op: "ro", Err: packet.ErrLength}
	roErrJumbo    = &packet.PacketError{Op: "ro", Err: packet.ErrJumbo}
	roErrChain    = &packet.PacketError{Op: "ro", Err: errROChain}
	roErrMH       = &packet.PacketError{Op: "ro", Err: errROMH}
	roErrNoHAO    = &packet.PacketError{Op: "ro", Err: ErrNoHAO}
	roErrBadHAO   = &packet.PacketError{Op: "ro", Err: errBadHAO}
	roErrNoRH2    = &packet.PacketError{Op: "ro", Err: errNoRH2}
	roErrBadRH2   = &packet.PacketError{Op: "ro", Err: errBadRH2}
	roErrNotOurs  = &packet.PacketError{Op: "ro", Err: ErrNotOurs}
	roErrTooLarge = &packet.PacketError{Op: "ro", Err: errTooLarge}
	roErrRoom     = &packet.PacketError{Op: "ro", Err: errRoom}
)

// roLength validates an IPv6 packet and returns its length by its header.
func roLength(p []byte) (int, error) {
	if len(p) < dataplane.IPv6HeaderLen {
		return 0, roErrShort
	}
	if p[0]>>4 != 6 {
		return 0, roErrVersion
	}
	pl := int(binary.BigEndian.Uint16(p[4:6]))
	if pl == 0 && p[6] == protoHopByHop {
		return 0, roErrJumbo
	}
	n := dataplane.IPv6HeaderLen + pl
	if n > len(p) {
		return 0, roErrLength
	}
	return n, nil
}

// afterHopByHop returns the offset of the header behind the IPv6 header
// and an optional Hop-by-Hop header, its protocol number, and the offset
// of the Next Header field that announces it.
func afterHopByHop(p []byte) (off int, nh uint8, nhField int, err error) {
	off, nh, nhField = dataplane.IPv6HeaderLen, p[6], 6
	if nh == protoHopByHop {
		if off+2 > len(p) {
			return 0, 0, 0, roErrShort
		}
		nhField = off
		off += (int(p[off+1]) + 1) * 8
		if off > len(p) {
			return 0, 0, 0, roErrShort
		}
		nh = p[nhField]
	}
	return off, nh, nhField, nil
}

// insertPoint is where a Home Address option's Destination Options header
// or a type 2 routing header goes: behind the IPv6 header and a Hop-by-Hop
// header, before anything else (RFC 6275 6.3, 6.4, RFC 8200 4.1). A packet
// that already has a routing or destination options header there, or that
// is a Mobility Header, is refused: it takes the tunnel or the normal path.
func insertPoint(p []byte) (off, nhField int, err error) {
	off, nh, nhField, err := afterHopByHop(p)
	if err != nil {
		return 0, 0, err
	}
	switch nh {
	case protoRouting, protoDstOpts:
		return 0, 0, roErrChain
	case protoMH:
		return 0, 0, roErrMH
	}
	return off, nhField, nil
}

// insertExt makes room for a 24-octet header of protocol proto in the
// packet at b[start:] (n octets, at least 24 of room in front of it) at its
// insertion point, fills in the header's Next Header and Hdr Ext Len and
// the Next Header field that now announces it, and returns the new start,
// the new length and the header's offset in the packet.
func insertExt(b []byte, start, n int, proto uint8) (ns, nn, off int, err error) {
	if start < ExtLen || start+n > len(b) {
		return 0, 0, 0, roErrRoom
	}
	p := b[start : start+n]
	m, err := roLength(p)
	if err != nil {
		return 0, 0, 0, err
	}
	if m-dataplane.IPv6HeaderLen+ExtLen > dataplane.MaxPacket {
		return 0, 0, 0, roErrTooLarge
	}
	off, nhField, err := insertPoint(p[:m])
	if err != nil {
		return 0, 0, 0, err
	}
	ns = start - ExtLen
	copy(b[ns:ns+off], p[:off]) // the IPv6 header (and Hop-by-Hop) move forward
	q := b[ns : ns+m+ExtLen]
	q[off], q[off+1] = q[nhField], ExtLen/8-1
	q[nhField] = proto
	binary.BigEndian.PutUint16(q[4:6], uint16(m-dataplane.IPv6HeaderLen+ExtLen))
	return ns, m + ExtLen, off, nil
}

// InsertHAO turns the packet at b[start:start+n], from the home address,
// into one from coa with a Home Address option holding the home address
// (RFC 6275 11.3.1). It needs ExtLen octets of room in front of the
// packet, and returns the new start and length.
func InsertHAO(b []byte, start, n int, coa *[16]byte) (int, int, error) {
	ns, nn, off, err := insertExt(b, start, n, protoDstOpts)
	if err != nil {
		return 0, 0, err
	}
	q := b[ns : ns+nn]
	h := q[off : off+ExtLen]
	h[2], h[3], h[4], h[5] = optPadN, 2, 0, 0
	h[6], h[7] = optHomeAddress, 16
	copy(h[8:24], q[8:24])
	copy(q[8:24], coa[:])
	return ns, nn, nil
}

// InsertRH2 turns the packet at b[start:start+n], to a home address, into
// one to coa with a type 2 routing header holding the home address (RFC
// 6275 9.3.2). It needs ExtLen octets of room in front of the packet.
func InsertRH2(b []byte, start, n int, coa *[16]byte) (int, int, error) {
	ns, nn, off, err := insertExt(b, start, n, protoRouting)
	if err != nil {
		return 0, 0, err
	}
	q := b[ns : ns+nn]
	h := q[off : off+ExtLen]
	h[2], h[3], h[4], h[5], h[6], h[7] = routingType2, 1, 0, 0, 0, 0
	copy(h[8:24], q[24:40])
	copy(q[24:40], coa[:])
	return ns, nn, nil
}

// HAOLoc locates a Home Address option in a received packet.
type HAOLoc struct {
	n       int  // the packet's length by its header
	nhField int  // the Next Header field announcing the Destination Options header
	hdr     int  // offset of the Destination Options header
	hdrLen  int  // its length
	opt     int  // offset of the option (its address follows 2 octets on)
	only    bool // the header holds nothing but padding and the option
}

// Hoa returns the home address in the option.
func (l *HAOLoc) Hoa(p []byte) [16]byte { return [16]byte(p[l.opt+2 : l.opt+18]) }

// FindHAO finds the Home Address option of a data packet: in a
// Destination Options header right behind the IPv6 header (or a
// Hop-by-Hop header), exactly one, 16 octets long. A Mobility Header
// behind it is signaling (pkg/mhsock's), not data.
func FindHAO(p []byte, l *HAOLoc) error {
	n, err := roLength(p)
	if err != nil {
		return err
	}
	p = p[:n]
	off, nh, nhField, err := afterHopByHop(p)
	if err != nil {
		return err
	}
	if nh != protoDstOpts {
		return roErrNoHAO
	}
	if off+2 > n {
		return roErrShort
	}
	end := off + (int(p[off+1])+1)*8
	if end > n {
		return roErrShort
	}
	if p[off] == protoMH {
		return roErrMH
	}
	*l = HAOLoc{n: n, nhField: nhField, hdr: off, hdrLen: end - off, opt: -1, only: true}
	for i := off + 2; i < end; {
		t := p[i]
		if t == optPad1 {
			i++
			continue
		}
		if i+2 > end || i+2+int(p[i+1]) > end {
			return roErrBadHAO
		}
		switch {
		case t == optPadN:
		case t == optHomeAddress:
			if p[i+1] != 16 || l.opt >= 0 {
				return roErrBadHAO
			}
			l.opt = i
		case t>>6 != 0:
			// An option we do not know that asks for the packet to be
			// discarded (RFC 8200 4.2).
			return roErrBadHAO
		default:
			l.only = false
		}
		i += 2 + int(p[i+1])
	}
	if l.opt < 0 {
		return roErrNoHAO
	}
	return nil
}

// StripHAO processes the option findHAO located in the packet at
// b[start:] (RFC 6275 9.3.1): the home address becomes the source, and the
// Destination Options header goes, or, when it holds other options, the
// Home Address option turns into padding. It returns the new start and
// length.
func StripHAO(b []byte, start int, l *HAOLoc) (int, int) {
	p := b[start : start+l.n]
	copy(p[8:24], p[l.opt+2:l.opt+18])
	if !l.only {
		p[l.opt], p[l.opt+1] = optPadN, 16
		clear(p[l.opt+2 : l.opt+18])
		return start, l.n
	}
	p[l.nhField] = p[l.hdr]
	binary.BigEndian.PutUint16(p[4:6], uint16(l.n-dataplane.IPv6HeaderLen-l.hdrLen))
	ns := start + l.hdrLen
	copy(b[ns:ns+l.hdr], p[:l.hdr])
	return ns, l.n - l.hdrLen
}

// StripRH2 processes the type 2 routing header of the packet at
// b[start:start+n] (RFC 6275 11.3.3): it must hold hoa, with one segment
// left; the home address becomes the destination and the header goes. It
// returns the new start and length.
func StripRH2(b []byte, start, n int, hoa *[16]byte) (int, int, error) {
	if start+n > len(b) {
		return 0, 0, roErrShort
	}
	p := b[start : start+n]
	m, err := roLength(p)
	if err != nil {
		return 0, 0, err
	}
	p = p[:m]
	off, nh, nhField, err := afterHopByHop(p)
	if err != nil {
		return 0, 0, err
	}
	if nh != protoRouting {
		return 0, 0, roErrNoRH2
	}
	if off+ExtLen > m {
		return 0, 0, roErrShort
	}
	h := p[off : off+ExtLen]
	if h[2] != routingType2 {
		return 0, 0, roErrNoRH2
	}
	if h[1] != ExtLen/8-1 || h[3] != 1 {
		return 0, 0, roErrBadRH2
	}
	if h[0] == protoMH {
		return 0, 0, roErrMH
	}
	if [16]byte(h[8:24]) != *hoa {
		return 0, 0, roErrNotOurs
	}
	copy(p[24:40], h[8:24])
	p[nhField] = h[0]
	binary.BigEndian.PutUint16(p[4:6], uint16(m-dataplane.IPv6HeaderLen-ExtLen))
	ns := start + ExtLen
	copy(b[ns:ns+off], p[:off])
	return ns, m - ExtLen, nil
}
