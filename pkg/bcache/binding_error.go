package bcache

import (
	"net/netip"

	"github.com/mcoad/mcoad/pkg/proto"
)

// BindingError fills m with a Binding Error (RFC 6275 6.1.9) about hoa.
// With status 2 (unrecognized MH type) a BID sub-option is added when bid
// is not 0 (draft 6.5: when the BID of the received message is known).
// With status 1 (Home Address option without binding) there is never one:
// no binding means no BID (draft 6.5).
func BindingError(m *proto.Message, status proto.Status, hoa netip.Addr, bid uint16) {
	m.Reset()
	m.Type = proto.TypeBE
	m.PayloadProto = proto.ProtoNone
	m.Status = status
	m.BEHomeAddress = hoa
	if status != proto.BEUnknownHAO && bid != 0 {
		m.Options.BIDs = append(m.Options.BIDs, proto.BID{ID: bid})
	}
}
