package mhsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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
	b := r.Packet.MH.Options.BIDs
	if len(b) != 1 || !errors.Is(b[0].Err, proto.ErrBIDZero) {
		t.Errorf("BIDs %+v", b)
	}
	// The receiver gets the error too: a *proto.BIDError naming it.
	var be *proto.BIDError
	if !errors.As(r.Err, &be) || be.Index != 0 || !errors.Is(r.Err, proto.ErrBIDZero) {
		t.Errorf("err %v, want a *proto.BIDError for sub-option 0", r.Err)
	}
}

// withOptions marshals p without options, gives its Mobility Header the
// raw options opts (padded with PadN) and sets the lengths and checksum.
func withOptions(t *testing.T, p *proto.Packet, opts ...[]byte) []byte {
	t.Helper()
	q := *p
	q.MH.Options = proto.Options{}
	b := mustAppend(t, &q)
	var parsed proto.Packet
	if err := proto.ParsePacket(b, &parsed, proto.Draft00); err != nil {
		t.Fatal(err)
	}
	off := len(b) - len(parsed.MHBytes)
	mh := append([]byte{}, b[off:off+12]...) // BU and BA: 12 octets before the options
	for _, o := range opts {
		mh = append(mh, o...)
	}
	switch n := (8 - len(mh)%8) % 8; n {
	case 0:
	case 1:
		mh = append(mh, byte(proto.OptPad1))
	default:
		mh = append(mh, byte(proto.OptPadN), byte(n-2))
		mh = append(mh, make([]byte, n-2)...)
	}
	mh[1] = byte(len(mh)/8 - 1)
	proto.SetChecksum(mh, p.ChecksumSrc(), p.ChecksumDst())
	b = append(b[:off], mh...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-proto.IPv6HeaderLen))
	return b
}

// bidOpt is a draft-00 BID sub-option of Length l: BID, priority, flags,
// then zeros.
func bidOpt(l int, bid uint16, prio, flags byte) []byte {
	o := make([]byte, 2+l)
	o[0], o[1] = byte(proto.OptBIDDefault), byte(l)
	d := o[2:]
	for i, v := range []byte{byte(bid >> 8), byte(bid), prio, flags} {
		if i < l {
			d[i] = v
		}
	}
	return o
}

// mnhaOpt is an RFC 4285 MN-HA authentication option with SPI spi.
func mnhaOpt(spi uint32) []byte {
	o := []byte{byte(proto.OptMNHAAuth), 5 + proto.AuthenticatorLen, proto.AuthSubtypeMNHA, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(o[3:], spi)
	return append(o, bytes.Repeat([]byte{0xab}, proto.AuthenticatorLen)...)
}

// A BU whose BID sub-option has a Length that is none of the profile's
// reaches the receiver, which refuses that BID (draft 6.2): the sub-option
// is in Options.BIDs at its place with its error, the options after it are
// parsed, and the packet is as received.
func TestAcceptBIDBadLength(t *testing.T) {
	t.Run("alone", func(t *testing.T) {
		pkt := withOptions(t, testBU(), bidOpt(6, 3, 20, 0))
		orig := append([]byte{}, pkt...)
		x := testRx(tHA)
		var r Received
		if !feed(x, &r, pkt, len(pkt), tIfindex, packetHost) {
			t.Fatalf("dropped: %+v", x.stats())
		}
		b := r.Packet.MH.Options.BIDs
		if len(b) != 1 || b[0].ID != 3 || b[0].PrioStatus != 20 || b[0].C || !errors.Is(b[0].Err, proto.ErrOptionLength) {
			t.Fatalf("BIDs %+v", b)
		}
		var be *proto.BIDError
		var pe *proto.ParseError
		if !errors.As(r.Err, &be) || be.Index != 0 || be.BID != 3 || !errors.As(r.Err, &pe) || !errors.Is(r.Err, proto.ErrOptionLength) {
			t.Fatalf("err %v, want a *proto.BIDError wrapping the *proto.ParseError", r.Err)
		}
		if want := proto.IPv6HeaderLen + proto.HomeAddressOptLen + 12; pe.Offset != want {
			t.Errorf("error offset %d, want %d (the option, from the IPv6 header)", pe.Offset, want)
		}
		if !bytes.Equal(r.Raw, orig) || !bytes.HasSuffix(orig, r.Packet.MHBytes) {
			t.Errorf("packet changed:\n%x\n%x", r.Raw, orig)
		}
		if s := x.stats(); s.Received != 1 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("among good ones, authenticator after", func(t *testing.T) {
		pkt := withOptions(t, testBU(),
			bidOpt(4, 1, 10, 0), bidOpt(8, 2, 11, 0x80), bidOpt(4, 5, 12, 0), bidOpt(3, 7, 13, 0), bidOpt(4, 0, 14, 0),
			mnhaOpt(1000))
		orig := append([]byte{}, pkt...)
		x := testRx(tHA)
		var r Received
		if !feed(x, &r, pkt, len(pkt), tIfindex, packetHost) {
			t.Fatalf("dropped: %+v", x.stats())
		}
		m := &r.Packet.MH
		var got []string
		for _, b := range m.Options.BIDs {
			got = append(got, fmt.Sprintf("%d/%d/%v", b.ID, b.PrioStatus, b.Err != nil))
		}
		if want := "[1/10/false 2/11/true 5/12/false 7/13/true 0/14/true]"; fmt.Sprint(got) != want {
			t.Errorf("BIDs %v, want %s", got, want)
		}
		if b := m.Options.BIDs; len(b) == 5 && (!errors.Is(b[3].Err, proto.ErrOptionLength) || !errors.Is(b[4].Err, proto.ErrBIDZero) || b[1].C) {
			t.Errorf("BID errors %v %v %v, C %v", b[1].Err, b[3].Err, b[4].Err, b[1].C)
		}
		var be *proto.BIDError
		if !errors.As(r.Err, &be) || be.Index != 1 || be.BID != 2 {
			t.Errorf("err %v, want the first bad sub-option (index 1, BID 2)", r.Err)
		}
		if !m.Options.HasMNHAAuth || m.Options.MNHASPI != 1000 || m.AuthOffset < 0 {
			t.Errorf("authentication option not parsed: %+v", m.Options)
		}
		if !bytes.Equal(r.Raw, orig) {
			t.Errorf("packet changed")
		}
	})
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"too short to carry a BID", withOptions(t, testBU(), bidOpt(1, 3, 0, 0))},
		{"another option malformed after it", withOptions(t, testBU(), bidOpt(6, 3, 0, 0), []byte{byte(proto.OptAltCoA), 3, 0, 0, 0})},
		{"another option malformed", withOptions(t, testBU(), bidOpt(4, 3, 0, 0), []byte{byte(proto.OptAltCoA), 3, 0, 0, 0})},
		{"in a BA", withOptions(t, testBA(), bidOpt(6, 3, 0, 0))},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := testRx(tHA, tCoA)
			var r Received
			if feed(x, &r, c.pkt, len(c.pkt), tIfindex, packetHost) {
				t.Fatalf("delivered: err %v BIDs %+v", r.Err, r.Packet.MH.Options.BIDs)
			}
			if s := x.stats(); s.Malformed != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// A BU with a Mobile Network Prefix longer than 128 reaches the home
// agent, which answers 141 (RFC 3963 6.1.2); in another message it is
// dropped.
func TestAcceptBadPrefix(t *testing.T) {
	mnp := append([]byte{byte(proto.OptMobileNetPrefix), 18, 0, 200}, make([]byte, 16)...)
	pkt := withOptions(t, testBU(), bidOpt(4, 3, 0, 0), mnp)
	x := testRx(tHA)
	var r Received
	if !feed(x, &r, pkt, len(pkt), tIfindex, packetHost) {
		t.Fatalf("dropped: %+v", x.stats())
	}
	if !errors.Is(r.Err, proto.ErrBadPrefix) || r.Packet.MH.Type != proto.TypeBU || r.Packet.HomeAddress != tHoA {
		t.Errorf("err %v type %v hoa %v", r.Err, r.Packet.MH.Type, r.Packet.HomeAddress)
	}
	ba := withOptions(t, testBA(), mnp)
	x = testRx(tCoA)
	if feed(x, &r, ba, len(ba), tIfindex, packetHost) {
		t.Fatalf("BA delivered: err %v", r.Err)
	}
	if s := x.stats(); s.Malformed != 1 {
		t.Errorf("stats %+v", s)
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
			var be *proto.BIDError
			bu := r.Packet.MH.Type == proto.TypeBU
			if r.Err != nil && !errors.As(r.Err, &be) && !errors.Is(r.Err, proto.ErrUnknownType) && !(bu && errors.Is(r.Err, proto.ErrBadPrefix)) {
				t.Errorf("delivered with an error the receiver does not answer: %v", r.Err)
			}
			if be != nil && (be.Index >= len(r.Packet.MH.Options.BIDs) || r.Packet.MH.Options.BIDs[be.Index].Err == nil) {
				t.Errorf("%v names no incompliant sub-option: %+v", be, r.Packet.MH.Options.BIDs)
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
