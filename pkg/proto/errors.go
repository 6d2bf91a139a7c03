package proto

import (
	"errors"
	"fmt"
)

// Sentinel errors; every parse error wraps one of them (errors.Is).
var (
	ErrTruncated     = errors.New("truncated")
	ErrBadLength     = errors.New("bad length field")
	ErrChecksum      = errors.New("bad checksum")
	ErrUnknownType   = errors.New("unknown mobility header type")
	ErrOptionOverrun = errors.New("option runs past the end of the message")
	ErrOptionLength  = errors.New("option length does not fit its type")
	ErrNotMH         = errors.New("packet carries no mobility header")
	ErrBadHeader     = errors.New("malformed IPv6 or extension header")
	ErrBIDZero       = errors.New("BID 0 is reserved")
	ErrBIDLength     = errors.New("BID sub-option length does not match its C flag")
	ErrRWithoutC     = errors.New("BID sub-option has R without C")
	ErrTooLong       = errors.New("message too long")
	// ErrIPv4CoA: an RFC 5648 Binding Identifier option with an IPv4
	// care-of address (Length 8, RFC 5648 4.3 and 8.1). It is well formed,
	// but this implementation registers IPv6 care-of addresses only: the
	// parser records it in BID.Err (the address in BID.CoA) and reports a
	// *BIDError, so that the receiver refuses that BID with the profile's
	// BIDStatusIncompliant (164 MCOA MALFORMED), not a crash.
	ErrIPv4CoA = errors.New("BID option carries an IPv4 care-of address (not supported)")
	// ErrOptionOrder: an option follows an authentication option (Binding
	// Authorization Data, RFC 6275 6.2.7; MN-HA, RFC 4285 5), which must be
	// last because the authenticator does not cover what follows it.
	ErrOptionOrder = errors.New("option after the authentication option")
	// ErrBadPrefix: a Mobile Network Prefix option with a prefix length
	// over 128.
	ErrBadPrefix = errors.New("mobile network prefix length over 128")
	// ErrInvalid: a value that cannot be marshalled (an IPv4 address where
	// the wire carries IPv6, two authentication options, a Signer with no
	// authentication option...).
	ErrInvalid = errors.New("invalid value")
)

// ParseError says where parsing failed. It unwraps to a sentinel above.
type ParseError struct {
	What   string // e.g. "BU", "option 3", "destination options"
	Offset int    // octet offset in the input
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("proto: %s at offset %d: %v", e.What, e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// BIDError reports a non-compliant BID sub-option. The message was otherwise
// parsed completely, so a receiver can answer with per-BID status.
type BIDError struct {
	Index int    // index in Options.BIDs
	BID   uint16 // the sub-option's BID field
	Err   error  // ErrBIDZero, ErrBIDLength, ErrRWithoutC or ErrIPv4CoA
}

func (e *BIDError) Error() string {
	return fmt.Sprintf("proto: BID sub-option %d (BID %d): %v", e.Index, e.BID, e.Err)
}

func (e *BIDError) Unwrap() error { return e.Err }
