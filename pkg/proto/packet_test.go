package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// buPacket: BU from the MN's CoA to the HA with the Home Address option.
func buPacket() *Packet {
	return &Packet{
		Src: tCoA1, Dst: tHA, HomeAddress: tHoA,
		MH: Message{Type: TypeBU, Sequence: 4242, Lifetime: 105, Flags: FlagA | FlagH,
			Options: Options{BIDs: []BID{{ID: 3, PrioStatus: 20, C: true, CoA: tCoA1}}}},
	}
}

// baPacket: BA from the HA to the CoA with a type 2 routing header.
func baPacket() *Packet {
	return &Packet{
		Src: tHA, Dst: tCoA1, HopLimit: 7, RoutingHome: tHoA,
		MH: Message{Type: TypeBA, Status: StatusAccepted, Sequence: 4242, Lifetime: 100,
			Options: Options{BIDs: []BID{{ID: 3, PrioStatus: 0, C: true, CoA: tCoA1}}}},
	}
}

func mustPacket(t testing.TB, p *Packet) []byte {
	t.Helper()
	b, err := AppendPacket(nil, p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendPacketHAO(t *testing.T) {
	p := buPacket()
	b := mustPacket(t, p)
	mh := b[IPv6HeaderLen+HomeAddressOptLen:]
	want := unhex(t, `60000000 0040 3c 40`) // payload 24+40, next DO, hop limit 64
	if !bytes.Equal(b[:8], want) {
		t.Errorf("IPv6 header %x, want %x", b[:8], want)
	}
	if !bytes.Equal(b[8:24], addr16(tCoA1)) || !bytes.Equal(b[24:40], addr16(tHA)) {
		t.Errorf("addresses %x", b[8:40])
	}
	// Next header MH, Hdr Ext Len 2, PadN(4) so that the HAO is at 8n+6,
	// option 201 of 16 octets.
	wantDO := append(unhex(t, `87 02 0102 0000 c9 10`), addr16(tHoA)...)
	if !bytes.Equal(b[40:64], wantDO) {
		t.Errorf("destination options %x, want %x", b[40:64], wantDO)
	}
	if len(mh) != 40 {
		t.Fatalf("MH of %d octets", len(mh))
	}
	// The checksum's pseudo-header has the home address as its source.
	if !refValid(mh, tHoA, tHA) {
		t.Errorf("checksum %x is not valid for HoA -> HA (want %04x)", mh[4:6], refChecksum(mh, tHoA, tHA))
	}
	if refValid(mh, tCoA1, tHA) {
		t.Error("checksum also valid with the CoA as source")
	}
}

func TestAppendPacketRH2(t *testing.T) {
	p := baPacket()
	b := mustPacket(t, p)
	if b[6] != ProtoRouting || b[7] != 7 {
		t.Errorf("next header %d hop limit %d", b[6], b[7])
	}
	wantRH := append(unhex(t, `87 02 02 01 00000000`), addr16(tHoA)...)
	if !bytes.Equal(b[40:64], wantRH) {
		t.Errorf("routing header %x, want %x", b[40:64], wantRH)
	}
	mh := b[IPv6HeaderLen+RoutingType2Len:]
	if int(binary.BigEndian.Uint16(b[4:])) != RoutingType2Len+len(mh) {
		t.Errorf("payload length %d", binary.BigEndian.Uint16(b[4:]))
	}
	// The pseudo-header's destination is the final one: the home address.
	if !refValid(mh, tHA, tHoA) {
		t.Errorf("checksum %x not valid for HA -> HoA", mh[4:6])
	}
	if refValid(mh, tHA, tCoA1) {
		t.Error("checksum also valid with the CoA as destination")
	}
}

func TestPacketRoundTrip(t *testing.T) {
	both := buPacket()
	both.RoutingHome = tHoA // both headers: routing first, then destination options
	for name, p := range map[string]*Packet{"BU+HAO": buPacket(), "BA+RH2": baPacket(), "both": both,
		"plain": {Src: tCoA1, Dst: tCN, MH: Message{Type: TypeCoTI, Cookie: [8]byte{1}}}} {
		t.Run(name, func(t *testing.T) {
			b := mustPacket(t, p)
			var got Packet
			if err := ParsePacket(b, &got, nil); err != nil {
				t.Fatal(err)
			}
			hl := p.HopLimit
			if hl == 0 {
				hl = DefaultHopLimit
			}
			if got.Src != p.Src || got.Dst != p.Dst || got.HopLimit != hl ||
				got.HomeAddress != p.HomeAddress || got.RoutingHome != p.RoutingHome {
				t.Errorf("got %v %v %d %v %v", got.Src, got.Dst, got.HopLimit, got.HomeAddress, got.RoutingHome)
			}
			if !sameMessage(&got.MH, &p.MH) {
				t.Errorf("MH %+v, want %+v", got.MH, p.MH)
			}
			if len(got.MHBytes) == 0 || &got.MHBytes[0] != &b[len(b)-len(got.MHBytes)] || got.MHBytes[0] != ProtoNone {
				t.Error("MHBytes does not alias the MH in the input")
			}
		})
	}
}

// buildPacket assembles a packet by hand: headers is the chain after the
// IPv6 header (each with its next header octet already right), nh the IPv6
// header's next header.
func buildPacket(nh byte, src, dst netip.Addr, headers ...[]byte) []byte {
	b := []byte{0x60, 0, 0, 0, 0, 0, nh, 64}
	b = append(b, addr16(src)...)
	b = append(b, addr16(dst)...)
	for _, h := range headers {
		b = append(b, h...)
	}
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

func TestParsePacketExtensionHeaders(t *testing.T) {
	mh := mustPacket(t, &Packet{Src: tHoA, Dst: tHA, MH: buPacket().MH})[40:]
	hao := append([]byte{135, 2, 1, 2, 0, 0, 201, 16}, addr16(tHoA)...)
	// Hop-by-Hop with Router Alert (action bits 00: skipped), Destination
	// Options before the routing header with an unknown skippable option,
	// then the HAO after it.
	hbh := []byte{60, 0, 5, 2, 0, 0, 1, 0}
	do1 := []byte{43, 0, 0x1e, 2, 0, 0, 0, 0}
	rh0 := []byte{60, 0, 0, 0, 0, 0, 0, 0} // a routing header already processed
	b := buildPacket(0, tCoA1, tHA, hbh, do1, rh0, hao, mh)
	var p Packet
	if err := ParsePacket(b, &p, nil); err != nil {
		t.Fatal(err)
	}
	if p.HomeAddress != tHoA || p.MH.Type != TypeBU || len(p.MH.Options.BIDs) != 1 {
		t.Errorf("%+v", p)
	}
	// Link-layer padding after the IPv6 payload is ignored.
	if err := ParsePacket(append(b, 0, 0, 0, 0), &p, nil); err != nil || len(p.MHBytes) != len(mh) {
		t.Errorf("with trailing octets: %v, MH %d octets", err, len(p.MHBytes))
	}
}

func TestParsePacketBadInput(t *testing.T) {
	good := mustPacket(t, buPacket())
	ba := mustPacket(t, baPacket())
	mh := good[64:]
	hao := func(nh byte, l byte) []byte {
		h := []byte{nh, 2, 1, 2, 0, 0, 201, l}
		return append(h, addr16(tHoA)...)
	}
	mod := func(b []byte, f func(b []byte)) []byte {
		c := append([]byte{}, b...)
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"39 octets", good[:39], ErrTruncated},
		{"payload length past the end", good[:len(good)-1], ErrTruncated},
		{"IPv4", mod(good, func(b []byte) { b[0] = 0x45 }), ErrBadHeader},
		{"payload length 0", mod(good, func(b []byte) { b[4], b[5] = 0, 0 }), ErrTruncated},
		{"UDP", buildPacket(ProtoUDP, tCoA1, tHA, make([]byte, 16)), ErrNotMH},
		{"no next header", buildPacket(ProtoNone, tCoA1, tHA), ErrNotMH},
		{"fragment", buildPacket(ProtoFragment, tCoA1, tHA, []byte{135, 0, 0, 1, 0, 0, 0, 1}, mh), ErrNotMH},
		{"destination options then UDP", buildPacket(ProtoDstOpts, tCoA1, tHA, hao(ProtoUDP, 16), make([]byte, 8)), ErrNotMH},
		{"bad checksum", mod(good, func(b []byte) { b[len(b)-1] ^= 1 }), ErrChecksum},
		{"checksum for the CoA", mod(good, func(b []byte) { SetChecksum(b[64:], tCoA1, tHA) }), ErrChecksum},
		{"HAO of 8", buildPacket(ProtoDstOpts, tCoA1, tHA, hao(135, 8), mh), ErrBadHeader},
		{"two HAOs", buildPacket(ProtoDstOpts, tCoA1, tHA, hao(ProtoDstOpts, 16), hao(135, 16), mh), ErrBadHeader},
		{"unknown option that discards", buildPacket(ProtoDstOpts, tCoA1, tHA, []byte{135, 0, 0x45, 2, 0, 0, 1, 0}, mh), ErrBadHeader},
		{"option past its header", buildPacket(ProtoDstOpts, tCoA1, tHA, []byte{135, 0, 1, 5, 0, 0, 0, 0}, mh), ErrBadHeader},
		{"extension header past the end", buildPacket(ProtoDstOpts, tCoA1, tHA, []byte{135, 3, 1, 0}), ErrTruncated},
		{"extension header of 1 octet", buildPacket(ProtoDstOpts, tCoA1, tHA, []byte{135}), ErrTruncated},
		{"hop-by-hop not first", buildPacket(ProtoDstOpts, tCoA1, tHA, []byte{0, 0, 1, 4, 0, 0, 0, 0}, []byte{135, 0, 1, 4, 0, 0, 0, 0}, mh), ErrBadHeader},
		{"RH2 segments left 2", mod(ba, func(b []byte) { b[43] = 2 }), ErrBadHeader},
		{"RH2 of 32 octets", buildPacket(ProtoRouting, tHA, tCoA1, append(append([]byte{135, 3, 2, 1, 0, 0, 0, 0}, addr16(tHoA)...), make([]byte, 8)...), mh), ErrBadHeader},
		{"routing type 0 with segments left", mod(ba, func(b []byte) { b[42] = 0 }), ErrBadHeader},
		{"MH truncated", mod(good, func(b []byte) { b[65]++ }), ErrTruncated},
		{"MH shorter than Header Len says", buildPacket(135, tCoA1, tHA, mh[:16]), ErrTruncated},
		{"MH of 4 octets", buildPacket(135, tCoA1, tHA, mh[:4]), ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			err := ParsePacket(tc.b, &p, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParsePacket = %v, want %v", err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("%T is not a *ParseError", err)
			}
		})
	}
	// Every truncation of a good packet is an error, never a panic.
	for _, b := range [][]byte{good, ba} {
		for n := range len(b) {
			var p Packet
			if err := ParsePacket(b[:n], &p, nil); err == nil {
				t.Errorf("truncated to %d: no error", n)
			}
		}
	}
}

// TestParsePacketUnknownType: the packet is delivered with the type and the
// addresses so that the receiver can answer with a Binding Error.
func TestParsePacketUnknownType(t *testing.T) {
	b := mustPacket(t, buPacket())
	mh := b[64:]
	mh[2] = 42
	SetChecksum(mh, tHoA, tHA)
	var p Packet
	err := ParsePacket(b, &p, nil)
	if !errors.Is(err, ErrUnknownType) || p.MH.Type != 42 || p.Src != tCoA1 || p.Dst != tHA || p.HomeAddress != tHoA {
		t.Errorf("err %v type %v src %v dst %v hoa %v", err, p.MH.Type, p.Src, p.Dst, p.HomeAddress)
	}
}

func TestParsePacketBIDError(t *testing.T) {
	b := mustPacket(t, buPacket())
	i := bytes.Index(b[64:], []byte{35, 20, 0, 3}) + 64
	b[i+3] = 0 // BID 0
	SetChecksum(b[64:], tHoA, tHA)
	var p Packet
	err := ParsePacket(b, &p, nil)
	var be *BIDError
	if !errors.As(err, &be) || !errors.Is(err, ErrBIDZero) || p.MH.Sequence != 4242 || p.HomeAddress != tHoA {
		t.Errorf("err %v, packet %+v", err, p)
	}
}

func TestAppendPacketErrors(t *testing.T) {
	p := buPacket()
	p.Src = netip.MustParseAddr("192.0.2.1")
	if _, err := AppendPacket(nil, p, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("IPv4 source: %v", err)
	}
	p = buPacket()
	p.HomeAddress = netip.MustParseAddr("192.0.2.1")
	if _, err := AppendPacket(nil, p, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("IPv4 home address: %v", err)
	}
	p = buPacket()
	p.MH.Options.BIDs[0].ID = 0
	b, err := AppendPacket([]byte{9}, p, nil, nil)
	if !errors.Is(err, ErrBIDZero) || len(b) != 1 {
		t.Errorf("BID 0: %v, %d octets", err, len(b))
	}
	// A Signer needs an authentication option to sign.
	p = buPacket()
	if _, err := AppendPacket(nil, p, nil, MNHASigner{Key: []byte("k"), CoA: tCoA1, HoA: tHoA}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Signer without option: %v", err)
	}
}

func TestChecksumVectors(t *testing.T) {
	// Messages of several lengths and contents against the independent
	// RFC 1071 sum, including odd lengths (not a valid MH, but the sum
	// must still be right).
	for n := 6; n < 80; n++ {
		mh := make([]byte, n)
		for i := range mh {
			mh[i] = byte(i*37 + n)
		}
		for _, a := range [][2]netip.Addr{{tHoA, tHA}, {tHA, tHoA}, {tCoA1, tCN}} {
			want := refChecksum(mh, a[0], a[1])
			if got := Checksum(mh, a[0], a[1]); got != want {
				t.Fatalf("len %d %v->%v: %04x, want %04x", n, a[0], a[1], got, want)
			}
			SetChecksum(mh, a[0], a[1])
			if !VerifyChecksum(mh, a[0], a[1]) || !refValid(mh, a[0], a[1]) {
				t.Fatalf("len %d: SetChecksum result does not verify", n)
			}
			mh[n-1] ^= 0x10
			if VerifyChecksum(mh, a[0], a[1]) {
				t.Fatalf("len %d: corrupted message verifies", n)
			}
			mh[n-1] ^= 0x10
		}
	}
	// A fixed vector: BRR from the HA to the HoA, worked by hand:
	// pseudo-header words 2001+0db8+aaaa+0001 (HA) + 2001+0db8+aaaa+0100
	// (HoA) + 0008 (length) + 0087 (MH) and the MH words 3b00+0000+0000.
	brr := []byte{0x3b, 0, 0, 0, 0, 0, 0, 0}
	s := 0x2001 + 0x0db8 + 0xaaaa + 0x0001 + 0x2001 + 0x0db8 + 0xaaaa + 0x0100 + 0x0008 + 0x0087 + 0x3b00
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	if got := Checksum(brr, tHA, tHoA); got != ^uint16(s) {
		t.Errorf("BRR checksum %04x, want %04x", got, ^uint16(s))
	}
	if Checksum(nil, tHA, tHoA) == 0 || VerifyChecksum(brr[:4], tHA, tHoA) {
		t.Error("short input")
	}
	SetChecksum(brr[:3], tHA, tHoA) // must not panic
}
