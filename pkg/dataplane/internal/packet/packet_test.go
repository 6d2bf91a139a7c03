package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// The outer header of a tunnelled echo request, written out by hand from
// RFC 2473 and RFC 8200: version 6, traffic class 0xb8 and flow label
// 0x12345 copied from the inner packet, payload length 56, next header 41,
// hop limit 64, CoA 2001:db8:1::ff:fe00:1 to HA 2001:db8:aaaa::1.
const wantOuterEcho = `
6b812345 0038 29 40
20010db8 00010000 000000ff fe000001
20010db8 aaaa0000 00000000 00000001`

func TestEncapByteForByte(t *testing.T) {
	inner := pkttest.IP6(0xb8, 0x12345, ProtoICMPv6, 64, pkttest.THoA, pkttest.TCN, pkttest.Echo(128, 0x1234, 1, 8))
	buf := pkttest.WithHeadroom(inner)
	src, dst := pkttest.TCoA[0].As16(), pkttest.THA.As16()
	n, err := Encap(buf, &src, &dst)
	if err != nil {
		t.Fatal(err)
	}
	want := append(pkttest.Unhex(t, wantOuterEcho), inner...)
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("encap:\n got %x\nwant %x", buf[:n], want)
	}
}

func TestEncapHashesFlowLabel(t *testing.T) {
	src, dst := pkttest.TCoA[0].As16(), pkttest.THA.As16()
	label := func(sport uint16) uint32 {
		inner := pkttest.IP6(0x02, 0, ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(sport, 80, 1, 1, TCPFlagACK, pkttest.Pattern(10, 1)))
		buf := pkttest.WithHeadroom(inner)
		if _, err := Encap(buf, &src, &dst); err != nil {
			t.Fatal(err)
		}
		if tc := trafficClass(buf); tc != 0x02 {
			t.Fatalf("outer traffic class %#x, want the inner ECT(0) 0x02", tc)
		}
		return flowLabel(buf)
	}
	a, a2, b := label(40000), label(40000), label(40001)
	if a == 0 || a > 0xfffff {
		t.Fatalf("hashed label %#x: want 1..0xfffff", a)
	}
	if a != a2 {
		t.Fatalf("same flow, labels %#x and %#x", a, a2)
	}
	if a == b {
		t.Fatalf("flows with different ports share label %#x", a)
	}
}

func TestEncapRefuses(t *testing.T) {
	src, dst := pkttest.TCoA[0].As16(), pkttest.THA.As16()
	good := pkttest.IP6(0, 0, ProtoICMPv6, 64, pkttest.THoA, pkttest.TCN, pkttest.Echo(128, 1, 1, 4))
	v4 := append([]byte{}, good...)
	v4[0] = 0x45
	long := append([]byte{}, good...)
	binary.BigEndian.PutUint16(long[4:], 100)
	jumbo := append([]byte{}, good...)
	binary.BigEndian.PutUint16(jumbo[4:], 0)
	jumbo[6] = 0
	for name, pkt := range map[string][]byte{
		"short":  good[:39],
		"ipv4":   v4,
		"length": long,
		"jumbo":  jumbo,
	} {
		_, err := Encap(pkttest.WithHeadroom(pkt), &src, &dst)
		var pe *PacketError
		if !errors.As(err, &pe) || !errors.Is(err, dataplane.ErrInvalid) {
			t.Errorf("%s: err %v, want a PacketError that is ErrInvalid", name, err)
		}
	}
	if _, err := Encap(make([]byte, 20), &src, &dst); err == nil {
		t.Error("no headroom: no error")
	}
	// Trailing bytes beyond the payload length are not part of the packet.
	n, err := Encap(pkttest.WithHeadroom(append(append([]byte{}, good...), 0xee, 0xee)), &src, &dst)
	if err != nil || n != Headroom+len(good) {
		t.Errorf("trailing bytes: n %d err %v, want %d", n, err, Headroom+len(good))
	}
}

func TestDecapByteForByte(t *testing.T) {
	inner := pkttest.IP6(0xb8, 0x12345, ProtoICMPv6, 64, pkttest.TCN, pkttest.THoA, pkttest.Echo(129, 0x1234, 1, 8))
	pkt := append(pkttest.Unhex(t, wantOuterEcho), inner...)
	// The hand-written header is CoA to HA; decapsulation does not care
	// about direction.
	src, dst, got, err := decap(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if src != pkttest.TCoA[0].As16() || dst != pkttest.THA.As16() {
		t.Fatalf("outer %x -> %x", src, dst)
	}
	if !bytes.Equal(got, inner) {
		t.Fatalf("inner:\n got %x\nwant %x", got, inner)
	}
}

func TestDecapECN(t *testing.T) {
	const notECT, ect1, ect0, ce = 0, 1, 2, 3
	for _, c := range []struct {
		outer, inner, want uint8
		drop               bool
	}{
		{notECT, ect0, ect0, false},
		{ect0, ect0, ect0, false},
		{ect1, ect0, ect1, false},
		{ce, ect0, ce, false},
		{ce, ect1, ce, false},
		{ce, ce, ce, false},
		{ce, notECT, 0, true},
		{ect0, notECT, notECT, false},
	} {
		inner := pkttest.IP6(0xb8|c.inner, 7, ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 12))
		n, err := DecapInner(inner, 0x20|c.outer)
		if c.drop {
			if !errors.Is(err, dataplane.ErrInvalid) {
				t.Errorf("outer %d inner %d: err %v, want a drop", c.outer, c.inner, err)
			}
			continue
		}
		if err != nil || n != len(inner) {
			t.Fatalf("outer %d inner %d: n %d err %v", c.outer, c.inner, n, err)
		}
		if got := trafficClass(inner); got != 0xb8|c.want {
			t.Errorf("outer %d inner %d: inner class %#x, want %#x", c.outer, c.inner, got, 0xb8|c.want)
		}
		if flowLabel(inner) != 7 {
			t.Errorf("flow label changed to %#x", flowLabel(inner))
		}
	}
}

func TestDecapRefuses(t *testing.T) {
	inner := pkttest.IP6(0, 0, ProtoICMPv6, 64, pkttest.TCN, pkttest.THoA, pkttest.Echo(129, 1, 1, 4))
	outer := append(pkttest.Unhex(t, wantOuterEcho), inner...)
	binary.BigEndian.PutUint16(outer[4:], uint16(len(inner)))
	notTunnel := append([]byte{}, outer...)
	notTunnel[6] = ProtoUDP
	badInner := append([]byte{}, outer...)
	badInner[40] = 0x45
	shortInner := append([]byte{}, outer[:40+39]...)
	binary.BigEndian.PutUint16(shortInner[4:], 39)
	for name, pkt := range map[string][]byte{
		"short":       outer[:30],
		"next header": notTunnel,
		"inner v4":    badInner,
		"inner short": shortInner,
		"truncated":   outer[:len(outer)-1],
	} {
		if _, _, _, err := decap(pkt); !errors.Is(err, dataplane.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func TestPTBByteForByte(t *testing.T) {
	orig := pkttest.IP6(0, 0x54321, ProtoUDP, 64, pkttest.THoA, pkttest.TCN, append(make([]byte, 8), pkttest.Pattern(1400, 3)...))
	out := make([]byte, dataplane.MinMTU)
	src := pkttest.TCoA[0].As16()
	n := BuildPTB(out, orig, 1400, &src)
	if n != dataplane.MinMTU {
		t.Fatalf("length %d, want %d (a PTB fills the minimum MTU)", n, dataplane.MinMTU)
	}
	want := pkttest.Unhex(t, `
60000000 04d8 3a 40
20010db8 00010000 000000ff fe000001
20010db8 aaaa0000 00000000 00000100
02 00 0000 00000578`)
	want = append(want, orig[:dataplane.MinMTU-48]...)
	// The checksum, by the plain RFC 1071 sum (and checked once with
	// tshark: 0x2eec is "correct").
	binary.BigEndian.PutUint16(want[42:], ^pkttest.NaiveSum(pkttest.Pseudo(want[8:24], want[24:40], ProtoICMPv6, len(want)-40), want[40:]))
	if got := binary.BigEndian.Uint16(want[42:]); got != 0x2eec {
		t.Fatalf("reference checksum %#x, want 0x2eec", got)
	}
	if !bytes.Equal(out[:n], want) {
		t.Fatalf("PTB:\n got %x\nwant %x", out[:48], want[:48])
	}

	// A small packet is quoted whole.
	small := pkttest.IP6(0, 0, ProtoICMPv6, 64, pkttest.THoA, pkttest.TCN, pkttest.Echo(128, 1, 2, 4))
	n = BuildPTB(out, small, 1280, &src)
	if n != 48+len(small) || !bytes.Equal(out[48:n], small) || !pkttest.UpperChecksumOK(out[:n]) {
		t.Fatalf("small PTB %x", out[:n])
	}
}

func TestChecksumMatchesNaive(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1000, 1499, 65535, -64, -65535} {
		var b []byte
		if n < 0 { // all ones: every word addition carries
			b = bytes.Repeat([]byte{0xff}, -n)
		} else {
			b = pkttest.Pattern(n, byte(n))
		}
		if s := csumAdd(0, b); s>>33 != 0 {
			t.Errorf("length %d: sum %#x not below 2^33", n, s)
		}
		if got, want := csumFold(csumAdd(0, b)), pkttest.NaiveSum(b); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Errorf("length %d: %#x, naive %#x", n, got, want)
		}
	}
}

func BenchmarkEncap(b *testing.B) {
	inner := pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 5201, 1, 1, TCPFlagACK, pkttest.Pattern(1388, 1)))
	buf := pkttest.WithHeadroom(inner)
	src, dst := pkttest.TCoA[0].As16(), pkttest.THA.As16()
	b.ReportAllocs()
	b.SetBytes(int64(len(inner)))
	for b.Loop() {
		if _, err := Encap(buf, &src, &dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecap(b *testing.B) {
	inner := pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.TCN, pkttest.THoA, pkttest.TCPSeg(5201, 40000, 1, 1, TCPFlagACK, pkttest.Pattern(1388, 1)))
	buf := pkttest.WithHeadroom(inner)
	src, dst := pkttest.THA.As16(), pkttest.TCoA[0].As16()
	if _, err := Encap(buf, &src, &dst); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(inner)))
	for b.Loop() {
		if _, _, _, err := decap(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncapDecapAllocateNothing(t *testing.T) {
	inner := pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 5201, 1, 1, TCPFlagACK, pkttest.Pattern(1388, 1)))
	buf := pkttest.WithHeadroom(inner)
	src, dst := pkttest.TCoA[0].As16(), pkttest.THA.As16()
	ptb := make([]byte, dataplane.MinMTU)
	bad := pkttest.WithHeadroom(inner[:20])
	if a := testing.AllocsPerRun(100, func() {
		Encap(buf, &src, &dst)
		decap(buf)
		Encap(bad, &src, &dst) // errors are preallocated too
		BuildPTB(ptb, inner, 1280, &src)
	}); a != 0 {
		t.Fatalf("%v allocations per packet", a)
	}
}
