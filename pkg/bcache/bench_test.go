package bcache

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/clock"
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

func (c *stepClock) Now() time.Time                      { c.t = c.t.Add(c.step); return c.t }
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
	in := &BUInput{Dst: haAddr, Msg: m}
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

// BenchmarkProcessBU: individual refresh BUs for random bindings of a cache
// holding 1,000,000 (100,000 home addresses x 10 BIDs): parse the BU, process
// it, marshal the BA. Each BU is 10 µs of clock after the previous one, so
// every home address gets one BU a second, under the rate limit.
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
	c, _ := benchCache(b, 10*time.Microsecond)
	seqs := make([]uint16, benchHoAs)
	var bu, ba proto.Message
	in := &BUInput{Dst: haAddr, Msg: &bu}
	out := make([]byte, 0, 256)
	order := benchOrder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := int(order[i%len(order)])
		h, bid := k%benchHoAs, k/benchHoAs+1
		seqs[h]++
		raw := tmpl[bid-1]
		raw[6], raw[7] = byte((seqs[h]+1)>>8), byte(seqs[h]+1) // BU sequence (RFC 6275 6.1.7)
		if err := proto.ParseMessage(raw, &bu, nil); err != nil {
			b.Fatal(err)
		}
		in.Src, in.HoA, in.MH = benchCoA(h, bid), benchHoA(h), raw
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
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/BU")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "BU/s")
}

// BenchmarkProcessBUCacheOnly is BenchmarkProcessBU without the codec: the
// cache's share of the work.
func BenchmarkProcessBUCacheOnly(b *testing.B) {
	c, _ := benchCache(b, 10*time.Microsecond)
	seqs := make([]uint16, benchHoAs)
	bu := &proto.Message{Type: proto.TypeBU, Flags: proto.FlagA | proto.FlagH, Lifetime: 105}
	bu.Options.BIDs = []proto.BID{{}}
	in := &BUInput{Dst: haAddr, Msg: bu}
	var ba proto.Message
	order := benchOrder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := int(order[i%len(order)])
		h, bid := k%benchHoAs, k/benchHoAs+1
		seqs[h]++
		bu.Sequence = seqs[h] + 1
		bu.Options.BIDs[0] = proto.BID{ID: uint16(bid), PrioStatus: 3}
		in.Src, in.HoA = benchCoA(h, bid), benchHoA(h)
		if r := c.ProcessBU(in, &ba); !r.Send || r.Status != proto.StatusAccepted {
			b.Fatalf("op %d: status %v dropped %v", i, r.Status, r.Dropped)
		}
	}
}

// benchOrder visits every (home address, BID) once per 1,000,000 ops, the
// home addresses in a scrambled order (so that lookups miss the caches as
// they would in a busy home agent), all of them before any again.
func benchOrder() []int32 {
	const n = benchHoAs * benchBIDs
	out := make([]int32, n)
	for i := range n {
		// A multiplicative permutation of the home addresses within each
		// round of benchHoAs ops; 7919 is prime and coprime to 100,000.
		round, j := i/benchHoAs, i%benchHoAs
		out[i] = int32(round*benchHoAs + (j*7919)%benchHoAs)
	}
	return out
}

func BenchmarkLookup(b *testing.B) {
	c, _ := benchCache(b, time.Microsecond)
	order := benchOrder()
	hoas := make([]netip.Addr, benchHoAs)
	for i := range hoas {
		hoas[i] = benchHoA(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := range b.N {
		k := int(order[i%len(order)])
		if _, ok := c.Lookup(hoas[k%benchHoAs], uint16(k/benchHoAs+1)); ok {
			hits++
		}
	}
	if hits != b.N {
		b.Fatalf("%d of %d lookups hit", hits, b.N)
	}
}

func BenchmarkSelect(b *testing.B) {
	c, _ := benchCache(b, time.Microsecond)
	order := benchOrder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok := c.Select(benchHoA(int(order[i%len(order)]) % benchHoAs)); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTick: expiring 1,000,000 bindings, per binding.
func BenchmarkTick(b *testing.B) {
	for range b.N {
		b.StopTimer()
		c, clk := benchCache(b, time.Microsecond)
		b.StartTimer()
		c.Tick(clk.t.Add(time.Hour))
		if c.Len() != 0 {
			b.Fatalf("%d bindings left", c.Len())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchHoAs*benchBIDs), "ns/binding")
}

// heapBytesPerBinding builds a 1,000,000-binding cache and returns the heap
// it takes, per binding.
func heapBytesPerBinding(tb testing.TB) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, _ := benchCache(tb, time.Microsecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := c.Len()
	runtime.KeepAlive(c)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

func BenchmarkMemory(b *testing.B) {
	var per float64
	for range b.N {
		per = heapBytesPerBinding(b)
	}
	b.ReportMetric(per, "B/binding")
}

func TestMemoryPerBinding(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 1,000,000-binding cache")
	}
	per := heapBytesPerBinding(t)
	t.Logf("%.1f bytes per binding with 1,000,000 bindings", per)
	if per >= 300 {
		t.Fatalf("%.1f bytes per binding, want < 300", per)
	}
}
