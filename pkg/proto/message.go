package proto

import "net/netip"

// Message is one Mobility Header message of any type. Fields that a type does
// not carry are zero. A Message is meant to be reused: ParseMessage resets it
// and refills its slices in place, so parsing into a warm Message does not
// allocate.
type Message struct {
	Type MHType
	// PayloadProto is the MH's Payload Proto field; we send ProtoNone.
	PayloadProto uint8

	// Sequence: BU and BA.
	Sequence uint16
	// Lifetime in units of 4 seconds: BU and BA.
	Lifetime uint16
	// Flags: BU (FlagA|FlagH|FlagL|FlagK|FlagR) and BA (BAFlagK|BAFlagR).
	Flags uint16
	// Status: BA and BE.
	Status Status

	// Return routability: HoTI/CoTI/HoT/CoT.
	Cookie      [8]byte // init cookie
	NonceIndex  uint16  // HoT/CoT
	KeygenToken [8]byte // HoT/CoT

	// BEHomeAddress is the Binding Error's Home Address field.
	BEHomeAddress netip.Addr

	Options Options

	// AuthOffset is, after parsing or marshalling, the offset within the MH of
	// the authenticator bytes of a Binding Authorization Data option (BAD) or
	// of an MN-HA Mobility Message Authentication option, or -1 when absent.
	// The authenticators cover the MH up to that offset.
	AuthOffset int
}

// BU flags (RFC 6275 6.1.7, RFC 3963 4.1), as bits of the 16-bit word that
// follows the sequence number.
const (
	FlagA uint16 = 0x8000 // acknowledge
	FlagH uint16 = 0x4000 // home registration
	FlagL uint16 = 0x2000 // link-local address compatibility
	FlagK uint16 = 0x1000 // key management mobility capability
	// FlagM is HMIPv6's MAP registration bit (RFC 5380); RFC 3963 places R
	// after it, which is where Linux/UMIP (IP6_MH_BU_MR) and Wireshark have it.
	FlagM uint16 = 0x0800
	FlagR uint16 = 0x0400 // NEMO mobile router (RFC 3963 4.1)
	// FlagO is RFC 5648's Overwrite flag (4.2: |A|H|L|K|M|R|P|F|T|O|),
	// used only by the rfc5648 profile (Profile.BUFlagOverwrite). Wireshark
	// 4.0 shows this bit as RFC 6602's B flag (mip6.bu.b_flag).
	FlagO uint16 = 0x0040
)

// BA flags (RFC 6275 6.1.8, RFC 3963 4.2), in the octet after the status;
// stored in Message.Flags as the octet's value.
const (
	BAFlagK uint16 = 0x80
	BAFlagR uint16 = 0x40
)

// Options are the mobility options of a message. Slices are reused by the
// parser; Has* report presence of fixed options.
type Options struct {
	HasRefreshAdvice bool
	RefreshInterval  uint16 // units of 4 seconds

	AltCoA netip.Addr // invalid when absent

	HasNonceIndices bool
	HomeNonceIndex  uint16
	CareofNonce     uint16

	HasAuthData   bool
	Authenticator [12]byte // Binding Authorization Data (96 bits)

	BIDs     []BID
	Prefixes []netip.Prefix // NEMO Mobile Network Prefix options

	HasMNID     bool
	MNIDSubtype uint8
	MNID        []byte // copied into a reused buffer by the parser

	HasMNHAAuth  bool
	MNHASubtype  uint8
	MNHASPI      uint32
	MNHAAuthData []byte // authenticator; the parser aliases the input here

	// Unknown counts options skipped because their type is unknown
	// (RFC 6275 6.2.1: skipped, the rest processed).
	Unknown int
}

// BID is the draft's Binding Unique Identifier sub-option (section 4.3.1),
// RFC 5648's Binding Identifier mobility option (4.3) in the rfc5648
// profile.
type BID struct {
	ID uint16
	// PrioStatus is the priority in a BU (0: none, higher is preferred) and
	// the per-binding status in a BA. rfc5648 has no priority: the octet is
	// the Status field, which a receiver ignores outside a BA or CoT (4.3).
	PrioStatus uint8
	// C: a care-of address follows (bulk registration). R: remove.
	// In the rfc5648 profile C means "the Care-of Address field is
	// present" (no flag: Length 8 or 20) and R does not exist (always
	// false; marshalling it is ErrInvalid).
	C, R bool
	// H is RFC 5648's Simultaneous Home and Foreign Binding flag (4.3):
	// a home binding, its CoA the home address (5.6.3). Only in the
	// rfc5648 profile (marshalling it under draft-00 is ErrInvalid).
	H bool
	// CoA is set when C is set: an IPv6 address, or in the rfc5648
	// profile an IPv4 one (Length 8), which the parser reports with Err
	// set to ErrIPv4CoA.
	CoA netip.Addr
	// Err is set by the parser when this sub-option is not compliant (BID 0,
	// length that does not match C, R without C) or, in the rfc5648
	// profile, carries an IPv4 care-of address (ErrIPv4CoA); the receiver
	// answers it with the profile's incompliant status (rfc5648: 164 MCOA
	// MALFORMED) instead of dropping the message or using the address.
	Err error
}

// Reset clears m for reuse, keeping slice capacity.
func (m *Message) Reset() {
	o := m.Options
	*m = Message{AuthOffset: -1}
	m.Options.BIDs = o.BIDs[:0]
	m.Options.Prefixes = o.Prefixes[:0]
	m.Options.MNID = o.MNID[:0]
}

// Packet is a whole IPv6 packet carrying a Mobility Header, with the
// extension headers MIPv6 uses.
type Packet struct {
	Src, Dst netip.Addr
	HopLimit uint8
	// HomeAddress is the Home Address destination option's address (the MN's
	// home address on packets it sends from a CoA); invalid when absent.
	HomeAddress netip.Addr
	// RoutingHome is the type 2 routing header's address (the MN's home
	// address on packets sent to a CoA); invalid when absent.
	RoutingHome netip.Addr
	MH          Message
	// MHBytes aliases the parsed packet's Mobility Header (after
	// ParsePacket) for authenticator checks.
	MHBytes []byte
}

// ChecksumSrc and ChecksumDst are the pseudo-header addresses of the MH
// checksum (DESIGN.md section 5): the home address stands in for the source
// when a Home Address option is present, and the final destination (the
// home address in the type 2 routing header) for the destination.
func (p *Packet) ChecksumSrc() netip.Addr {
	if p.HomeAddress.IsValid() {
		return p.HomeAddress
	}
	return p.Src
}

// ChecksumDst: see ChecksumSrc.
func (p *Packet) ChecksumDst() netip.Addr {
	if p.RoutingHome.IsValid() {
		return p.RoutingHome
	}
	return p.Dst
}
