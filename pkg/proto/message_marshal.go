package proto

import (
	"encoding/binary"
	"fmt"
)

// AppendMessage appends m's wire form to b and sets m.AuthOffset (relative
// to the start of the MH). The checksum is left zero (SetChecksum, or
// AppendPacket, fills it in).
//
// Zero values mean defaults: PayloadProto 0 is sent as 59 (No Next
// Header), MNIDSubtype 0 as NAI, MNHASubtype 0 as MN-HA, an empty
// MNHAAuthData as 12 zero octets (room for a Signer).
//
// m is validated: BID 0, C without an IPv6 CoA (or a CoA without C), R
// without C, IPv4 addresses, both authentication options, or a message
// longer than 2048 octets (Header Len > 255) are errors. A BA is the
// exception for BID sub-options: it echoes the BU's sub-options with their
// per-BID status, compliant or not (draft 4.3.3), so in a BA only the wire
// form is enforced: C is sent with the CoA, or the unspecified address when
// the CoA is missing, and without C the CoA is not sent.
//
// The profile gives the BID sub-option's wire form. rfc5648 (RFC 5648 4.3)
// sends no C or R bit: C (with its CoA) makes the Length 20, or 8 with an
// IPv4 CoA (the one place an IPv4 address is accepted), without C it is
// 4; H sets the 0x80 bit; R is ErrInvalid, and so are H and IPv4 CoAs
// under draft-00. In a BA, C without a CoA sends no Care-of Address field
// under rfc5648 (RFC 5648 6.2 lets a BA omit it).
func AppendMessage(b []byte, m *Message, prof *Profile) ([]byte, error) {
	prof = profileOrDefault(prof)
	m.AuthOffset = -1
	if err := validate(m, prof); err != nil {
		return b, err
	}
	start := len(b)
	b = appendFixed(b, m)
	b = appendOptions(b, start, m, prof)
	b = appendAuth(b, start, m)
	b = pad(b, start, 8, 0)
	n := len(b) - start
	if n > MaxMessageLen {
		m.AuthOffset = -1
		return b[:start], fmt.Errorf("proto: %v message of %d octets: %w", m.Type, n, ErrTooLong)
	}
	b[start+1] = byte(n/8 - 1)
	return b, nil
}

// appendFixed appends the MH header (Header Len and checksum zero) and the
// type's fixed fields.
func appendFixed(b []byte, m *Message) []byte {
	pp := m.PayloadProto
	if pp == 0 {
		pp = ProtoNone
	}
	b = append(b, pp, 0, byte(m.Type), 0, 0, 0)
	switch m.Type {
	case TypeBRR:
		b = append(b, 0, 0)
	case TypeHoTI, TypeCoTI:
		b = append(b, 0, 0)
		b = append(b, m.Cookie[:]...)
	case TypeHoT, TypeCoT:
		b = binary.BigEndian.AppendUint16(b, m.NonceIndex)
		b = append(b, m.Cookie[:]...)
		b = append(b, m.KeygenToken[:]...)
	case TypeBU:
		b = binary.BigEndian.AppendUint16(b, m.Sequence)
		b = binary.BigEndian.AppendUint16(b, m.Flags)
		b = binary.BigEndian.AppendUint16(b, m.Lifetime)
	case TypeBA:
		b = append(b, byte(m.Status), byte(m.Flags))
		b = binary.BigEndian.AppendUint16(b, m.Sequence)
		b = binary.BigEndian.AppendUint16(b, m.Lifetime)
	case TypeBE:
		b = append(b, byte(m.Status), 0)
		var a [16]byte
		if m.BEHomeAddress.IsValid() {
			a = m.BEHomeAddress.As16()
		}
		b = append(b, a[:]...)
	}
	return b
}

// appendOptions appends the options before the authentication option, in
// a fixed order, each aligned as its specification asks, measured from the
// start of the MH (RFC 6275 6.2): Binding Refresh Advice (2n), Alternate
// CoA (8n+6), Nonce Indices (2n), the BID sub-options, Mobile Network
// Prefixes (8n+4), MN-ID. Pad1/PadN fill the gaps.
func appendOptions(b []byte, start int, m *Message, prof *Profile) []byte {
	o := &m.Options
	if o.HasRefreshAdvice {
		b = pad(b, start, 2, 0)
		b = append(b, byte(OptRefreshAdvice), optLenRefreshAdvice)
		b = binary.BigEndian.AppendUint16(b, o.RefreshInterval)
	}
	if o.AltCoA.IsValid() {
		b = pad(b, start, 8, 6)
		a := o.AltCoA.As16()
		b = append(b, byte(OptAltCoA), optLenAltCoA)
		b = append(b, a[:]...)
	}
	if o.HasNonceIndices {
		b = pad(b, start, 2, 0)
		b = append(b, byte(OptNonceIndices), optLenNonceIndices)
		b = binary.BigEndian.AppendUint16(b, o.HomeNonceIndex)
		b = binary.BigEndian.AppendUint16(b, o.CareofNonce)
	}
	for i := range o.BIDs {
		b = appendBID(b, start, &o.BIDs[i], prof)
	}
	for _, p := range o.Prefixes {
		b = pad(b, start, 8, 4)
		a := p.Addr().As16()
		b = append(b, byte(OptMobileNetPrefix), optLenMNP, 0, byte(p.Bits()))
		b = append(b, a[:]...)
	}
	if o.HasMNID {
		st := o.MNIDSubtype
		if st == 0 {
			st = MNIDSubtypeNAI
		}
		b = append(b, byte(OptMNID), byte(1+len(o.MNID)), st)
		b = append(b, o.MNID...)
	}
	return b
}

// appendBID appends one BID sub-option in the profile's wire form: 2n
// without and 8n+2 with a Care-of Address field (RFC 5648 4.3, either
// family), so that the CoA is 8-aligned.
func appendBID(b []byte, start int, x *BID, prof *Profile) []byte {
	var flags uint8
	if x.C {
		flags |= prof.FlagCoA
	}
	if x.R {
		flags |= prof.FlagRemove
	}
	if x.H {
		flags |= prof.FlagHome
	}
	// Without C no CoA is sent. With C, draft-00 sends the unspecified
	// address for a missing CoA (a BA echoing a bad sub-option); a
	// profile without a C flag (rfc5648) has nothing to say it with, so
	// the option goes without the Care-of Address field.
	if !x.C || (prof.FlagCoA == 0 && !x.CoA.IsValid()) {
		b = pad(b, start, 2, 0)
		b = append(b, byte(prof.BIDOptionType), prof.BIDLenNoCoA)
		b = binary.BigEndian.AppendUint16(b, x.ID)
		return append(b, x.PrioStatus, flags)
	}
	b = pad(b, start, 8, 2)
	if x.CoA.Is4() {
		a := x.CoA.As4()
		b = append(b, byte(prof.BIDOptionType), prof.BIDLenCoA4)
		b = binary.BigEndian.AppendUint16(b, x.ID)
		b = append(b, x.PrioStatus, flags)
		return append(b, a[:]...)
	}
	b = append(b, byte(prof.BIDOptionType), prof.BIDLenCoA)
	b = binary.BigEndian.AppendUint16(b, x.ID)
	b = append(b, x.PrioStatus, flags)
	var a [16]byte
	if x.CoA.IsValid() {
		a = x.CoA.As16()
	}
	return append(b, a[:]...)
}

// appendAuth appends the authentication option, which must be last, and
// sets m.AuthOffset: Binding Authorization Data (8n+2) or MN-HA (8n+5:
// 4n+1 with its SPI 4-aligned, and with a 96-bit authenticator it ends on
// an 8-octet boundary).
func appendAuth(b []byte, start int, m *Message) []byte {
	o := &m.Options
	if o.HasAuthData {
		b = pad(b, start, 8, 2)
		b = append(b, byte(OptAuthData), optLenAuthData)
		m.AuthOffset = len(b) - start
		b = append(b, o.Authenticator[:]...)
	}
	if o.HasMNHAAuth {
		b = pad(b, start, 8, 5)
		st := o.MNHASubtype
		if st == 0 {
			st = AuthSubtypeMNHA
		}
		n := len(o.MNHAAuthData)
		if n == 0 {
			n = AuthenticatorLen
		}
		b = append(b, byte(OptMNHAAuth), byte(5+n), st)
		b = binary.BigEndian.AppendUint32(b, o.MNHASPI)
		m.AuthOffset = len(b) - start
		if len(o.MNHAAuthData) == 0 {
			b = append(b, make([]byte, AuthenticatorLen)...)
		} else {
			b = append(b, o.MNHAAuthData...)
		}
	}
	return b
}

// pad appends Pad1 or PadN so that the next option starts at k modulo n
// from the start of the MH.
func pad(b []byte, start, n, k int) []byte {
	switch p := (k - (len(b)-start)%n + n) % n; p {
	case 0:
		return b
	case 1:
		return append(b, byte(OptPad1))
	default:
		b = append(b, byte(OptPadN), byte(p-2))
		for range p - 2 {
			b = append(b, 0)
		}
		return b
	}
}

// validate checks what the wire form cannot carry and what the draft
// forbids a sender to send.
func validate(m *Message, prof *Profile) error {
	if int(m.Type) >= len(optStart) {
		return fmt.Errorf("proto: cannot marshal %v: %w", m.Type, ErrUnknownType)
	}
	o := &m.Options
	if m.Type == TypeBE && m.BEHomeAddress.Is4() {
		return fmt.Errorf("proto: BE home address %v: %w", m.BEHomeAddress, ErrInvalid)
	}
	if o.AltCoA.Is4() {
		return fmt.Errorf("proto: alternate care-of address %v: %w", o.AltCoA, ErrInvalid)
	}
	for i := range o.BIDs {
		x := &o.BIDs[i]
		switch {
		case x.CoA.Is4() && prof.BIDLenCoA4 == 0:
			return fmt.Errorf("proto: BID %d care-of address %v: %w", x.ID, x.CoA, ErrInvalid)
		case x.R && prof.FlagRemove == 0:
			return fmt.Errorf("proto: BID %d: no R flag in profile %s: %w", x.ID, prof.Name, ErrInvalid)
		case x.H && prof.FlagHome == 0:
			return fmt.Errorf("proto: BID %d: no H flag in profile %s: %w", x.ID, prof.Name, ErrInvalid)
		}
		if m.Type == TypeBA {
			continue
		}
		switch {
		case x.ID == 0:
			return fmt.Errorf("proto: BID sub-option %d: %w", i, ErrBIDZero)
		case x.C != x.CoA.IsValid():
			return fmt.Errorf("proto: BID %d: C flag %v with care-of address %v: %w", x.ID, x.C, x.CoA, ErrBIDLength)
		case x.R && !x.C:
			return fmt.Errorf("proto: BID %d: %w", x.ID, ErrRWithoutC)
		}
	}
	for _, p := range o.Prefixes {
		if !p.IsValid() || !p.Addr().Is6() {
			return fmt.Errorf("proto: mobile network prefix %v: %w", p, ErrInvalid)
		}
	}
	if o.HasMNID && 1+len(o.MNID) > 255 {
		return fmt.Errorf("proto: MN-ID of %d octets: %w", len(o.MNID), ErrTooLong)
	}
	if o.HasMNHAAuth && 5+len(o.MNHAAuthData) > 255 {
		return fmt.Errorf("proto: MN-HA authenticator of %d octets: %w", len(o.MNHAAuthData), ErrTooLong)
	}
	if o.HasAuthData && o.HasMNHAAuth {
		return fmt.Errorf("proto: Binding Authorization Data and MN-HA authentication both must be last: %w", ErrInvalid)
	}
	return nil
}
