package routeopt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// roUDP is a UDP packet from the home address to the correspondent with a
// valid checksum (computed over the home address, as RFC 6275 wants).
func roUDP(n int) []byte {
	u := make([]byte, 8+n)
	binary.BigEndian.PutUint16(u[0:], 4000)
	binary.BigEndian.PutUint16(u[2:], 5000)
	binary.BigEndian.PutUint16(u[4:], uint16(8+n))
	copy(u[8:], pkttest.Pattern(n, 3))
	return pkttest.IP6(0x2e, 0x12345, packet.ProtoUDP, 64, pkttest.THoA, pkttest.TCN, u)
}

// withHopByHop puts an 8-octet Hop-by-Hop header (router alert) in front
// of pkt's payload.
func withHopByHop(pkt []byte) []byte {
	out := append([]byte{}, pkt[:40]...)
	out = append(out, pkt[6], 0, 5, 2, 0, 0, 1, 0)
	out = append(out, pkt[40:]...)
	out[6] = protoHopByHop
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

// room puts pkt behind headroom octets.
func room(pkt []byte) []byte { return pkttest.WithHeadroom(pkt) }

func TestHAOInsertStrip(t *testing.T) {
	coa := pkttest.TCoA[1].As16()
	hoa := pkttest.THoA.As16()
	for _, tc := range []struct {
		name string
		pkt  []byte
		off  int // where the option header goes
	}{
		{"plain", roUDP(100), 40},
		{"hop-by-hop", withHopByHop(roUDP(100)), 48},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.pkt
			b := room(orig)
			ns, nn, err := InsertHAO(b, packet.Headroom, len(orig), &coa)
			if err != nil {
				t.Fatal(err)
			}
			if ns != packet.Headroom-24 || nn != len(orig)+24 {
				t.Fatalf("start %d length %d", ns, nn)
			}
			p := b[ns : ns+nn]
			if [16]byte(p[8:24]) != coa || [16]byte(p[24:40]) != pkttest.TCN.As16() {
				t.Errorf("addresses %x -> %x", p[8:24], p[24:40])
			}
			if got := int(binary.BigEndian.Uint16(p[4:])); got != nn-40 {
				t.Errorf("payload length %d, want %d", got, nn-40)
			}
			nhField := 6
			if tc.off != 40 {
				nhField = 40
				if !bytes.Equal(p[41:48], orig[41:48]) {
					t.Errorf("hop-by-hop header changed: % x", p[40:48])
				}
			}
			h := p[tc.off : tc.off+24]
			want := append([]byte{packet.ProtoUDP, 2, 1, 2, 0, 0, 201, 16}, hoa[:]...)
			if p[nhField] != protoDstOpts || !bytes.Equal(h, want) {
				t.Errorf("next header %d, option header % x, want % x", p[nhField], h, want)
			}
			if !bytes.Equal(p[tc.off+24:], orig[tc.off:]) {
				t.Error("upper layer changed")
			}
			// The correspondent's side gives back the original packet.
			var l HAOLoc
			if err := FindHAO(p, &l); err != nil {
				t.Fatal(err)
			}
			if l.Hoa(p) != hoa || !l.only {
				t.Errorf("found %x only %v", l.Hoa(p), l.only)
			}
			ns2, nn2 := StripHAO(b, ns, &l)
			if !bytes.Equal(b[ns2:ns2+nn2], orig) {
				t.Errorf("stripped\n% x\nwant\n% x", b[ns2:ns2+nn2], orig)
			}
		})
	}
}

func TestHAOWithOtherOptions(t *testing.T) {
	// A Destination Options header with a harmless unknown option (type
	// 0x1e: skip it) besides the Home Address option: the option turns
	// into padding and the header stays.
	orig := roUDP(20)
	hoa := pkttest.THoA.As16()
	opts := append([]byte{packet.ProtoUDP, 3, 0x1e, 2, 0, 0, 201, 16}, hoa[:]...)
	opts = append(opts, 1, 6, 0, 0, 0, 0, 0, 0)
	p := append(append(append([]byte{}, orig[:40]...), opts...), orig[40:]...)
	p[6] = protoDstOpts
	copy(p[8:24], pkttest.TCoA[0].AsSlice())
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	var l HAOLoc
	if err := FindHAO(p, &l); err != nil {
		t.Fatal(err)
	}
	if l.only {
		t.Fatal("only, with another option")
	}
	b := append(make([]byte, 10), p...)
	ns, nn := StripHAO(b, 10, &l)
	q := b[ns : ns+nn]
	if ns != 10 || nn != len(p) || [16]byte(q[8:24]) != hoa || q[46] != optPadN || q[47] != 16 || !bytes.Equal(q[48:64], make([]byte, 16)) {
		t.Errorf("stripped % x", q[:72])
	}
}

func TestRH2InsertStrip(t *testing.T) {
	coa := pkttest.TCoA[2].As16()
	hoa := pkttest.THoA.As16()
	// The correspondent's packet to the home address.
	orig := pkttest.IP6(0, 7, packet.ProtoICMPv6, 64, pkttest.TCN, pkttest.THoA, pkttest.Echo(128, 9, 1, 56))
	b := room(orig)
	ns, nn, err := InsertRH2(b, packet.Headroom, len(orig), &coa)
	if err != nil {
		t.Fatal(err)
	}
	p := b[ns : ns+nn]
	want := append([]byte{packet.ProtoICMPv6, 2, 2, 1, 0, 0, 0, 0}, hoa[:]...)
	if p[6] != protoRouting || [16]byte(p[24:40]) != coa || !bytes.Equal(p[40:64], want) || int(binary.BigEndian.Uint16(p[4:])) != nn-40 {
		t.Fatalf("with RH2: % x", p[:64])
	}
	// Someone else's home address: refused, packet untouched.
	other := pkttest.THA.As16()
	if _, _, err := StripRH2(b, ns, nn, &other); !errors.Is(err, ErrNotOurs) || !errors.Is(err, dataplane.ErrInvalid) {
		t.Errorf("other home address: %v", err)
	}
	ns2, nn2, err := StripRH2(b, ns, nn, &hoa)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[ns2:ns2+nn2], orig) || !pkttest.UpperChecksumOK(b[ns2:ns2+nn2]) {
		t.Errorf("stripped\n% x\nwant\n% x", b[ns2:ns2+nn2], orig)
	}
}

func TestROLeavesAlone(t *testing.T) {
	coa := pkttest.TCoA[0].As16()
	hoa := pkttest.THoA.As16()
	mh := pkttest.IP6(0, 0, protoMH, 64, pkttest.THoA, pkttest.TCN, []byte{59, 1, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	withRH := func(typ byte) []byte {
		p := roUDP(10)
		rh := []byte{packet.ProtoUDP, 2, typ, 0, 0, 0, 0, 0}
		rh = append(rh, make([]byte, 16)...)
		p = append(append(append([]byte{}, p[:40]...), rh...), p[40:]...)
		p[6] = protoRouting
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		return p
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"mobility header", mh, errROMH},
		{"routing header", withRH(0), errROChain},
		{"short", roUDP(10)[:30], packet.ErrShort},
		{"length", roUDP(10)[:45], packet.ErrLength},
		{"version", append([]byte{0x40}, roUDP(10)[1:]...), packet.ErrVersion},
	} {
		for _, f := range []func([]byte, int, int, *[16]byte) (int, int, error){InsertHAO, InsertRH2} {
			b := room(tc.pkt)
			keep := bytes.Clone(b)
			if _, _, err := f(b, packet.Headroom, len(tc.pkt), &coa); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
			if !bytes.Equal(b, keep) {
				t.Errorf("%s: refused packet changed", tc.name)
			}
		}
	}
	// No room in front.
	p := roUDP(10)
	if _, _, err := InsertHAO(p, 0, len(p), &coa); !errors.Is(err, errRoom) {
		t.Errorf("no room: %v", err)
	}
	// A routing header of another type is not a type 2 one; a type 2
	// with no segment left is bad.
	if _, _, err := StripRH2(withRH(0), 0, len(withRH(0)), &hoa); !errors.Is(err, errNoRH2) {
		t.Errorf("type 0: %v", err)
	}
	if _, _, err := StripRH2(withRH(2), 0, len(withRH(2)), &hoa); !errors.Is(err, errBadRH2) {
		t.Errorf("type 2, segments left 0: %v", err)
	}
	var l HAOLoc
	if err := FindHAO(roUDP(10), &l); !errors.Is(err, ErrNoHAO) {
		t.Errorf("no option: %v", err)
	}
}

// TestROMalformedNeverPanics feeds every truncation and random
// corruptions of valid route-optimised packets to the receive side, and
// random bytes to every function.
func TestROMalformedNeverPanics(t *testing.T) {
	coa := pkttest.TCoA[0].As16()
	hoa := pkttest.THoA.As16()
	b := room(roUDP(60))
	ns, nn, _ := InsertHAO(b, packet.Headroom, len(b)-packet.Headroom, &coa)
	hao := bytes.Clone(b[ns : ns+nn])
	b = room(pkttest.IP6(0, 0, packet.ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 20)))
	ns, nn, _ = InsertRH2(b, packet.Headroom, len(b)-packet.Headroom, &coa)
	rh2 := bytes.Clone(b[ns : ns+nn])
	try := func(p []byte) {
		var l HAOLoc
		q := bytes.Clone(p)
		if FindHAO(q, &l) == nil {
			s, n := StripHAO(q, 0, &l)
			if s < 0 || s+n > len(q) {
				t.Fatalf("stripHAO out of range on % x", p)
			}
		}
		StripRH2(bytes.Clone(p), 0, len(p), &hoa)
		r := room(p)
		InsertHAO(r, packet.Headroom, len(p), &coa)
		r = room(p)
		InsertRH2(r, packet.Headroom, len(p), &coa)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, base := range [][]byte{hao, rh2} {
		for n := range len(base) {
			try(base[:n])
		}
		for range 20000 {
			p := bytes.Clone(base)
			for range 1 + rng.IntN(4) {
				p[rng.IntN(min(len(p), 72))] = byte(rng.Uint32())
			}
			try(p[:rng.IntN(len(p)+1)])
		}
	}
	for range 2000 {
		p := make([]byte, rng.IntN(128))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if len(p) > 0 {
			p[0] = 0x60
		}
		try(p)
	}
}

func FuzzRO(f *testing.F) {
	coa := pkttest.TCoA[0].As16()
	hoa := pkttest.THoA.As16()
	b := room(roUDP(20))
	ns, nn, _ := InsertHAO(b, packet.Headroom, len(b)-packet.Headroom, &coa)
	f.Add(bytes.Clone(b[ns : ns+nn]))
	b = room(pkttest.IP6(0, 0, packet.ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 20)))
	ns, nn, _ = InsertRH2(b, packet.Headroom, len(b)-packet.Headroom, &coa)
	f.Add(bytes.Clone(b[ns : ns+nn]))
	f.Fuzz(func(t *testing.T, p []byte) {
		var l HAOLoc
		q := bytes.Clone(p)
		if FindHAO(q, &l) == nil {
			s, n := StripHAO(q, 0, &l)
			if [16]byte(q[s+8:s+24]) != l.Hoa(p) || n > len(p) {
				t.Fatalf("stripHAO: % x", q[s:s+n])
			}
		}
		q = bytes.Clone(p)
		if s, n, err := StripRH2(q, 0, len(q), &hoa); err == nil && [16]byte(q[s+24:s+40]) != hoa {
			t.Fatalf("stripRH2: % x", q[s:s+n])
		}
		r := room(p)
		if s, n, err := InsertHAO(r, packet.Headroom, len(p), &coa); err == nil {
			if err := FindHAO(r[s:s+n], &l); err != nil || l.Hoa(r[s:s+n]) != [16]byte(p[8:24]) {
				t.Fatalf("inserted option not found: %v", err)
			}
		}
		r = room(p)
		if s, n, err := InsertRH2(r, packet.Headroom, len(p), &coa); err == nil {
			if _, _, err := StripRH2(r, s, n, (*[16]byte)(p[24:40])); err != nil {
				t.Fatalf("inserted routing header: %v", err)
			}
		}
	})
}

// The per-packet work of route optimisation: each iteration puts back the
// 64 octets the operation moved (the rest of the packet stays), so the
// figures are the header work on a 1280-octet packet.
func BenchmarkInsertHAO(b *testing.B) {
	coa := pkttest.TCoA[0].As16()
	orig := roUDP(1280 - 48)
	buf := room(orig)
	b.ReportAllocs()
	b.SetBytes(int64(len(orig)))
	for b.Loop() {
		copy(buf[packet.Headroom:packet.Headroom+40], orig[:40])
		if _, _, err := InsertHAO(buf, packet.Headroom, len(orig), &coa); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStripHAO(b *testing.B) {
	coa := pkttest.TCoA[0].As16()
	orig := roUDP(1280 - 48 - 24)
	buf := room(orig)
	ns, nn, _ := InsertHAO(buf, packet.Headroom, len(orig), &coa)
	with := bytes.Clone(buf[ns : ns+64])
	var l HAOLoc
	b.ReportAllocs()
	b.SetBytes(int64(nn))
	for b.Loop() {
		copy(buf[ns:], with)
		if err := FindHAO(buf[ns:ns+nn], &l); err != nil {
			b.Fatal(err)
		}
		StripHAO(buf, ns, &l)
	}
}

func BenchmarkInsertRH2(b *testing.B) {
	coa := pkttest.TCoA[0].As16()
	orig := pkttest.IP6(0, 0, packet.ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 1280-48))
	buf := room(orig)
	b.ReportAllocs()
	b.SetBytes(int64(len(orig)))
	for b.Loop() {
		copy(buf[packet.Headroom:packet.Headroom+40], orig[:40])
		if _, _, err := InsertRH2(buf, packet.Headroom, len(orig), &coa); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStripRH2(b *testing.B) {
	coa := pkttest.TCoA[0].As16()
	hoa := pkttest.THoA.As16()
	orig := pkttest.IP6(0, 0, packet.ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 1280-48-24))
	buf := room(orig)
	ns, nn, _ := InsertRH2(buf, packet.Headroom, len(orig), &coa)
	with := bytes.Clone(buf[ns : ns+64])
	b.ReportAllocs()
	b.SetBytes(int64(nn))
	for b.Loop() {
		copy(buf[ns:], with)
		if _, _, err := StripRH2(buf, ns, nn, &hoa); err != nil {
			b.Fatal(err)
		}
	}
}
