package mhsock

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/mcoad/mcoad/pkg/proto"
)

// badBIDLengths takes a BU whose parse stopped at a BID sub-option with a
// Length that is none of the profile's: err is ParsePacket's
// *proto.ParseError (ErrOptionLength, offset at the option) for the packet
// b, whose Mobility Header p.MHBytes passed its checksum.
//
// Such a sub-option is not compliant (draft 4.3.1: Length 4 or 20), and
// the draft answers that per BID (6.2, 6.3: INCOMPLIANT BID SUBOPTION, the
// profile's BIDStatusIncompliant) while the rest of the BU is processed.
// So the message is parsed again with each such sub-option read as
// padding (the options after it, the authenticator's included, then
// count), and the sub-option goes back into p.MH.Options.BIDs at its place
// with its BID and priority and Err set to its *proto.ParseError (no
// flags: its layout is unknown). The result is a *proto.BIDError naming
// the first incompliant sub-option, as ParsePacket reports the others.
//
// err comes back unchanged, to be dropped, when the BU cannot be answered
// so: the bad option is not a BID sub-option or is too short to carry a
// BID, or another option is malformed. The packet's octets are as received
// on return.
func (x *rx) badBIDLengths(b []byte, p *proto.Packet, err error) error {
	mh := p.MHBytes
	if len(b) < proto.IPv6HeaderLen || len(mh) == 0 {
		return err
	}
	// ParsePacket's offsets count from the IPv6 header; its MH ends where
	// the Payload Length says.
	mhStart := proto.IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:])) - len(mh)
	type pending struct {
		at  int // index in the final Options.BIDs
		bid proto.BID
	}
	var bad []pending
	var patched []int // offsets in mh turned into PadN
	defer func() {
		for _, o := range patched {
			mh[o] = byte(x.prof.BIDOptionType)
		}
	}()
	cur := err
	for {
		var pe *proto.ParseError
		if !errors.As(cur, &pe) || !errors.Is(cur, proto.ErrOptionLength) {
			break
		}
		o := pe.Offset - mhStart
		if o < 0 || o+2 > len(mh) || proto.OptionType(mh[o]) != x.prof.BIDOptionType {
			return err
		}
		l := int(mh[o+1])
		if l < 2 || o+2+l > len(mh) {
			return err
		}
		d := mh[o+2 : o+2+l]
		bid := proto.BID{ID: binary.BigEndian.Uint16(d), Err: pe}
		if l > 2 {
			bid.PrioStatus = d[2]
		}
		// The parse stopped here: the BIDs before this sub-option are
		// parsed, the bad ones before it are not yet put back.
		bad = append(bad, pending{at: len(p.MH.Options.BIDs) + len(bad), bid: bid})
		mh[o] = byte(proto.OptPadN)
		patched = append(patched, o)
		// The checksum was verified over the octets as received.
		cur = proto.ParseMessage(mh, &p.MH, x.prof)
		if pe, ok := cur.(*proto.ParseError); ok {
			pe.Offset += mhStart // from the IPv6 header, as ParsePacket's
		}
	}
	var be *proto.BIDError
	if cur != nil && !errors.As(cur, &be) {
		return err
	}
	bids := p.MH.Options.BIDs
	for _, q := range bad {
		bids = slices.Insert(bids, q.at, q.bid)
	}
	p.MH.Options.BIDs = bids
	for i, b := range bids {
		if b.Err != nil {
			return &proto.BIDError{Index: i, BID: b.ID, Err: b.Err}
		}
	}
	return err // not reached: bad holds one at least
}
