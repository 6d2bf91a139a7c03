// Package pkttest builds packets and addresses for pkg/dataplane's tests.
package pkttest

import (
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/testutil"
)

var (
	THoA = netip.MustParseAddr("2001:db8:aaaa::100")
	THA  = netip.MustParseAddr("2001:db8:aaaa::1")
	TCN  = netip.MustParseAddr("2001:db8:cccc::1")
	TCoA = [3]netip.Addr{
		netip.MustParseAddr("2001:db8:1::ff:fe00:1"),
		netip.MustParseAddr("2001:db8:2::ff:fe00:2"),
		netip.MustParseAddr("2001:db8:3::ff:fe00:3"),
	}
)

// Unhex decodes hex with spaces and newlines for readability.
func Unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The reference sum and pseudo-header, independent of csumAdd.
var (
	NaiveSum = testutil.Sum
	Pseudo   = testutil.Pseudo
)

// UpperChecksumOK checks the upper-layer checksum of a packet without
// extension headers.
func UpperChecksumOK(pkt []byte) bool {
	return NaiveSum(Pseudo(pkt[8:24], pkt[24:40], pkt[6], len(pkt)-40), pkt[40:]) == 0xffff
}

// IP6 builds an IPv6 packet; the upper-layer checksum (TCP, UDP, ICMPv6)
// is filled in when its field is zero.
func IP6(tc uint8, fl uint32, nh uint8, hlim uint8, src, dst netip.Addr, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	binary.BigEndian.PutUint32(p, 6<<28|uint32(tc)<<20|fl)
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = nh, hlim
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], payload)
	off := map[uint8]int{6: 16, 17: 6, 58: 2} // TCP, UDP, ICMPv6 checksum offsets
	if o, ok := off[nh]; ok && len(payload) >= o+2 && binary.BigEndian.Uint16(payload[o:]) == 0 {
		c := ^NaiveSum(Pseudo(p[8:24], p[24:40], nh, len(payload)), p[40:])
		binary.BigEndian.PutUint16(p[40+o:], c)
	}
	return p
}

// Echo is an ICMPv6 echo request (128) or reply (129) with id, seq and
// n bytes of data.
func Echo(typ uint8, id, seq uint16, n int) []byte {
	b := make([]byte, 8+n)
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := range n {
		b[8+i] = byte(i)
	}
	return b
}

// TCPSeg is a TCP header (with a 12-byte timestamp option block) and
// payload.
func TCPSeg(sport, dport uint16, seq, ack uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, 32+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 8 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 512)
	copy(b[20:], []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9})
	copy(b[32:], payload)
	return b
}

func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// WithHeadroom returns pkt behind the room for an outer IPv6 header (the
// data plane's headroom).
func WithHeadroom(pkt []byte) []byte {
	return append(make([]byte, 40), pkt...)
}

var Quiet = slog.New(slog.DiscardHandler)
