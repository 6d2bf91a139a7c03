package proto

import (
	"fmt"
	"strconv"
)

// Profile holds the codepoints and flag semantics that the MCoA draft leaves
// "TBD", so that another wire profile (RFC 5648) is an addition, not a rewrite.
// Profiles are immutable once built; share them by pointer.
//
// A zero flag or length means that the profile has no such thing: RFC 5648
// has no C or R flag (the Care-of Address field's presence is given by the
// option length) and draft-00 has no H flag, no O flag and no IPv4 CoA.
type Profile struct {
	Name string

	// BIDOptionType is the mobility option type of the BID sub-option.
	BIDOptionType OptionType

	// BA statuses for MCoA.
	//
	// StatusMCoAConflict: draft-00 144 MCOA CONFLICT (a regular binding
	// was replaced); rfc5648 165 MCOA NON-MCOA BINDING EXISTS (a regular
	// binding exists and the BU was not processed: RFC 5648 4.4, 6.2).
	//
	// StatusBulkRegFail: the BA status saying "look at each BID option's
	// status". draft-00 145 BULK REGISTRATION FAIL is a rejection (>= 128);
	// rfc5648 4 MCOA NOTCOMPLETE is an accepted status (< 128, RFC 5648
	// 4.4, 6.2): Status.Accepted() is true for it, the per-BID statuses
	// say which bindings failed.
	//
	// StatusBulkNotSupported: draft-00 146 BULK REGISTRATION NOT SUPPORT;
	// rfc5648 168 MCOA BULK REGISTRATION PROHIBITED.
	StatusMCoAConflict     Status
	StatusBulkRegFail      Status
	StatusBulkNotSupported Status

	// Per-BID statuses carried in the Priority/Status field of a BA.
	// rfc5648: 0 means "the BA's own status applies" (RFC 5648 4.3) and a
	// non-compliant option is 164 MCOA MALFORMED (4.4, 6.2).
	BIDStatusAccepting   uint8
	BIDStatusIncompliant uint8

	// Bits of the BID sub-option's flags octet.
	FlagCoA    uint8 // C: a care-of address follows (bulk registration); 0: by length
	FlagRemove uint8 // R: remove this binding (valid only with C); 0: none
	// FlagHome is RFC 5648's H flag (4.3, "Simultaneous Home and Foreign
	// Binding"): the mobile node registers a home binding while attached
	// to the home link, its Care-of Address field set to the home address
	// (5.6.3). 0: the profile has none.
	FlagHome uint8

	// BID sub-option lengths (the Length octet) without and with an IPv6
	// CoA, and with an IPv4 CoA (0: IPv4 CoAs are not in the profile).
	BIDLenNoCoA, BIDLenCoA uint8
	BIDLenCoA4             uint8

	// BUFlagOverwrite is the Binding Update's O flag (RFC 5648 4.2: "all
	// the binding cache entries for a mobile node are replaced by new
	// entries registering with this Binding Update"), a bit of
	// Message.Flags; 0: the profile has none. It is only meaningful with
	// BID options, ignored in a de-registration (6.2), and set in the first
	// registration after a start (5.9).
	BUFlagOverwrite uint16

	// BA statuses that only RFC 5648 defines (0: not in the profile).
	StatusReturnHomeWoNDP          Status // 5 MCOA RETURNHOME WO/NDP
	StatusMCoAMalformed            Status // 164 MCOA MALFORMED
	StatusMCoAProhibited           Status // 166 MCOA PROHIBITED
	StatusMCoAUnknownCoA           Status // 167 MCOA UNKNOWN COA
	StatusSimHomeForeignProhibited Status // 169 MCOA SIMULTANEOUS HOME AND FOREIGN PROHIBITED

	// mcoaNames names the profile's MCoA status codes (StatusString).
	mcoaNames map[Status]string
}

// Draft00 is the default profile: draft-ietf-monami6-multiplecoa-00 exactly,
// with the BID sub-option at type 35 (DESIGN.md section 4).
var Draft00 = &Profile{
	Name:                   "draft-00",
	BIDOptionType:          OptBIDDefault,
	StatusMCoAConflict:     StatusDraftMCoAConflict,
	StatusBulkRegFail:      StatusDraftBulkRegFail,
	StatusBulkNotSupported: StatusDraftBulkRegNotSupported,
	BIDStatusAccepting:     0,
	BIDStatusIncompliant:   128,
	FlagCoA:                0x80,
	FlagRemove:             0x40,
	BIDLenNoCoA:            4,
	BIDLenCoA:              20,
	mcoaNames:              draftStatusNames,
}

// RFC5648 is the profile of the published standard, RFC 5648 "Multiple
// Care-of Addresses Registration": the Binding Identifier mobility option
// (type 35, 4.3) with Length 4 (no Care-of Address field), 8 (IPv4 CoA)
// or 20 (IPv6 CoA), a Status octet, the H flag (0x80) and 7 reserved bits;
// the Binding Update's O flag (4.2); BA statuses 4, 5 and 164-169 (4.4,
// 11). A BID option with an IPv4 CoA parses with BID.Err set to
// ErrIPv4CoA: this implementation registers IPv6 care-of addresses only
// (RFC 5648 8.1 needs DSMIPv6, RFC 5555), so the receiver refuses it with
// the RFC's status (StatusMCoAMalformed per BID) instead of using it.
var RFC5648 = &Profile{
	Name:                           "rfc5648",
	BIDOptionType:                  OptBIDDefault,
	StatusMCoAConflict:             StatusMCoANonMCoABindingExists,
	StatusBulkRegFail:              StatusMCoANotComplete,
	StatusBulkNotSupported:         StatusMCoABulkRegProhibited,
	BIDStatusAccepting:             0,
	BIDStatusIncompliant:           uint8(StatusMCoAMalformed),
	FlagHome:                       0x80,
	BIDLenNoCoA:                    4,
	BIDLenCoA:                      20,
	BIDLenCoA4:                     8,
	BUFlagOverwrite:                FlagO,
	StatusReturnHomeWoNDP:          StatusMCoAReturnHomeWoNDP,
	StatusMCoAMalformed:            StatusMCoAMalformed,
	StatusMCoAProhibited:           StatusMCoAProhibited,
	StatusMCoAUnknownCoA:           StatusMCoAUnknownCoA,
	StatusSimHomeForeignProhibited: StatusMCoASimHomeForeignProhibited,
	mcoaNames:                      rfc5648StatusNames,
}

// ProfileNames lists the known profiles, the default first.
var ProfileNames = []string{"draft-00", "rfc5648"}

// ProfileByName returns the named profile with the BID option type set
// (0 keeps the profile's default). Unknown names are an error.
func ProfileByName(name string, bidOptionType uint8) (*Profile, error) {
	var base *Profile
	switch name {
	case "", "draft-00":
		base = Draft00
	case "rfc5648":
		base = RFC5648
	default:
		return nil, fmt.Errorf("unknown wire profile %q (known: draft-00, rfc5648)", name)
	}
	if bidOptionType == 0 || OptionType(bidOptionType) == base.BIDOptionType {
		return base, nil
	}
	switch OptionType(bidOptionType) {
	case OptPad1, OptPadN, OptRefreshAdvice, OptAltCoA, OptNonceIndices, OptAuthData,
		OptMobileNetPrefix, OptMNID, OptMNHAAuth:
		return nil, fmt.Errorf("bid_option_type %d collides with a standard mobility option", bidOptionType)
	}
	p := *base
	p.BIDOptionType = OptionType(bidOptionType)
	return &p, nil
}

// StatusString names a BA status as this profile means it: the RFC 6275
// and RFC 3963 codes, then the profile's own MCoA codes (draft-00: 144-146;
// rfc5648: 4, 5 and 164-169 with the RFC's names). A code the profile
// does not define is "status N", so that a draft-00 code read under
// rfc5648 (or the reverse) does not pass for what it is not.
func (p *Profile) StatusString(s Status) string {
	p = profileOrDefault(p)
	if n, ok := baseStatusNames[s]; ok {
		return n
	}
	if n, ok := p.mcoaNames[s]; ok {
		return n
	}
	return "status " + strconv.Itoa(int(s))
}

func profileOrDefault(p *Profile) *Profile {
	if p == nil {
		return Draft00
	}
	return p
}
