package bcache

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

const (
	benchHoAs = 100000
	benchBIDs = 10
)

// stepClock advances by step at every Now, without locks: the benchmarks
// measure the cache, not the fake clock.
type stepClock struct {
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time                       { c.t = c.t.Add(c.step); return c.t }
func (c *stepClock) NewTimer(d time.Duration) clock.Timer { panic("not used") }

func benchHoA(i int) netip.Addr {
	b := hoa1.As16()
	b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

func benchCoA(i, bid int) netip.Addr {
	b := coa1.As16()
	b[5] = byte(bid)
	b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

// fillCache registers benchBIDs bindings for each of hoas home addresses,
// one bulk BU each (sequence 1), through ProcessBU.
func fillCache(tb testing.TB, c *Cache, hoas int) {
	tb.Helper()
	m := &proto.Message{Type: proto.TypeBU, Flags: proto.FlagA | proto.FlagH, Lifetime: 105, Sequence: 1}
	in := &BUInput{Msg: m}
	var ba proto.Message
	for i := range hoas {
		m.Options.BIDs = m.Options.BIDs[:0]
		for bid := 1; bid <= benchBIDs; bid++ {
			m.Options.BIDs = append(m.Options.BIDs, proto.BID{ID: uint16(bid), PrioStatus: uint8(bid), C: true, CoA: benchCoA(i, bid)})
		}
		in.Src, in.HoA = benchCoA(i, 1), benchHoA(i)
		if r := c.ProcessBU(in, &ba); r.Status != proto.StatusAccepted {
			tb.Fatalf("fill: home address %d: status %v dropped %v", i, r.Status, r.Dropped)
		}
	}
	if c.Len() != hoas*benchBIDs {
		tb.Fatalf("fill: %d bindings", c.Len())
	}
}

func benchCache(tb testing.TB, step time.Duration) (*Cache, *stepClock) {
	clk := &stepClock{t: t0, step: step}
	cfg := haConfig()
	cfg.MaxBAPerSecondPerHoA = 0 // default: 3 per second
	cfg.MaxBAPerSecondNew = -1
	c := New(cfg, clk)
	fillCache(tb, c, benchHoAs)
	return c, clk
}

// The 1,000,000-binding cache is built once (about a second) and shared by
// the benchmarks, which only refresh and read it.
var fixture struct {
	c          *Cache
	seqs       []uint16 // last sequence number sent per home address
	hoas       []netip.Addr
	order      []int32
	pos        int     // next index in order: runs continue where the last stopped
	perBinding float64 // heap octets per binding when built
}

// nextBU is the home address (an index of fixture.hoas) and BID of the
// next BU in the fixture's order, whose sequence number it advances.
func nextBU() (h, bid int) {
	k := int(fixture.order[fixture.pos])
	fixture.pos = (fixture.pos + 1) % len(fixture.order)
	h, bid = k%benchHoAs, k/benchHoAs+1
	fixture.seqs[h]++
	return h, bid
}

func benchFixture(tb testing.TB) {
	if fixture.c != nil {
		return
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, _ := benchCache(tb, 10*time.Microsecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	fixture.perBinding = float64(after.HeapAlloc-before.HeapAlloc) / float64(c.Len())
	fixture.c = c
	fixture.seqs = make([]uint16, benchHoAs)
	for i := range fixture.seqs {
		fixture.seqs[i] = 1
	}
	fixture.hoas = make([]netip.Addr, benchHoAs)
	for i := range fixture.hoas {
		fixture.hoas[i] = benchHoA(i)
	}
	fixture.order = benchOrder()
}

// BenchmarkProcessBU: individual refresh BUs for the bindings of a cache
// holding 1,000,000 (100,000 home addresses x 10 BIDs), in a scrambled
// order: parse the BU, process it, marshal the BA. The cache's clock moves
// 10 µs per BU, so every home address gets one BU a second, under the rate
// limit. It also reports the cache's heap octets per binding.
func BenchmarkProcessBU(b *testing.B) {
	// Ten BU templates (one per BID); only the sequence number changes.
	var tmpl [benchBIDs][]byte
	for bid := 1; bid <= benchBIDs; bid++ {
		m := &proto.Message{Type: proto.TypeBU, PayloadProto: proto.ProtoNone, Flags: proto.FlagA | proto.FlagH, Lifetime: 105, Sequence: 1}
		m.Options.BIDs = []proto.BID{{ID: uint16(bid), PrioStatus: 3}}
		raw, err := proto.AppendMessage(nil, m, nil)
		if err != nil {
			b.Skipf("proto codec not available: %v", err)
		}
		var back proto.Message
		if err := proto.ParseMessage(raw, &back, nil); err != nil || back.Sequence != 1 {
			b.Fatalf("template does not parse back: %v", err)
		}
		tmpl[bid-1] = raw
	}
	benchFixture(b)
	c, seqs := fixture.c, fixture.seqs
	var bu, ba proto.Message
	in := &BUInput{Msg: &bu}
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h, bid := nextBU()
		raw := tmpl[bid-1]
		raw[6], raw[7] = byte(seqs[h]>>8), byte(seqs[h]) // BU sequence (RFC 6275 6.1.7)
		if err := proto.ParseMessage(raw, &bu, nil); err != nil {
			b.Fatal(err)
		}
		in.Src, in.HoA, in.MH = benchCoA(h, bid), fixture.hoas[h], raw
		r := c.ProcessBU(in, &ba)
		if !r.Send || r.Status != proto.StatusAccepted {
			b.Fatalf("op %d: status %v dropped %v", i, r.Status, r.Dropped)
		}
		var err error
		if out, err = proto.AppendMessage(out[:0], &ba, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "BU/s")
	b.ReportMetric(fixture.perBinding, "bytes/binding")
}

// BenchmarkProcessBUCacheOnly is BenchmarkProcessBU without the codec: the
// cache's share of the work.
func BenchmarkProcessBUCacheOnly(b *testing.B) {
	benchFixture(b)
	c, seqs := fixture.c, fixture.seqs
	bu := &proto.Message{Type: proto.TypeBU, Flags: proto.FlagA | proto.FlagH, Lifetime: 105}
	bu.Options.BIDs = []proto.BID{{}}
	in := &BUInput{Msg: bu}
	var ba proto.Message
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h, bid := nextBU()
		bu.Sequence = seqs[h]
		bu.Options.BIDs[0] = proto.BID{ID: uint16(bid), PrioStatus: 3}
		in.Src, in.HoA = benchCoA(h, bid), fixture.hoas[h]
		if r := c.ProcessBU(in, &ba); !r.Send || r.Status != proto.StatusAccepted {
			b.Fatalf("op %d: status %v dropped %v", i, r.Status, r.Dropped)
		}
	}
}

// benchOrder visits every (home address, BID) once per 1,000,000 ops: one
// BID of every home address, the home addresses in a scrambled order, then
// the next BID.
func benchOrder() []int32 {
	const n = benchHoAs * benchBIDs
	out := make([]int32, n)
	for i := range n {
		// 7919 is prime, coprime to 100,000: a permutation of each round.
		round, j := i/benchHoAs, i%benchHoAs
		out[i] = int32(round*benchHoAs + (j*7919)%benchHoAs)
	}
	return out
}

// BenchmarkLookup: Lookup(HoA, BID) in the 1,000,000-binding cache, the
// home addresses in a scrambled order, each one's 10 BIDs in a row (a data
// plane sees the packets of a mobile node in bursts): one lookup in ten
// misses the CPU caches.
func BenchmarkLookup(b *testing.B) {
	benchLookups(b, func(i int) (int, uint16) {
		k := i % (benchHoAs * benchBIDs)
		return (k / benchBIDs * 7919) % benchHoAs, uint16(k%benchBIDs + 1)
	})
}

// benchLookups looks up, in the fixture, the bindings that key names: an
// index of fixture.hoas and a BID. Each must hit.
func benchLookups(b *testing.B, key func(i int) (int, uint16)) {
	benchFixture(b)
	c, hoas := fixture.c, fixture.hoas
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := range b.N {
		h, bid := key(i)
		if _, ok := c.Lookup(hoas[h], bid); ok {
			hits++
		}
	}
	if hits != b.N {
		b.Fatalf("%d of %d lookups hit", hits, b.N)
	}
}

// BenchmarkLookupCold: every lookup a different home address of the
// 100,000, so every one misses the CPU caches and the TLB (two dependent
// memory accesses: the table slot, then the binding).
func BenchmarkLookupCold(b *testing.B) {
	benchFixture(b)
	order := fixture.order
	benchLookups(b, func(i int) (int, uint16) {
		k := int(order[i%len(order)])
		return k % benchHoAs, uint16(k/benchHoAs + 1)
	})
}

// BenchmarkLookupHot: 100 home addresses that stay in the CPU caches and
// TLB, in the 1,000,000-binding cache: Lookup's own cost.
func BenchmarkLookupHot(b *testing.B) {
	benchLookups(b, func(i int) (int, uint16) {
		k := i % (100 * benchBIDs)
		return k / benchBIDs * 997, uint16(k%benchBIDs + 1)
	})
}

func BenchmarkSelect(b *testing.B) {
	benchFixture(b)
	c, hoas := fixture.c, fixture.hoas
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok := c.Select(hoas[(i*7919)%benchHoAs]); !ok {
			b.Fatal("miss")
		}
	}
}

func TestMemoryPerBinding(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 1,000,000-binding cache")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, _ := benchCache(t, time.Microsecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(c.Len())
	runtime.KeepAlive(c)
	t.Logf("%.1f heap octets per binding with %d bindings", per, c.Len())
	if per >= 300 {
		t.Fatalf("%.1f octets per binding, want < 300", per)
	}
}
