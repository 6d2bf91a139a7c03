// Package proto is the wire codec of Mobile IPv6 signaling with the Multiple
// Care-of Addresses extension (draft-ietf-monami6-multiplecoa-00): the Mobility
// Header messages of RFC 6275, their mobility options (including the draft's
// Binding Unique Identifier sub-option, NEMO's Mobile Network Prefix, MN-ID and
// the MN-HA authentication option of RFC 4285), and the IPv6 extension headers
// MIPv6 needs (Home Address destination option, type 2 routing header).
//
// Parsers take untrusted bytes and fill caller-owned values so that the hot
// path does not allocate; they return typed errors (see errors.go) and never
// read out of range. Codepoints that the draft leaves "TBD" live in a
// Profile. The MH checksum's pseudo-header uses the home address where a
// Home Address option or type 2 routing header carries one, as Linux, UMIP
// and Wireshark do.
package proto
