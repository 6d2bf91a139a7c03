package proto

import (
	"encoding/binary"
	"net/netip"
)

// optStart is, per MH type, the offset of the mobility options: the 6-octet
// MH header plus the type's fixed message data (RFC 6275 6.1.2-6.1.9). A
// Header Len that does not reach it is a length error (RFC 6275 9.2).
var optStart = [...]int{
	TypeBRR:  8,  // Reserved
	TypeHoTI: 16, // Reserved, Home Init Cookie
	TypeCoTI: 16, // Reserved, Care-of Init Cookie
	TypeHoT:  24, // Home Nonce Index, Home Init Cookie, Home Keygen Token
	TypeCoT:  24, // Care-of Nonce Index, Care-of Init Cookie, Care-of Keygen Token
	TypeBU:   12, // Sequence, flags, Lifetime
	TypeBA:   12, // Status, flags, Sequence, Lifetime
	TypeBE:   24, // Status, Reserved, Home Address
}

// MaxMessageLen is the longest Mobility Header: Header Len is one octet
// counting 8-octet units after the first 8.
const MaxMessageLen = 256 * 8

// Fixed option lengths (the Length octet) of RFC 6275 6.2, RFC 3963 4.3 and
// RFC 4285 5.
const (
	optLenRefreshAdvice = 2
	optLenAltCoA        = 16
	optLenNonceIndices  = 4
	optLenAuthData      = AuthenticatorLen
	optLenMNP           = 18
	optLenMNHAMin       = 6 // subtype, SPI and at least one octet of authenticator
)

const (
	whatMH     = "mobility header"
	whatOption = "mobility option"
)

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// ParseMessage parses one Mobility Header (starting at its Payload Proto
// octet) into m, which is reset first. b must hold exactly the MH: its
// Header Len must match len(b). It checks lengths, the Header Len, option
// layout and the per-type fixed part; it does not check the checksum (that
// needs the pseudo-header: VerifyChecksum). Unknown options are skipped and
// counted (RFC 6275 6.2.1); option alignment is not enforced on receipt.
// The profile's BID sub-option type is matched before the standard types.
// Of options that may appear once, the last one wins; only Pad1/PadN may
// follow an authentication option (ErrOptionOrder).
//
// An unknown MH type yields ErrUnknownType with m.Type set, so that the
// receiver can answer with a Binding Error (status 2). A non-compliant BID
// sub-option is recorded in m.Options.BIDs with Err set and reported as a
// *BIDError (the first one) after the whole message was parsed, so that a
// home agent can answer per BID. Every other error is a *ParseError.
func ParseMessage(b []byte, m *Message, prof *Profile) error {
	prof = profileOrDefault(prof)
	m.Reset()
	if len(b) < 8 {
		if len(b) > 0 {
			m.PayloadProto = b[0]
		}
		if len(b) > 2 {
			m.Type = MHType(b[2])
		}
		return &ParseError{What: whatMH, Offset: len(b), Err: ErrTruncated}
	}
	m.PayloadProto = b[0]
	m.Type = MHType(b[2])
	n := (int(b[1]) + 1) * 8
	if n > len(b) {
		return &ParseError{What: whatMH, Offset: 1, Err: ErrTruncated}
	}
	if n < len(b) {
		return &ParseError{What: whatMH, Offset: 1, Err: ErrBadLength}
	}
	if int(m.Type) >= len(optStart) {
		return &ParseError{What: whatMH, Offset: 2, Err: ErrUnknownType}
	}
	start := optStart[m.Type]
	if n < start {
		return &ParseError{What: m.Type.String(), Offset: 1, Err: ErrBadLength}
	}
	switch m.Type {
	case TypeHoTI, TypeCoTI:
		m.Cookie = [8]byte(b[8:16])
	case TypeHoT, TypeCoT:
		m.NonceIndex = be16(b[6:])
		m.Cookie = [8]byte(b[8:16])
		m.KeygenToken = [8]byte(b[16:24])
	case TypeBU:
		m.Sequence = be16(b[6:])
		m.Flags = be16(b[8:])
		m.Lifetime = be16(b[10:])
	case TypeBA:
		m.Status = Status(b[6])
		m.Flags = uint16(b[7])
		m.Sequence = be16(b[8:])
		m.Lifetime = be16(b[10:])
	case TypeBE:
		m.Status = Status(b[6])
		m.BEHomeAddress = netip.AddrFrom16([16]byte(b[8:24]))
	}
	return parseOptions(b, start, m, prof)
}

// parseOptions walks the mobility options of b (the whole MH) from off.
func parseOptions(b []byte, off int, m *Message, prof *Profile) error {
	o := &m.Options
	firstBad := -1
	for off < len(b) {
		t := OptionType(b[off])
		if t == OptPad1 {
			off++
			continue
		}
		end, err := optionEnd(b, off)
		if err != nil {
			return err
		}
		if t == OptPadN {
			off = end
			continue
		}
		if m.AuthOffset >= 0 {
			return &ParseError{What: whatOption, Offset: off, Err: ErrOptionOrder}
		}
		d := b[off+2 : end]
		if t == prof.BIDOptionType {
			// First: the bulk BU's many sub-options are the hot path.
			// Filled in place: copying BIDs around costs more than the
			// parsing.
			n := len(o.BIDs)
			if n < cap(o.BIDs) {
				o.BIDs = o.BIDs[:n+1]
			} else {
				o.BIDs = append(o.BIDs, BID{})
			}
			x := &o.BIDs[n]
			if !parseBID(x, d, prof) {
				o.BIDs = o.BIDs[:n]
				return &ParseError{What: whatOption, Offset: off, Err: ErrOptionLength}
			}
			if x.Err != nil && firstBad < 0 {
				firstBad = n
			}
		} else if err := parseOption(m, t, d, off); err != nil {
			return err
		}
		off = end
	}
	if firstBad >= 0 {
		x := &o.BIDs[firstBad]
		return &BIDError{Index: firstBad, BID: x.ID, Err: x.Err}
	}
	return nil
}

// optionEnd is the end of the option (not Pad1) at off, checked against b.
func optionEnd(b []byte, off int) (int, error) {
	if off+2 > len(b) {
		return 0, &ParseError{What: whatOption, Offset: off, Err: ErrOptionOverrun}
	}
	end := off + 2 + int(b[off+1])
	if end > len(b) {
		return 0, &ParseError{What: whatOption, Offset: off, Err: ErrOptionOverrun}
	}
	return end, nil
}

// parseOption decodes one option other than a BID sub-option or padding:
// its data d starts at off+2 in the MH.
func parseOption(m *Message, t OptionType, d []byte, off int) error {
	o := &m.Options
	l := len(d)
	bad := false // length wrong for the type
	switch t {
	case OptRefreshAdvice:
		if bad = l != optLenRefreshAdvice; !bad {
			o.HasRefreshAdvice = true
			o.RefreshInterval = be16(d)
		}
	case OptAltCoA:
		if bad = l != optLenAltCoA; !bad {
			o.AltCoA = netip.AddrFrom16([16]byte(d))
		}
	case OptNonceIndices:
		if bad = l != optLenNonceIndices; !bad {
			o.HasNonceIndices = true
			o.HomeNonceIndex = be16(d)
			o.CareofNonce = be16(d[2:])
		}
	case OptAuthData:
		if bad = l != optLenAuthData; !bad {
			o.HasAuthData = true
			o.Authenticator = [AuthenticatorLen]byte(d)
			m.AuthOffset = off + 2
		}
	case OptMobileNetPrefix:
		if bad = l != optLenMNP; !bad {
			// d[0] is Reserved.
			bits := int(d[1])
			if bits > 128 {
				return &ParseError{What: whatOption, Offset: off + 3, Err: ErrBadPrefix}
			}
			o.Prefixes = append(o.Prefixes, netip.PrefixFrom(netip.AddrFrom16([16]byte(d[2:18])), bits))
		}
	case OptMNID:
		if bad = l < 1; !bad {
			o.HasMNID = true
			o.MNIDSubtype = d[0]
			o.MNID = append(o.MNID[:0], d[1:]...)
		}
	case OptMNHAAuth:
		if bad = l < optLenMNHAMin; !bad {
			o.HasMNHAAuth = true
			o.MNHASubtype = d[0]
			o.MNHASPI = binary.BigEndian.Uint32(d[1:])
			o.MNHAAuthData = d[5:]
			m.AuthOffset = off + 7
		}
	default:
		o.Unknown++
	}
	if bad {
		return &ParseError{What: whatOption, Offset: off, Err: ErrOptionLength}
	}
	return nil
}

// parseBID decodes a BID sub-option's data (draft 4.3.1; RFC 5648 4.3 in
// the rfc5648 profile) into x, setting every field. A length that is none
// of the profile's is an option length error (false); the draft's own
// rules (BID 0 reserved, length matching C, R only with C) and, in the
// rfc5648 profile, an IPv4 care-of address (ErrIPv4CoA) are recorded in
// x.Err so that the sub-option can be answered.
func parseBID(x *BID, d []byte, prof *Profile) bool {
	l := len(d)
	coaLen := 0 // octets of Care-of Address field the length says
	switch {
	case l < 4:
		return false
	case l == int(prof.BIDLenNoCoA):
	case l == int(prof.BIDLenCoA) && l >= 20:
		coaLen = 16
	case prof.BIDLenCoA4 != 0 && l == int(prof.BIDLenCoA4) && l >= 8:
		coaLen = 4
	default:
		return false
	}
	x.ID = be16(d)
	x.PrioStatus = d[2]
	if prof.FlagCoA != 0 {
		x.C = d[3]&prof.FlagCoA != 0
	} else {
		x.C = coaLen != 0 // RFC 5648 4.3: presence by length
	}
	x.R = d[3]&prof.FlagRemove != 0 // the other bits are reserved: ignored
	x.H = d[3]&prof.FlagHome != 0
	withCoA := coaLen != 0
	switch {
	case x.ID == 0:
		x.Err = ErrBIDZero
	case x.C != withCoA:
		x.Err = ErrBIDLength
	case x.R && !x.C:
		x.Err = ErrRWithoutC
	case coaLen == 4:
		x.Err = ErrIPv4CoA
	default:
		x.Err = nil
	}
	switch {
	case x.C && coaLen == 16:
		x.CoA = netip.AddrFrom16([16]byte(d[4:20]))
	case x.C && coaLen == 4:
		x.CoA = netip.AddrFrom4([4]byte(d[4:8]))
	default:
		x.CoA = netip.Addr{}
	}
	return true
}
