package mhsock

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/mcoad/mcoad/pkg/proto"
)

// DefaultNFTable is the name of the nftables table (family ip6) that holds
// the rules suppressing the kernel's Parameter Problem replies.
const DefaultNFTable = "mcoad_mh"

// Config configures a Conn. A nil *Config means the zero Config, which
// means the defaults.
type Config struct {
	// Profile is the wire profile for parsing and building; nil means
	// proto.Draft00.
	Profile *proto.Profile

	// Mark is put on every sent packet with SO_MARK (0: none), so that
	// policy routing and nftables can exempt signaling.
	Mark uint32

	// NFTable names the nftables table (family ip6) Conn owns; empty means
	// DefaultNFTable. Processes sharing a network namespace need distinct
	// names (e.g. "mcoad_mh" and "mcoa_ha_mh").
	NFTable string

	// NoICMPFilter leaves the kernel's ICMPv6 Parameter Problem replies
	// alone (no nftables table).
	NoICMPFilter bool

	// NoPin makes Send leave the choice of the outgoing interface to the
	// routing table instead of pinning it to the interface that owns the
	// source address. Home agents and correspondent nodes want this: their
	// address sits on the home link, while packets to care-of addresses
	// leave through another one. A mobile node keeps the default.
	NoPin bool

	// Local lists further destination addresses to accept besides this
	// namespace's own: a mobile node back on its home link receives the
	// home agent's answer to its home address before it may configure it
	// (RFC 6275 11.5.4).
	Local []netip.Addr

	// RecvBuffer is the AF_PACKET socket's receive buffer in bytes; 0
	// means 1 MiB.
	RecvBuffer int

	// Monitor is the daemon's netlink monitor of this namespace, whose
	// links and addresses tell which packets are for us and where to send
	// from. Nil: Listen runs one of its own until Close.
	Monitor *netmon.Monitor

	// Logger gets rare events (address refresh errors); nil means
	// slog.Default().
	Logger *slog.Logger
}

// MaxPacket is the largest packet Recv delivers whole: a Mobility Header is
// at most 2048 octets (8-bit Header Len in units of 8), plus an IPv6 header
// and extension headers. Larger packets are dropped and counted.
const MaxPacket = 8192

// Received is one received Mobility Header packet. It is owned by the
// caller and reused across Recv calls without allocating: Raw and
// Packet.MHBytes alias an internal buffer and are valid until the next
// Recv into the same Received.
type Received struct {
	// Packet holds the parsed packet: Src, Dst, HomeAddress (Home Address
	// option), RoutingHome (type 2 routing header), the message and
	// MHBytes (for authenticators). A non-compliant BID sub-option does
	// not drop the packet: see Err and Packet.MH.Options.BIDs[i].Err.
	Packet proto.Packet

	// Ifindex and IfName name the interface the packet came in on.
	Ifindex int
	IfName  string

	// LinkSrc is the link-layer source address (LinkSrcLen octets of it);
	// a home agent reaches a mobile node back home through it.
	LinkSrc    [8]byte
	LinkSrcLen int

	// Raw is the whole IPv6 packet as received.
	Raw []byte

	// Err is nil or one of the parse errors a receiver answers; other
	// parse errors drop the packet (counted in Stats):
	//   - an error that unwraps to proto.ErrUnknownType: the Mobility
	//     Header type is unknown and the receiver should answer with a
	//     Binding Error (RFC 6275 9.2); Packet.Src, Dst and HomeAddress
	//     are set;
	//   - a *proto.BIDError: the message was parsed completely but BID
	//     sub-option Index (its Err the same as Options.BIDs[Index].Err;
	//     others may follow) is not compliant, to be refused per BID
	//     (draft 6.2). In a BU, a BID sub-option whose Length is none of
	//     the profile's is one of them: it is in Options.BIDs with its BID
	//     and priority and an Err that is a *proto.ParseError unwrapping
	//     to proto.ErrOptionLength, and the options after it are parsed;
	//   - in a BU, an error that unwraps to proto.ErrBadPrefix: a Mobile
	//     Network Prefix option with a prefix length over 128, which a
	//     home agent answers with status 141 (RFC 3963 6.1.2); the
	//     options from that one on are missing.
	Err error

	buf []byte
}

// Stats counts packets. Drops are by cause.
type Stats struct {
	Received    uint64 // delivered by Recv
	Sent        uint64
	SendErrors  uint64
	Outgoing    uint64 // copies of packets this host sent (PACKET_OUTGOING)
	NotLocal    uint64 // destination is not an address of this namespace
	Checksum    uint64 // bad Mobility Header checksum
	Malformed   uint64 // not parseable (truncated, bad lengths, ...)
	NotMH       uint64 // passed the BPF filter but carries no Mobility Header
	TooLong     uint64 // longer than MaxPacket
	KernelDrops uint64 // dropped by the kernel: socket receive queue full
}

// Errors returned by Conn. They are wrapped; test with errors.Is.
var (
	// ErrNoInterface: Send found no interface owning the source address.
	ErrNoInterface = errors.New("mhsock: source address is not assigned to any interface")
	// ErrBadPacket: SendRaw got bytes that are not an IPv6 packet.
	ErrBadPacket = errors.New("mhsock: not an IPv6 packet")
)
