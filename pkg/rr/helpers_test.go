package rr

import (
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	tHoA  = netip.MustParseAddr("2001:db8:aaaa::100")
	tCN   = netip.MustParseAddr("2001:db8:cccc::1")
	tCoA1 = netip.MustParseAddr("2001:db8:1::10")
	tCoA2 = netip.MustParseAddr("2001:db8:2::10")
	tCoA3 = netip.MustParseAddr("2001:db8:3::10")
	tCoAs = []netip.Addr{tCoA1, tCoA2, tCoA3}
	t0    = time.Unix(1_700_000_000, 0)
)

// seeded is a deterministic random source.
func seeded(seed byte) *mrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

func newTestCN(t testing.TB, clk clock.Clock, cfg CNConfig) *CN {
	t.Helper()
	cfg.Clock = clk
	if cfg.Rand == nil {
		cfg.Rand = seeded(1)
	}
	c, err := NewCN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestMN(t testing.TB, clk clock.Clock) *MN {
	t.Helper()
	m, err := NewMN(MNConfig{HomeAddress: tHoA, Clock: clk, Rand: seeded(2)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wire marshals p (signing it) and parses the bytes back, as the receiver
// sees them; the returned packet's MHBytes alias the returned buffer.
func wire(t testing.TB, p *proto.Packet, sign proto.Signer) (*proto.Packet, []byte) {
	t.Helper()
	b, err := proto.AppendPacket(nil, p, nil, sign)
	if err != nil {
		t.Fatalf("marshal %v: %v", p.MH.Type, err)
	}
	var q proto.Packet
	if err := proto.ParsePacket(b, &q, nil); err != nil {
		t.Fatalf("parse %v: %v", p.MH.Type, err)
	}
	return &q, b
}

// reparse parses b again after a test changed it, fixing the checksum
// first, so that only the change under test matters.
func reparse(t testing.TB, b []byte) *proto.Packet {
	t.Helper()
	var q proto.Packet
	err := proto.ParsePacket(b, &q, nil)
	if errors.Is(err, proto.ErrChecksum) {
		proto.SetChecksum(q.MHBytes, q.ChecksumSrc(), q.ChecksumDst())
		err = proto.ParsePacket(b, &q, nil)
	}
	if err != nil {
		t.Fatalf("reparse: %v", err)
	}
	return &q
}
