package proto

import (
	"net/netip"
	"strconv"
)

// PeerProfile looks at a Mobility Header received under profile p (its raw
// bytes, from the Payload Proto octet, whether or not ParseMessage accepted
// them) for what only the other known profile sends, so that a daemon can
// tell its user which profile setting to change instead of failing
// silently. It returns the other profile's name and the evidence, or ""
// when nothing points elsewhere. hoa is the mobile node's home address
// when known (netip.Addr{} otherwise).
//
// The two profiles share type 35 and Lengths 4 and 20, so one message can
// be read under either; these signs cannot come from a compliant peer of
// p's own profile:
//
//   - under draft-00, from an RFC 5648 peer: BA status 4, 5 or 164-169; a
//     BID option status 164-169; a BID option of Length 8 (IPv4 CoA, RFC
//     5648 4.3); Length 20 without the C flag (RFC 5648: presence by
//     length).
//   - under rfc5648, from a draft-00 peer: BA status 144-146; the 0x40 bit
//     of a BID option (draft-00's R, reserved in RFC 5648 4.3); in a BU,
//     the 0x80 bit (draft-00's C, RFC 5648's H) on more than one BID
//     option, or with a Care-of Address field that is not hoa (RFC 5648
//     5.6.3: one home binding, its CoA the home address).
func (p *Profile) PeerProfile(mh []byte, hoa netip.Addr) (other, why string) {
	p = profileOrDefault(p)
	if len(mh) < 8 || int(mh[2]) >= len(optStart) {
		return "", ""
	}
	typ := MHType(mh[2])
	n := min((int(mh[1])+1)*8, len(mh))
	off := optStart[typ]
	if n < off {
		return "", ""
	}
	rfc := p.FlagCoA == 0 // the receiver speaks rfc5648
	other = "rfc5648"
	if rfc {
		other = "draft-00"
	}
	if typ == TypeBA {
		st := Status(mh[6])
		switch {
		case !rfc && (st == 4 || st == 5 || (st >= 164 && st <= 169)):
			return other, "BA status " + strconv.Itoa(int(st)) + " (" + RFC5648.StatusString(st) + ")"
		case rfc && st >= 144 && st <= 146:
			return other, "BA status " + strconv.Itoa(int(st)) + " (" + Draft00.StatusString(st) + ")"
		}
	}
	homes := 0
	for off < n {
		t := OptionType(mh[off])
		if t == OptPad1 {
			off++
			continue
		}
		if off+2 > n || off+2+int(mh[off+1]) > n {
			break
		}
		d := mh[off+2 : off+2+int(mh[off+1])]
		off += 2 + len(d)
		if t != p.BIDOptionType || len(d) < 4 {
			continue
		}
		id := "BID " + strconv.Itoa(int(be16(d)))
		if !rfc {
			switch {
			case typ == TypeBA && d[2] >= 164 && d[2] <= 169:
				return other, id + " status " + strconv.Itoa(int(d[2])) + " (" + RFC5648.StatusString(Status(d[2])) + ")"
			case len(d) == 8:
				return other, id + ": option Length 8 (an IPv4 care-of address)"
			case len(d) == 20 && d[3]&p.FlagCoA == 0:
				return other, id + ": option Length 20 without the C flag (care-of address given by the length)"
			}
			continue
		}
		switch {
		case d[3]&0x40 != 0:
			return other, id + ": reserved flag 0x40 set (draft-00's R flag)"
		case typ != TypeBU || d[3]&p.FlagHome == 0:
			continue
		}
		homes++
		if homes > 1 {
			return other, "more than one BID option with flag 0x80 (draft-00's C flag; RFC 5648's H allows one home binding)"
		}
		if len(d) == 20 && hoa.IsValid() && netip.AddrFrom16([16]byte(d[4:20])) != hoa.Unmap() {
			return other, id + ": flag 0x80 with care-of address " + netip.AddrFrom16([16]byte(d[4:20])).String() +
				", not the home address (draft-00's C flag, not RFC 5648's H)"
		}
	}
	return "", ""
}
