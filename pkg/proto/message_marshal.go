package proto

import (
	"encoding/binary"
	"fmt"
)

// AppendMessage appends m's wire form to b and sets m.AuthOffset (relative
// to the start of the MH). The checksum is left zero (SetChecksum, or
// AppendPacket, fills it in).
//
// Options go in a fixed order, each aligned as its specification asks,
// measured from the start of the MH (RFC 6275 6.2): Binding Refresh Advice
// (2n), Alternate CoA (8n+6), Nonce Indices (2n), the BID sub-options (2n,
// or 8n+2 with a CoA so that the CoA is 8-aligned), Mobile Network Prefixes
// (8n+4), MN-ID, then the authentication option, which must be last:
// Binding Authorization Data (8n+2) or MN-HA (8n+5: 4n+1 with its SPI
// 4-aligned, and with a 96-bit authenticator it ends on an 8-octet
// boundary). Pad1/PadN fill the gaps and pad the message to a multiple of 8.
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
func AppendMessage(b []byte, m *Message, prof *Profile) ([]byte, error) {
	prof = profileOrDefault(prof)
	m.AuthOffset = -1
	if err := validate(m); err != nil {
		return b, err
	}
	start := len(b)
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
		x := &o.BIDs[i]
		var flags uint8
		if x.C {
			flags |= prof.FlagCoA
		}
		if x.R {
			flags |= prof.FlagRemove
		}
		if !x.C {
			b = pad(b, start, 2, 0)
			b = append(b, byte(prof.BIDOptionType), prof.BIDLenNoCoA)
			b = binary.BigEndian.AppendUint16(b, x.ID)
			b = append(b, x.PrioStatus, flags)
			continue
		}
		b = pad(b, start, 8, 2)
		b = append(b, byte(prof.BIDOptionType), prof.BIDLenCoA)
		b = binary.BigEndian.AppendUint16(b, x.ID)
		b = append(b, x.PrioStatus, flags)
		var a [16]byte
		if x.CoA.IsValid() {
			a = x.CoA.As16()
		}
		b = append(b, a[:]...)
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
	b = pad(b, start, 8, 0)
	n := len(b) - start
	if n > MaxMessageLen {
		m.AuthOffset = -1
		return b[:start], fmt.Errorf("proto: %v message of %d octets: %w", m.Type, n, ErrTooLong)
	}
	b[start+1] = byte(n/8 - 1)
	return b, nil
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
func validate(m *Message) error {
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
		if x.CoA.Is4() {
			return fmt.Errorf("proto: BID %d care-of address %v: %w", x.ID, x.CoA, ErrInvalid)
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
