package proto

// This file holds the signatures of the codec so that other packages can be
// written against them; the proto implementation replaces it.

import (
	"errors"
	"net/netip"
)

var errTODO = errors.New("proto: not implemented yet")

// ParseMessage parses one Mobility Header (starting at its Payload Proto
// octet) into m, which is reset first. It checks lengths, the Header Len,
// option layout and the per-type fixed part; it does not check the checksum
// (that needs the pseudo-header: VerifyChecksum). A non-compliant BID
// sub-option is recorded in m.Options.BIDs with Err set and reported as a
// *BIDError after the whole message was parsed.
func ParseMessage(b []byte, m *Message, prof *Profile) error { return errTODO }

// AppendMessage appends m's wire form (checksum zero, options aligned,
// padded to 8 octets) to b, and sets m.AuthOffset.
func AppendMessage(b []byte, m *Message, prof *Profile) ([]byte, error) { return b, errTODO }

// Checksum computes the MH checksum of mh over the pseudo-header (src, dst,
// length, next header 135), with mh's checksum field taken as zero.
func Checksum(mh []byte, src, dst netip.Addr) uint16 { return 0 }

// SetChecksum writes Checksum(mh, src, dst) into mh.
func SetChecksum(mh []byte, src, dst netip.Addr) {}

// VerifyChecksum reports whether mh's checksum is right for src and dst.
func VerifyChecksum(mh []byte, src, dst netip.Addr) bool { return false }

// Signer fills in an authenticator (Binding Authorization Data or MN-HA
// authentication) over mh[:authOff] before the checksum is computed.
type Signer interface {
	Sign(mh []byte, authOff int) error
}

// AppendPacket appends a whole IPv6 packet: header, Destination Options with
// the Home Address option when p.HomeAddress is valid, type 2 routing header
// when p.RoutingHome is valid, and the MH with its checksum. sign may be nil.
func AppendPacket(b []byte, p *Packet, prof *Profile, sign Signer) ([]byte, error) {
	return b, errTODO
}

// ParsePacket parses a whole IPv6 packet that carries a Mobility Header,
// walking Hop-by-Hop, Destination Options (Home Address option) and Routing
// (type 2) headers, verifies the MH checksum and parses the message into p.
func ParsePacket(b []byte, p *Packet, prof *Profile) error { return errTODO }
