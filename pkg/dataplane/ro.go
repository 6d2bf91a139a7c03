package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
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

// RORoute is a route-optimised path of the mobile node: packets from the
// home address to Peer that the flow policy routes into BID's tunnel device
// leave directly from CoA, the BID's care-of address, with a Home Address
// option, while the correspondent holds a binding for (home address, BID)
// at CoA. A route whose CoA is not the BID tunnel's current one is
// ignored until they agree again.
type RORoute struct {
	BID  uint16
	Peer netip.Addr // the correspondent
	CoA  netip.Addr // the care-of address the correspondent has for BID
}

func (r RORoute) String() string {
	return fmt.Sprintf("bid %d %s -> %s", r.BID, r.CoA, r.Peer)
}

// checkRORoutes checks a SetRORoutes set and returns it sorted.
func checkRORoutes(in []RORoute) ([]RORoute, error) {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b RORoute) int {
		if a.BID != b.BID {
			return int(a.BID) - int(b.BID)
		}
		return a.Peer.Compare(b.Peer)
	})
	for i, r := range out {
		if r.BID == 0 {
			return nil, fmt.Errorf("%w route %v: BID 0 is reserved", ErrInvalid, r)
		}
		for _, a := range []netip.Addr{r.Peer, r.CoA} {
			if !unicast6(a) {
				return nil, fmt.Errorf("%w route %v: %v is not a unicast IPv6 address", ErrInvalid, r, a)
			}
		}
		if i > 0 && out[i-1].BID == r.BID && out[i-1].Peer == r.Peer {
			return nil, fmt.Errorf("%w route %v given twice", ErrInvalid, r)
		}
	}
	return out, nil
}

func unicast6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && a.Zone() == ""
}

// CNBinding is one binding of a correspondent node's cache: packets from
// the correspondent's own stack to HoA may go to CoA with a type 2 routing
// header, and packets from CoA to Local with a Home Address option holding
// HoA are accepted as coming from HoA.
type CNBinding struct {
	HoA      netip.Addr
	BID      uint16 // 0 for a binding without BID
	CoA      netip.Addr
	Priority uint8 // the draft's priority: higher is preferred
	// Local is the correspondent's address the binding was registered
	// with (the destination of the BU).
	Local netip.Addr
}

func checkCNBindings(in []CNBinding) ([]CNBinding, error) {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b CNBinding) int {
		if c := a.HoA.Compare(b.HoA); c != 0 {
			return c
		}
		return int(a.BID) - int(b.BID)
	})
	for i, b := range out {
		for _, a := range []netip.Addr{b.HoA, b.CoA, b.Local} {
			if !unicast6(a) {
				return nil, fmt.Errorf("%w correspondent binding %s bid %d: %v is not a unicast IPv6 address", ErrInvalid, b.HoA, b.BID, a)
			}
		}
		if i > 0 && out[i-1].HoA == b.HoA && out[i-1].BID == b.BID {
			return nil, fmt.Errorf("%w correspondent binding %s bid %d given twice", ErrInvalid, b.HoA, b.BID)
		}
	}
	return out, nil
}

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
	// roExtLen is the length of either header we add: a Destination
	// Options header with a PadN and the Home Address option (at 8n+6,
	// the layout pkg/proto and pkg/mhsock's ICMP filter use), or a type 2
	// routing header.
	roExtLen = 24
)

var (
	errROChain  = errors.New("extension headers route optimisation leaves alone")
	errROMH     = errors.New("mobility header (signaling is not route-optimised)")
	errNoHAO    = errors.New("no home address option")
	errBadHAO   = errors.New("bad home address option")
	errNoRH2    = errors.New("no type 2 routing header")
	errBadRH2   = errors.New("bad type 2 routing header")
	errNotOurs  = errors.New("type 2 routing header for another home address")
	errTooLarge = errors.New("too large with the header added")
	errRoom     = errors.New("no room in front of the packet")
)

// Preallocated: the per-packet paths allocate nothing.
var (
	roErrShort    = &PacketError{"ro", errShort}
	roErrVersion  = &PacketError{"ro", errVersion}
	roErrLength   = &PacketError{"ro", errLength}
	roErrJumbo    = &PacketError{"ro", errJumbo}
	roErrChain    = &PacketError{"ro", errROChain}
	roErrMH       = &PacketError{"ro", errROMH}
	roErrNoHAO    = &PacketError{"ro", errNoHAO}
	roErrBadHAO   = &PacketError{"ro", errBadHAO}
	roErrNoRH2    = &PacketError{"ro", errNoRH2}
	roErrBadRH2   = &PacketError{"ro", errBadRH2}
	roErrNotOurs  = &PacketError{"ro", errNotOurs}
	roErrTooLarge = &PacketError{"ro", errTooLarge}
	roErrRoom     = &PacketError{"ro", errRoom}
)

// roLength validates an IPv6 packet and returns its length by its header.
func roLength(p []byte) (int, error) {
	if len(p) < ipv6HeaderLen {
		return 0, roErrShort
	}
	if p[0]>>4 != 6 {
		return 0, roErrVersion
	}
	pl := int(binary.BigEndian.Uint16(p[4:6]))
	if pl == 0 && p[6] == protoHopByHop {
		return 0, roErrJumbo
	}
	n := ipv6HeaderLen + pl
	if n > len(p) {
		return 0, roErrLength
	}
	return n, nil
}

// afterHopByHop returns the offset of the header behind the IPv6 header
// and an optional Hop-by-Hop header, its protocol number, and the offset
// of the Next Header field that announces it.
func afterHopByHop(p []byte) (off int, nh uint8, nhField int, err error) {
	off, nh, nhField = ipv6HeaderLen, p[6], 6
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
	if start < roExtLen || start+n > len(b) {
		return 0, 0, 0, roErrRoom
	}
	p := b[start : start+n]
	m, err := roLength(p)
	if err != nil {
		return 0, 0, 0, err
	}
	if m-ipv6HeaderLen+roExtLen > maxPacket {
		return 0, 0, 0, roErrTooLarge
	}
	off, nhField, err := insertPoint(p[:m])
	if err != nil {
		return 0, 0, 0, err
	}
	ns = start - roExtLen
	copy(b[ns:ns+off], p[:off]) // the IPv6 header (and Hop-by-Hop) move forward
	q := b[ns : ns+m+roExtLen]
	q[off], q[off+1] = q[nhField], roExtLen/8-1
	q[nhField] = proto
	binary.BigEndian.PutUint16(q[4:6], uint16(m-ipv6HeaderLen+roExtLen))
	return ns, m + roExtLen, off, nil
}

// insertHAO turns the packet at b[start:start+n], from the home address,
// into one from coa with a Home Address option holding the home address
// (RFC 6275 11.3.1). It needs roExtLen octets of room in front of the
// packet, and returns the new start and length.
func insertHAO(b []byte, start, n int, coa *[16]byte) (int, int, error) {
	ns, nn, off, err := insertExt(b, start, n, protoDstOpts)
	if err != nil {
		return 0, 0, err
	}
	q := b[ns : ns+nn]
	h := q[off : off+roExtLen]
	h[2], h[3], h[4], h[5] = optPadN, 2, 0, 0
	h[6], h[7] = optHomeAddress, 16
	copy(h[8:24], q[8:24])
	copy(q[8:24], coa[:])
	return ns, nn, nil
}

// insertRH2 turns the packet at b[start:start+n], to a home address, into
// one to coa with a type 2 routing header holding the home address (RFC
// 6275 9.3.2). It needs roExtLen octets of room in front of the packet.
func insertRH2(b []byte, start, n int, coa *[16]byte) (int, int, error) {
	ns, nn, off, err := insertExt(b, start, n, protoRouting)
	if err != nil {
		return 0, 0, err
	}
	q := b[ns : ns+nn]
	h := q[off : off+roExtLen]
	h[2], h[3], h[4], h[5], h[6], h[7] = routingType2, 1, 0, 0, 0, 0
	copy(h[8:24], q[24:40])
	copy(q[24:40], coa[:])
	return ns, nn, nil
}

// haoLoc locates a Home Address option in a received packet.
type haoLoc struct {
	n       int  // the packet's length by its header
	nhField int  // the Next Header field announcing the Destination Options header
	hdr     int  // offset of the Destination Options header
	hdrLen  int  // its length
	opt     int  // offset of the option (its address follows 2 octets on)
	only    bool // the header holds nothing but padding and the option
}

// hoa returns the home address in the option.
func (l *haoLoc) hoa(p []byte) [16]byte { return [16]byte(p[l.opt+2 : l.opt+18]) }

// findHAO finds the Home Address option of a data packet: in a
// Destination Options header right behind the IPv6 header (or a
// Hop-by-Hop header), exactly one, 16 octets long. A Mobility Header
// behind it is signaling (pkg/mhsock's), not data.
func findHAO(p []byte, l *haoLoc) error {
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
	*l = haoLoc{n: n, nhField: nhField, hdr: off, hdrLen: end - off, opt: -1, only: true}
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

// stripHAO processes the option findHAO located in the packet at
// b[start:] (RFC 6275 9.3.1): the home address becomes the source, and the
// Destination Options header goes, or, when it holds other options, the
// Home Address option turns into padding. It returns the new start and
// length.
func stripHAO(b []byte, start int, l *haoLoc) (int, int) {
	p := b[start : start+l.n]
	copy(p[8:24], p[l.opt+2:l.opt+18])
	if !l.only {
		p[l.opt], p[l.opt+1] = optPadN, 16
		clear(p[l.opt+2 : l.opt+18])
		return start, l.n
	}
	p[l.nhField] = p[l.hdr]
	binary.BigEndian.PutUint16(p[4:6], uint16(l.n-ipv6HeaderLen-l.hdrLen))
	ns := start + l.hdrLen
	copy(b[ns:ns+l.hdr], p[:l.hdr])
	return ns, l.n - l.hdrLen
}

// stripRH2 processes the type 2 routing header of the packet at
// b[start:start+n] (RFC 6275 11.3.3): it must hold hoa, with one segment
// left; the home address becomes the destination and the header goes. It
// returns the new start and length.
func stripRH2(b []byte, start, n int, hoa *[16]byte) (int, int, error) {
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
	if off+roExtLen > m {
		return 0, 0, roErrShort
	}
	h := p[off : off+roExtLen]
	if h[2] != routingType2 {
		return 0, 0, roErrNoRH2
	}
	if h[1] != roExtLen/8-1 || h[3] != 1 {
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
	binary.BigEndian.PutUint16(p[4:6], uint16(m-ipv6HeaderLen-roExtLen))
	ns := start + roExtLen
	copy(b[ns:ns+off], p[:off])
	return ns, m - roExtLen, nil
}

// Defaults of CNConfig.
const (
	// DefaultCNDevice is the correspondent's TUN device.
	DefaultCNDevice = "mcoacn0"
	// DefaultCNTable holds the routes of home addresses with bindings.
	DefaultCNTable = 900
	// DefaultCNRulePriority is the first of the three ip rules the
	// correspondent's data plane installs.
	DefaultCNRulePriority = 5000
)

// CNConfig configures a correspondent node's data plane. A nil *CNConfig
// is the default.
type CNConfig struct {
	// Device is the TUN device that home-address routes point to
	// (default "mcoacn0").
	Device string
	// MTU of Device (default 1476: an Ethernet path less the type 2
	// routing header).
	MTU int
	// Table for the home-address routes (default 900), which only
	// packets of this node's own stack look up.
	Table int
	// RulePriority P: rules P (fwmark Mark goto P+2), P+1 (iif lo lookup
	// Table) and P+2 (nop). Default 5000.
	RulePriority int
	// Mark is set on the packets the plane sends; packets with it skip
	// Table (default DefaultMark).
	Mark uint32
	// NoOffload: see Config.
	NoOffload bool
	// BindingError is called for a packet with a Home Address option
	// that no binding covers, addressed to this node, at most ten times
	// a second and from a goroutine of the plane's: the caller answers it
	// with a Binding Error status 1 (RFC 6275 9.3.1, draft 6.5).
	BindingError func(src, dst, hoa netip.Addr)
	Logger       *slog.Logger
}

func (c *CNConfig) withDefaults() (CNConfig, error) {
	var out CNConfig
	if c != nil {
		out = *c
	}
	if err := deviceDefaults("correspondent", &out.Device, DefaultCNDevice, &out.MTU, roExtLen); err != nil {
		return out, err
	}
	if out.Table == 0 {
		out.Table = DefaultCNTable
	}
	if out.Table < 0 || out.Table == 253 || out.Table == 254 || out.Table == 255 {
		return out, fmt.Errorf("%w correspondent config: table %d", ErrInvalid, out.Table)
	}
	if out.RulePriority == 0 {
		out.RulePriority = DefaultCNRulePriority
	}
	if out.RulePriority < 1 || out.RulePriority > 32700 {
		return out, fmt.Errorf("%w correspondent config: rule priority %d", ErrInvalid, out.RulePriority)
	}
	if out.Mark == 0 {
		out.Mark = DefaultMark
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}
