package proto

import "fmt"

// Profile holds the codepoints and flag semantics that the MCoA draft leaves
// "TBD", so that another wire profile (RFC 5648) is an addition, not a rewrite.
// Profiles are immutable once built; share them by pointer.
type Profile struct {
	Name string

	// BIDOptionType is the mobility option type of the BID sub-option.
	BIDOptionType OptionType

	// BA statuses for MCoA.
	StatusMCoAConflict     Status
	StatusBulkRegFail      Status
	StatusBulkNotSupported Status

	// Per-BID statuses carried in the Priority/Status field of a BA.
	BIDStatusAccepting   uint8
	BIDStatusIncompliant uint8

	// Bits of the BID sub-option's flags octet.
	FlagCoA    uint8 // C: a care-of address follows (bulk registration)
	FlagRemove uint8 // R: remove this binding (valid only with C)

	// BID sub-option lengths (the Length octet) without and with a CoA.
	BIDLenNoCoA, BIDLenCoA uint8
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
}

// ProfileByName returns the named profile with the BID option type set
// (0 keeps the profile's default). Unknown names are an error.
func ProfileByName(name string, bidOptionType uint8) (*Profile, error) {
	var base *Profile
	switch name {
	case "", "draft-00":
		base = Draft00
	default:
		return nil, fmt.Errorf("unknown wire profile %q (known: draft-00)", name)
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

func profileOrDefault(p *Profile) *Profile {
	if p == nil {
		return Draft00
	}
	return p
}
