package mhsock

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	tCoA = netip.MustParseAddr("2001:db8:1::2")
	tHA  = netip.MustParseAddr("2001:db8:1::1")
	tHoA = netip.MustParseAddr("2001:db8:aaaa::100")
	tLL  = netip.MustParseAddr("fe80::1")
)

const tIfindex = 7

func testRx(addrs ...netip.Addr) *rx {
	x := &rx{prof: proto.Draft00}
	s := &addrSet{
		owner:     map[netip.Addr]int{},
		linkLocal: map[llKey]struct{}{{tLL, tIfindex}: {}},
		names:     map[int]string{tIfindex: "eth7"},
		loopback:  map[int]bool{},
	}
	for _, a := range addrs {
		s.owner[a] = tIfindex
	}
	x.addrs.Store(s)
	return x
}

// testBU is a BU from tCoA to tHA with a Home Address option and a BID.
func testBU() *proto.Packet {
	return &proto.Packet{
		Src: tCoA, Dst: tHA, HopLimit: 64, HomeAddress: tHoA,
		MH: proto.Message{
			Type: proto.TypeBU, Sequence: 4242, Lifetime: 105,
			Flags:   proto.FlagA | proto.FlagH,
			Options: proto.Options{BIDs: []proto.BID{{ID: 3, PrioStatus: 20}}},
		},
	}
}

// testBA is a BA from tHA to tCoA with a type 2 routing header.
func testBA() *proto.Packet {
	return &proto.Packet{
		Src: tHA, Dst: tCoA, HopLimit: 64, RoutingHome: tHoA,
		MH: proto.Message{
			Type: proto.TypeBA, Status: proto.StatusAccepted, Sequence: 4242, Lifetime: 100,
			Options: proto.Options{BIDs: []proto.BID{{ID: 3, PrioStatus: 0}}},
		},
	}
}

func mustAppend(t testing.TB, p *proto.Packet) []byte {
	t.Helper()
	b, err := proto.AppendPacket(nil, p, proto.Draft00, nil)
	if err != nil {
		t.Fatalf("AppendPacket: %v", err)
	}
	return b
}

// feed puts pkt into r's buffer as a read of n octets would and runs accept.
func feed(x *rx, r *Received, pkt []byte, n int, ifindex int, pkttype uint8) bool {
	r.ensureBuf()
	copy(r.buf, pkt)
	return x.accept(r, n, ifindex, pkttype)
}

func TestAcceptDropsBeforeParsing(t *testing.T) {
	bu := newPkt().ext(60, 2).build(135, make([]byte, 16)) // 2001:db8::1 -> ::2
	dst := netip.MustParseAddr("2001:db8::2")
	v4 := append([]byte{}, bu...)
	v4[0] = 0x45
	toLL := append([]byte{}, bu...)
	copy(toLL[24:40], tLL.AsSlice())
	cases := []struct {
		name    string
		pkt     []byte
		n       int
		ifindex int
		pkttype uint8
		counter func(Stats) uint64
	}{
		{"outgoing", bu, len(bu), tIfindex, packetOutgoing, func(s Stats) uint64 { return s.Outgoing }},
		{"too long", bu, MaxPacket + 1, tIfindex, packetHost, func(s Stats) uint64 { return s.TooLong }},
		{"short", bu[:39], 39, tIfindex, packetHost, func(s Stats) uint64 { return s.Malformed }},
		{"IPv4", v4, len(v4), tIfindex, packetHost, func(s Stats) uint64 { return s.Malformed }},
		{"link-local on another interface", toLL, len(toLL), tIfindex + 1, packetHost, func(s Stats) uint64 { return s.NotLocal }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := testRx(dst)
			var r Received
			if feed(x, &r, c.pkt, c.n, c.ifindex, c.pkttype) {
				t.Fatal("accepted")
			}
			if got := c.counter(x.stats()); got != 1 {
				t.Errorf("counter = %d, want 1 (%+v)", got, x.stats())
			}
		})
	}
	t.Run("not local", func(t *testing.T) {
		x := testRx(tHA)
		var r Received
		if feed(x, &r, bu, len(bu), tIfindex, packetHost) {
			t.Fatal("accepted")
		}
		if s := x.stats(); s.NotLocal != 1 {
			t.Errorf("NotLocal = %d", s.NotLocal)
		}
	})
}

func TestAcceptBU(t *testing.T) {
	x := testRx(tHA)
	pkt := mustAppend(t, testBU())
	var r Received
	if !feed(x, &r, pkt, len(pkt), tIfindex, packetHost) {
		t.Fatalf("dropped: %+v", x.stats())
	}
	p := &r.Packet
	if p.Src != tCoA || p.Dst != tHA || p.HomeAddress != tHoA || p.RoutingHome.IsValid() {
		t.Errorf("addresses: src %s dst %s hoa %s rh %s", p.Src, p.Dst, p.HomeAddress, p.RoutingHome)
	}
	if p.MH.Type != proto.TypeBU || p.MH.Sequence != 4242 || len(p.MH.Options.BIDs) != 1 || p.MH.Options.BIDs[0].ID != 3 {
		t.Errorf("message: %+v", p.MH)
	}
	if r.Ifindex != tIfindex || r.IfName != "eth7" || r.Err != nil {
		t.Errorf("ifindex %d name %q err %v", r.Ifindex, r.IfName, r.Err)
	}
	if !bytes.Equal(r.Raw, pkt) || len(p.MHBytes) == 0 || !bytes.HasSuffix(pkt, p.MHBytes) {
		t.Errorf("raw %x mh %x", r.Raw, p.MHBytes)
	}
	if s := x.stats(); s.Received != 1 {
		t.Errorf("Received = %d", s.Received)
	}
}

func TestAcceptBadPackets(t *testing.T) {
	good := mustAppend(t, testBU())
	mhOff := proto.IPv6HeaderLen + proto.HomeAddressOptLen
	badSum := append([]byte{}, good...)
	badSum[mhOff+4] ^= 0x5a
	for _, c := range []struct {
		name    string
		pkt     []byte
		counter func(Stats) uint64
	}{
		{"checksum", badSum, func(s Stats) uint64 { return s.Checksum }},
		{"truncated", good[:len(good)-3], func(s Stats) uint64 { return s.Malformed }},
		{"cut after the options", good[:mhOff], func(s Stats) uint64 { return s.Malformed + s.NotMH }},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := testRx(tHA)
			var r Received
			if feed(x, &r, c.pkt, len(c.pkt), tIfindex, packetHost) {
				t.Fatal("accepted")
			}
			if got := c.counter(x.stats()); got != 1 {
				t.Errorf("counter = %d (%+v)", got, x.stats())
			}
		})
	}
	// Every prefix of a good packet: dropped or delivered, never a panic.
	x := testRx(tHA)
	var r Received
	for n := range len(good) {
		feed(x, &r, good[:n], n, tIfindex, packetHost)
	}
	if s := x.stats(); s.Received != 0 {
		t.Errorf("a truncated packet was delivered: %+v", s)
	}
}

func TestAcceptUnknownType(t *testing.T) {
	p := testBU()
	pkt := mustAppend(t, p)
	mh := pkt[proto.IPv6HeaderLen+proto.HomeAddressOptLen:]
	mh[2] = 200
	proto.SetChecksum(mh, p.ChecksumSrc(), p.ChecksumDst())
	x := testRx(tHA)
	var r Received
	if !feed(x, &r, pkt, len(pkt), tIfindex, packetHost) {
		t.Fatalf("dropped: %+v", x.stats())
	}
	if !errors.Is(r.Err, proto.ErrUnknownType) || r.Packet.Src != tCoA || r.Packet.Dst != tHA {
		t.Errorf("err %v src %s dst %s", r.Err, r.Packet.Src, r.Packet.Dst)
	}
}

func TestAcceptBIDError(t *testing.T) {
	p := testBU()
	pkt := mustAppend(t, p)
	// Patch the BID sub-option (type 35, length 4, BID 3) to the reserved
	// BID 0: the packet must still be delivered, with the error on the BID.
	mh := pkt[proto.IPv6HeaderLen+proto.HomeAddressOptLen:]
	i := bytes.Index(mh, []byte{byte(proto.OptBIDDefault), 4, 0, 3})
	if i < 0 {
		t.Fatalf("no BID sub-option in %x", mh)
	}
	mh[i+3] = 0
	proto.SetChecksum(mh, p.ChecksumSrc(), p.ChecksumDst())
	x := testRx(tHA)
	var r Received
	if !feed(x, &r, pkt, len(pkt), tIfindex, packetHost) {
		t.Fatalf("dropped: %+v", x.stats())
	}
	if b := r.Packet.MH.Options.BIDs; len(b) != 1 || b[0].Err == nil || r.Err != nil {
		t.Errorf("BIDs %+v err %v", b, r.Err)
	}
}

// BenchmarkRecvPath is the Go side of receiving a BU: the checks and
// proto.ParsePacket (the kernel runs the BPF filter; BenchmarkFilterVM
// interprets it in Go, which is far slower than the kernel's JIT).
func BenchmarkRecvPath(b *testing.B) {
	x := testRx(tHA)
	pkt := mustAppend(b, testBU())
	var r Received
	r.ensureBuf()
	copy(r.buf, pkt)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if !x.accept(&r, len(pkt), tIfindex, packetHost) {
			b.Fatalf("dropped: %+v", x.stats())
		}
	}
}

// FuzzAccept: whatever the filter lets through, the Go side drops or
// delivers it, never panics, and delivers only what it could parse.
func FuzzAccept(f *testing.F) {
	f.Add(mustAppend(f, testBU()), uint8(packetHost))
	f.Add(mustAppend(f, testBA()), uint8(packetHost))
	f.Add(newPkt().ext(0, 0).ext(60, 2).build(135, make([]byte, 16)), uint8(packetHost))
	f.Fuzz(func(t *testing.T, pkt []byte, pkttype uint8) {
		if len(pkt) > MaxPacket {
			return
		}
		// Addressed to us whatever the input says, so that parsing runs.
		var dst netip.Addr
		if len(pkt) >= 40 {
			dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		}
		x := testRx(dst)
		var r Received
		if feed(x, &r, pkt, len(pkt), tIfindex, pkttype) {
			if r.Err == nil && r.Packet.MH.Type > proto.TypeBE {
				t.Errorf("delivered an unknown type without an error: %v", r.Packet.MH.Type)
			}
			if !bytes.Equal(r.Raw, pkt) {
				t.Errorf("Raw is not the packet")
			}
		}
		s := x.stats()
		if s.Received+s.Outgoing+s.NotLocal+s.Checksum+s.Malformed+s.NotMH+s.TooLong != 1 {
			t.Errorf("a packet must be counted exactly once: %+v", s)
		}
	})
}
