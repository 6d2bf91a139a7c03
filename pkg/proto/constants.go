package proto

import "strconv"

// IP protocol numbers used by MIPv6.
const (
	ProtoHopByHop = 0
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoIPv6     = 41 // IPv6-in-IPv6 encapsulation
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoICMPv6   = 58
	ProtoNone     = 59 // "No Next Header": the Payload Proto of every MH we send
	ProtoDstOpts  = 60
	ProtoMH       = 135 // Mobility Header
)

// Extension header codepoints.
const (
	OptHomeAddress    = 201 // Home Address destination option (RFC 6275 6.3)
	RoutingType2      = 2   // type 2 routing header (RFC 6275 6.4)
	DstOptPad1        = 0
	DstOptPadN        = 1
	IPv6HeaderLen     = 40
	HomeAddressOptLen = 24 // Destination Options header holding only the HAO, padded
	RoutingType2Len   = 24
)

// MHType is the Mobility Header type (RFC 6275 6.1.2).
type MHType uint8

const (
	TypeBRR  MHType = 0 // Binding Refresh Request
	TypeHoTI MHType = 1 // Home Test Init
	TypeCoTI MHType = 2 // Care-of Test Init
	TypeHoT  MHType = 3 // Home Test
	TypeCoT  MHType = 4 // Care-of Test
	TypeBU   MHType = 5 // Binding Update
	TypeBA   MHType = 6 // Binding Acknowledgement
	TypeBE   MHType = 7 // Binding Error
)

var mhTypeNames = [...]string{"BRR", "HoTI", "CoTI", "HoT", "CoT", "BU", "BA", "BE"}

func (t MHType) String() string {
	if int(t) < len(mhTypeNames) {
		return mhTypeNames[t]
	}
	return "MHType(" + strconv.Itoa(int(t)) + ")"
}

// OptionType is a mobility option type (RFC 6275 6.2, RFC 3963, 4283, 4285).
// The BID sub-option's type comes from the Profile.
type OptionType uint8

const (
	OptPad1            OptionType = 0
	OptPadN            OptionType = 1
	OptRefreshAdvice   OptionType = 2  // Binding Refresh Advice, 2n
	OptAltCoA          OptionType = 3  // Alternate Care-of Address, 8n+6
	OptNonceIndices    OptionType = 4  // Nonce Indices, 2n
	OptAuthData        OptionType = 5  // Binding Authorization Data, 8n+2, last
	OptMobileNetPrefix OptionType = 6  // RFC 3963, 8n+4
	OptMNID            OptionType = 8  // RFC 4283
	OptMNHAAuth        OptionType = 9  // RFC 4285 Mobility Message Authentication
	OptBIDDefault      OptionType = 35 // BID sub-option default (draft-00 profile)
)

// RFC 4285 authentication option subtypes and RFC 4283 MN-ID subtypes.
const (
	AuthSubtypeMNHA  = 1
	AuthSubtypeMNAAA = 2
	MNIDSubtypeNAI   = 1
)

// Status is a Binding Acknowledgement status (RFC 6275 6.1.8, RFC 3963 and the
// profile's MCoA codes) or, in a Binding Error, a BE status.
type Status uint8

// RFC 6275 and RFC 3963 BA status codes. Codes below 128 mean accepted.
const (
	StatusAccepted                 Status = 0
	StatusAcceptedPrefixDiscovery  Status = 1
	StatusUnspecified              Status = 128
	StatusAdminProhibited          Status = 129
	StatusInsufficientResources    Status = 130
	StatusHomeRegNotSupported      Status = 131
	StatusNotHomeSubnet            Status = 132
	StatusNotHomeAgentForMN        Status = 133
	StatusDADFailed                Status = 134
	StatusSequenceOutOfWindow      Status = 135
	StatusExpiredHomeNonce         Status = 136
	StatusExpiredCareofNonce       Status = 137
	StatusExpiredNonces            Status = 138
	StatusRegTypeChangeDisallowed  Status = 139
	StatusMRNotAuthorized          Status = 140 // RFC 3963: mobile router operation not permitted
	StatusInvalidPrefix            Status = 141
	StatusNotAuthorizedForPrefix   Status = 142
	StatusForwardingSetupFailed    Status = 143
	StatusDraftMCoAConflict        Status = 144 // draft-00 MCOA CONFLICT
	StatusDraftBulkRegFail         Status = 145 // draft-00 BULK REGISTRATION FAIL
	StatusDraftBulkRegNotSupported Status = 146 // draft-00 BULK REGISTRATION NOT SUPPORT
)

// RFC 5648 BA status codes (sections 4.4 and 11), used by the rfc5648
// profile. 4 and 5 are "successful" codes (below 128).
const (
	StatusMCoANotComplete              Status = 4   // MCOA NOTCOMPLETE: see each BID option's status
	StatusMCoAReturnHomeWoNDP          Status = 5   // MCOA RETURNHOME WO/NDP: no Neighbor Discovery for the HoA on the home link
	StatusMCoAMalformed                Status = 164 // MCOA MALFORMED: BID option badly formed
	StatusMCoANonMCoABindingExists     Status = 165 // MCOA NON-MCOA BINDING EXISTS: a regular binding exists, O not set
	StatusMCoAProhibited               Status = 166 // MCOA PROHIBITED
	StatusMCoAUnknownCoA               Status = 167 // MCOA UNKNOWN COA: no CoA field and no binding for the BID
	StatusMCoABulkRegProhibited        Status = 168 // MCOA BULK REGISTRATION PROHIBITED
	StatusMCoASimHomeForeignProhibited Status = 169 // MCOA SIMULTANEOUS HOME AND FOREIGN PROHIBITED
)

// Binding Error statuses (RFC 6275 6.1.9).
const (
	BEUnknownHAO  Status = 1 // unknown binding for Home Address destination option
	BEUnknownType Status = 2 // unrecognized MH Type value
)

// Accepted reports whether a BA status means the binding was accepted.
func (s Status) Accepted() bool { return s < 128 }

// baseStatusNames: RFC 6275 and RFC 3963.
var baseStatusNames = map[Status]string{
	0: "accepted", 1: "accepted, prefix discovery necessary",
	128: "reason unspecified", 129: "administratively prohibited",
	130: "insufficient resources", 131: "home registration not supported",
	132: "not home subnet", 133: "not home agent for this mobile node",
	134: "duplicate address detection failed", 135: "sequence number out of window",
	136: "expired home nonce index", 137: "expired care-of nonce index",
	138: "expired nonces", 139: "registration type change disallowed",
	140: "mobile router operation not permitted", 141: "invalid prefix",
	142: "not authorized for prefix", 143: "forwarding setup failed",
}

// draftStatusNames: the draft-00 profile's MCoA codes.
var draftStatusNames = map[Status]string{
	144: "MCoA conflict", 145: "bulk registration fail", 146: "bulk registration not supported",
}

// rfc5648StatusNames: RFC 5648's codes with the names of its IANA section
// (11; 4.4 spells 167 "UNKOWN").
var rfc5648StatusNames = map[Status]string{
	StatusMCoANotComplete:              "MCOA NOTCOMPLETE",
	StatusMCoAReturnHomeWoNDP:          "MCOA RETURNHOME WO/NDP",
	StatusMCoAMalformed:                "MCOA MALFORMED",
	StatusMCoANonMCoABindingExists:     "MCOA NON-MCOA BINDING EXISTS",
	StatusMCoAProhibited:               "MCOA PROHIBITED",
	StatusMCoAUnknownCoA:               "MCOA UNKNOWN COA",
	StatusMCoABulkRegProhibited:        "MCOA BULK REGISTRATION PROHIBITED",
	StatusMCoASimHomeForeignProhibited: "MCOA SIMULTANEOUS HOME AND FOREIGN PROHIBITED",
}

// String names the status as RFC 6275, RFC 3963 and the draft-00 profile
// do, and the codes that only RFC 5648 assigns (4, 5, 164-169) with the
// RFC's names, so that a status from a peer of either profile reads right
// in a log. Profile.StatusString names a status as one profile means it.
func (s Status) String() string {
	if n, ok := baseStatusNames[s]; ok {
		return n
	}
	if n, ok := draftStatusNames[s]; ok {
		return n
	}
	if n, ok := rfc5648StatusNames[s]; ok {
		return n
	}
	return "status " + strconv.Itoa(int(s))
}

// Protocol constants of RFC 6275 section 12.
const (
	LifetimeUnitSeconds             = 4
	InitialBindAckTimeoutMs         = 1000
	MaxBindAckTimeoutMs             = 32000
	MaxUpdateRatePerSecond          = 3
	MaxTokenLifetimeSec             = 210
	MaxNonceLifetimeSec             = 240
	MaxRRBindingLifetimeSec         = 420
	InitialBindAckTimeoutFirstRegMs = 1500
)

// SeqLess reports whether sequence number a is before b modulo 2^16
// (RFC 6275 9.5.1: "less than" in the sense of RFC 1982 serial arithmetic).
func SeqLess(a, b uint16) bool { return a != b && int16(b-a) > 0 }

// SeqAfter reports whether a is after b modulo 2^16.
func SeqAfter(a, b uint16) bool { return SeqLess(b, a) }
