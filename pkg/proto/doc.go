// Package proto is the wire codec of Mobile IPv6 signaling with the Multiple
// Care-of Addresses extension (draft-ietf-monami6-multiplecoa-00): the Mobility
// Header messages of RFC 6275, their mobility options (including the draft's
// Binding Unique Identifier sub-option, NEMO's Mobile Network Prefix, MN-ID and
// the MN-HA authentication option of RFC 4285), and the IPv6 extension headers
// MIPv6 needs (Home Address destination option, type 2 routing header).
//
// Parsers take untrusted bytes and fill caller-owned values so that the hot
// path does not allocate; they return typed errors (see errors.go) and never
// read out of range. Codepoints that the draft leaves "TBD" live in a Profile.
//
// The pieces:
//
//   - ParseMessage / AppendMessage: one Mobility Header, any type. Appending
//     aligns every option as its specification asks (measured from the start
//     of the MH) and pads to 8 octets; parsing reports an unknown MH type
//     with the type set (for a Binding Error) and non-compliant BID
//     sub-options per BID (for a BA with per-BID status).
//   - Checksum, SetChecksum, VerifyChecksum: the MH checksum over the IPv6
//     pseudo-header; Packet.ChecksumSrc/ChecksumDst pick the home address
//     where a Home Address option or type 2 routing header carries one, as
//     Linux, UMIP, scapy and Wireshark do.
//   - AppendPacket / ParsePacket: a whole IPv6 packet with the MH and the
//     extension headers around it, checksum included.
//   - MNHA and BAD (with MNHASigner, BADSigner): the HMAC_SHA1-96
//     authenticators of RFC 4285 and of RFC 6275's return routability; the
//     byte coverage is documented on each type.
//   - SeqLess / SeqAfter: sequence numbers modulo 2^16.
package proto
