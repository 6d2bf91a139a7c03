package proto

import (
	"net/netip"
	"sort"
	"testing"
)

// bu8 is a bulk BU with 8 BID sub-options with CoAs, priorities, and the
// MN-HA authentication option: the home registration of an MN with 8
// interfaces.
func bu8() *Message {
	m := &Message{Type: TypeBU, Sequence: 100, Lifetime: 105, Flags: FlagA | FlagH}
	for i := range 8 {
		a := tCoA1.As16()
		a[5] = byte(i + 1)
		m.Options.BIDs = append(m.Options.BIDs, BID{ID: uint16(i + 1), PrioStatus: uint8(10 * i), C: true, CoA: netip.AddrFrom16(a)})
	}
	return m
}

func BenchmarkParseBU8BIDs(b *testing.B) {
	mh, err := AppendMessage(nil, bu8(), nil)
	if err != nil {
		b.Fatal(err)
	}
	var m Message
	if err := ParseMessage(mh, &m, nil); err != nil || len(m.Options.BIDs) != 8 {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(mh)))
	for b.Loop() {
		if err := ParseMessage(mh, &m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendBU8BIDs(b *testing.B) {
	m := bu8()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMessage(buf[:0], m, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkMessage parses and appends every sample message.
func BenchmarkMessage(b *testing.B) {
	msgs := sampleMessages()
	names := make([]string, 0, len(msgs))
	for n := range msgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			mh, err := AppendMessage(nil, msgs[name], nil)
			if err != nil {
				b.Fatal(err)
			}
			var m Message
			if err := ParseMessage(mh, &m, nil); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				if err := ParseMessage(mh, &m, nil); err != nil {
					b.Fatal(err)
				}
				if buf, err = AppendMessage(buf[:0], &m, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParsePacketBUHAO(b *testing.B) {
	p := buPacket()
	p.MH = *bu8()
	pkt, err := AppendPacket(nil, p, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var q Packet
	if err := ParsePacket(pkt, &q, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := ParsePacket(pkt, &q, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPacketBUHAO(b *testing.B) {
	p := buPacket()
	p.MH = *bu8()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendPacket(buf[:0], p, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func mnhaFixture(tb testing.TB) (*MNHA, []byte, int) {
	p := buPacket()
	p.MH = *bu8()
	p.MH.Options.HasMNHAAuth = true
	p.MH.Options.MNHASPI = 7
	x := NewMNHA([]byte("0123456789abcdef"))
	pkt, err := AppendPacket(nil, p, nil, x.Signer(tCoA1, tHoA))
	if err != nil {
		tb.Fatal(err)
	}
	mh := pkt[IPv6HeaderLen+HomeAddressOptLen:]
	if !x.Verify(mh, p.MH.AuthOffset, tCoA1, tHoA) {
		tb.Fatal("does not verify")
	}
	return x, mh, p.MH.AuthOffset
}

func BenchmarkMNHAVerify(b *testing.B) {
	x, mh, off := mnhaFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if !x.Verify(mh, off, tCoA1, tHoA) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	mh, _ := AppendMessage(nil, bu8(), nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(mh)))
	for b.Loop() {
		SetChecksum(mh, tHoA, tHA)
	}
}

// TestZeroAllocs holds the hot paths to zero allocations (the figures the
// benchmarks report), without timing anything.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled || testing.CoverMode() != "" {
		t.Skip("instrumented build")
	}
	mh, _ := AppendMessage(nil, bu8(), nil)
	var m Message
	buf := make([]byte, 0, 1024)
	x, amh, off := mnhaFixture(t)
	p := buPacket()
	p.MH = *bu8()
	pkt := mustPacket(t, p)
	var q Packet
	msgs := sampleMessages()
	for name, f := range map[string]func(){
		"ParseMessage": func() { _ = ParseMessage(mh, &m, nil) },
		"AppendMessage": func() {
			buf, _ = AppendMessage(buf[:0], msgs["BU-NEMO"], nil)
		},
		"ParsePacket":  func() { _ = ParsePacket(pkt, &q, nil) },
		"AppendPacket": func() { buf, _ = AppendPacket(buf[:0], p, nil, nil) },
		"MNHA.Verify":  func() { x.Verify(amh, off, tCoA1, tHoA) },
		"every type": func() {
			for _, msg := range msgs {
				buf, _ = AppendMessage(buf[:0], msg, nil)
				_ = ParseMessage(buf, &m, nil)
			}
		},
	} {
		f() // warm the reused buffers
		if n := testing.AllocsPerRun(50, f); n != 0 {
			t.Errorf("%s: %v allocs/op", name, n)
		}
	}
}
