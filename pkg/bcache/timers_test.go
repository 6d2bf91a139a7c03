package bcache

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

func TestBRRAndExpiry(t *testing.T) {
	e := newEnv(t, nil)
	if !e.c.Next().IsZero() {
		t.Fatal("empty cache has a timer")
	}
	// Lifetime 100 units = 400 s; BRR lead min(40 s, 30 s) = 30 s.
	e.mustAccept(buSpec{bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}})
	reg := e.clk.Now()
	if got, want := e.c.Next(), reg.Add(370*time.Second); !got.Equal(want) {
		t.Fatalf("Next = %v, want %v", got, want)
	}
	e.clk.Advance(369 * time.Second)
	if brrs, ch := e.c.Tick(e.clk.Now()); len(brrs) != 0 || len(ch) != 0 {
		t.Fatalf("early Tick: %v %v", brrs, ch)
	}
	e.clk.Advance(time.Second)
	brrs, ch := e.c.Tick(e.clk.Now())
	if len(brrs) != 2 || len(ch) != 0 {
		t.Fatalf("Tick at BRR time: %v %v", brrs, ch)
	}
	got := map[uint16]BRR{}
	for _, b := range brrs {
		got[b.BID] = b
	}
	if got[1].CoA != coa1 || got[2].CoA != coa2 || got[1].HoA != hoa1 {
		t.Fatalf("BRRs %+v", brrs)
	}
	var m proto.Message
	brrs[0].Fill(&m)
	if m.Type != proto.TypeBRR || len(m.Options.BIDs) != 1 || m.Options.BIDs[0].ID != brrs[0].BID || m.Options.BIDs[0].C {
		t.Fatalf("BRR message %+v", m)
	}
	if got, want := e.c.Next(), reg.Add(400*time.Second); !got.Equal(want) {
		t.Fatalf("Next after BRR = %v, want expiry %v", got, want)
	}
	// Once per lifetime.
	e.clk.Advance(20 * time.Second)
	if brrs, _ := e.c.Tick(e.clk.Now()); len(brrs) != 0 {
		t.Fatalf("second BRR: %v", brrs)
	}
	// BID 1 refreshes: a new lifetime, a new BRR later; BID 2 expires.
	e.mustAccept(buSpec{bids: []proto.BID{bid(1, 0)}})
	ref := e.clk.Now()
	e.clk.Advance(9 * time.Second) // reg+400 s
	brrs, ch = e.c.Tick(e.clk.Now())
	if len(brrs) != 0 || len(ch) != 1 || ch[0].Kind != Removed || ch[0].BID != 2 || ch[0].CoA != coa2 {
		t.Fatalf("Tick at BID 2 expiry: %v %+v", brrs, ch)
	}
	if _, ok := e.c.Lookup(hoa1, 2); ok {
		t.Fatal("expired binding still there")
	}
	if got, want := e.c.Next(), ref.Add(370*time.Second); !got.Equal(want) {
		t.Fatalf("Next = %v, want %v", got, want)
	}
	e.clk.Advance(ref.Add(370 * time.Second).Sub(e.clk.Now()))
	brrs, _ = e.c.Tick(e.clk.Now())
	if len(brrs) != 1 || brrs[0].BID != 1 {
		t.Fatalf("refreshed binding's BRR: %v", brrs)
	}
	e.clk.Advance(30 * time.Second)
	_, ch = e.c.Tick(e.clk.Now())
	if len(ch) != 2 || ch[0].Kind != Removed || ch[1].Kind != HoADown || e.c.Len() != 0 || e.c.HoAs() != 0 {
		t.Fatalf("last expiry: %+v, %d bindings", ch, e.c.Len())
	}
	if !e.c.Next().IsZero() {
		t.Fatal("timer left on an empty cache")
	}
	c := e.c.Counters()
	if c.BRRs != 3 || c.Expired != 2 {
		t.Fatalf("counters %+v", c)
	}
}

func TestBRRWithoutBID(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BRRLead = 5 * time.Second })
	e.mustAccept(buSpec{life: 10}) // 40 s
	e.clk.Advance(35 * time.Second)
	brrs, _ := e.c.Tick(e.clk.Now())
	if len(brrs) != 1 || brrs[0].BID != 0 || brrs[0].CoA != coa1 {
		t.Fatalf("BRRs %+v", brrs)
	}
	var m proto.Message
	m.Options.BIDs = append(m.Options.BIDs, proto.BID{ID: 5})
	brrs[0].Fill(&m)
	if m.Type != proto.TypeBRR || len(m.Options.BIDs) != 0 {
		t.Fatalf("BRR for a binding without BID: %+v", m)
	}
}

func TestNoBRR(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BRRLead = -1 })
	e.mustAccept(buSpec{life: 10})
	if got, want := e.c.Next(), e.clk.Now().Add(40*time.Second); !got.Equal(want) {
		t.Fatalf("Next = %v, want expiry %v", got, want)
	}
	e.clk.Advance(40 * time.Second)
	brrs, ch := e.c.Tick(e.clk.Now())
	if len(brrs) != 0 || len(ch) != 2 {
		t.Fatalf("Tick: %v %v", brrs, ch)
	}
}

// TestExpiredBeforeTick: a BU for a home address whose bindings are past
// their lifetime sees them gone (no 144, no sequence check), Tick or not.
func TestExpiredBeforeTick(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{seq: 1000, life: 1})
	e.clk.Advance(10 * time.Second)
	r := e.bu(buSpec{seq: 5, bids: []proto.BID{bid(1, 0)}})
	if r.Status != st0 {
		t.Fatalf("status %v, want 0", r.Status)
	}
	if len(r.Changes) < 2 || r.Changes[0].Kind != Removed || r.Changes[1].Kind != HoADown {
		t.Fatalf("changes %+v", r.Changes)
	}
	checkInvariants(t, e.c)
	// The heap entry of the old registration is stale and skipped.
	e.clk.Advance(time.Hour)
	_, ch := e.c.Tick(e.clk.Now())
	if len(ch) != 2 || ch[0].BID != 1 {
		t.Fatalf("Tick: %+v", ch)
	}
}

func TestShorterLifetimeReschedules(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BRRLead = -1 })
	e.mustAccept(buSpec{bids: []proto.BID{bid(1, 0)}})                     // 400 s
	e.mustAccept(buSpec{src: coa2, life: 5, bids: []proto.BID{bid(2, 0)}}) // 20 s
	if got, want := e.c.Next(), e.clk.Now().Add(20*time.Second); !got.Equal(want) {
		t.Fatalf("Next = %v, want %v", got, want)
	}
	e.clk.Advance(20 * time.Second)
	_, ch := e.c.Tick(e.clk.Now())
	if len(ch) != 1 || ch[0].BID != 2 {
		t.Fatalf("Tick %+v", ch)
	}
	checkInvariants(t, e.c)
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBAPerSecondPerHoA = 0; c.MaxBAPerSecondNew = 2 })
	// First registration from the shared bucket, then the home address's
	// own: 3 per second.
	sent := 0
	for range 6 {
		r := e.c.ProcessBU(e.input(buSpec{bids: []proto.BID{bid(1, 0)}}), &e.ba)
		if r.Send {
			sent++
		} else if r.Dropped != DropRateLimited {
			t.Fatalf("not sent and not rate limited: %+v", r)
		}
	}
	if sent != 3 {
		t.Fatalf("%d BAs in one instant, want 3", sent)
	}
	if c := e.c.Counters(); c.RateLimited != 3 || c.Dropped["rate-limited"] != 3 || c.BAs != 3 {
		t.Fatalf("counters %+v", c)
	}
	e.clk.Advance(time.Second)
	if r := e.c.ProcessBU(e.input(buSpec{bids: []proto.BID{bid(1, 0)}}), &e.ba); !r.Send {
		t.Fatalf("after a second: %+v", r)
	}
	// A rate-limited BU changes nothing.
	e.clk.Advance(time.Second)
	for range 3 {
		e.c.ProcessBU(e.input(buSpec{bids: []proto.BID{bid(1, 0)}}), &e.ba)
	}
	r := e.c.ProcessBU(e.input(buSpec{src: coa2, bids: []proto.BID{bid(2, 0)}}), &e.ba)
	if r.Dropped != DropRateLimited || len(r.Changes) != 0 {
		t.Fatalf("4th BU in a second: %+v", r)
	}
	if _, ok := e.c.Lookup(hoa1, 2); ok {
		t.Fatal("rate-limited BU registered a binding")
	}
	// Unknown home addresses share one bucket: 2 per second.
	sent = 0
	for i := range 5 {
		h := hoa2
		h = h.Next()
		for range i {
			h = h.Next()
		}
		if r := e.c.ProcessBU(e.input(buSpec{hoa: h, dereg: true}), &e.ba); r.Send {
			sent++
		}
	}
	if sent != 2 {
		t.Fatalf("%d BAs for unknown home addresses, want 2", sent)
	}
}

func TestAuth(t *testing.T) {
	sa := MNHAKey{SPI: 0x1234, Key: []byte("0123456789abcdef")}
	other := MNHAKey{SPI: 0x1234, Key: []byte("fedcba9876543210")}
	keys := func(h netip.Addr) (MNHAKey, bool) { return sa, h == hoa1 }
	t.Run("valid", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MNHAKeys = keys })
		r := e.bu(buSpec{mnha: &sa, bids: []proto.BID{bid(1, 0)}})
		if !r.Send || r.Status != st0 || r.Signer == nil {
			t.Fatalf("result %+v", r)
		}
		o := e.ba.Options
		if !o.HasMNHAAuth || o.MNHASPI != sa.SPI || o.MNHASubtype != proto.AuthSubtypeMNHA || len(o.MNHAAuthData) != 12 {
			t.Fatalf("BA MN-HA option %+v", o)
		}
		// The signer authenticates the BA for (CoA, HoA) with the key.
		raw, err := proto.AppendMessage(nil, &e.ba, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Signer.Sign(raw, e.ba.AuthOffset); err != nil {
			t.Fatal(err)
		}
		off := e.ba.AuthOffset
		if !proto.NewMNHA(sa.Key).Verify(raw, off, coa1, hoa1) || proto.NewMNHA(other.Key).Verify(raw, off, coa1, hoa1) ||
			proto.NewMNHA(sa.Key).Verify(raw, off, coa2, hoa1) {
			t.Fatal("BA signature does not verify as expected")
		}
		if _, ok := e.c.Lookup(hoa1, 1); !ok {
			t.Fatal("authenticated BU not registered")
		}
	})
	bad := []struct {
		name string
		mod  func(in *BUInput)
	}{
		{"no option", func(in *BUInput) { in.Msg.Options.HasMNHAAuth = false }},
		{"wrong SPI", func(in *BUInput) { in.Msg.Options.MNHASPI++ }},
		{"wrong subtype", func(in *BUInput) { in.Msg.Options.MNHASubtype = proto.AuthSubtypeMNAAA }},
		{"tampered message", func(in *BUInput) { in.MH[10] ^= 1 }},
		{"tampered authenticator", func(in *BUInput) { in.MH[in.Msg.AuthOffset+3] ^= 1 }},
		{"alternate CoA added", func(in *BUInput) { in.Msg.Options.AltCoA = coa2 }},
		{"other CoA", func(in *BUInput) { in.Src = coa2 }},
		{"authenticator out of range", func(in *BUInput) { in.Msg.AuthOffset = len(in.MH) - 4 }},
		{"no authenticator offset", func(in *BUInput) { in.Msg.AuthOffset = -1 }},
		{"no bytes", func(in *BUInput) { in.MH = nil }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MNHAKeys = keys })
			e.mustAccept(buSpec{mnha: &sa, bids: []proto.BID{bid(1, 0)}})
			in := e.input(buSpec{mnha: &sa, src: coa3, bids: []proto.BID{bid(1, 0)}})
			tc.mod(in)
			r := e.c.ProcessBU(in, &e.ba)
			if r.Dropped != DropAuth || r.Send || len(r.Changes) != 0 {
				t.Fatalf("result %+v, want silent drop", r)
			}
			if b, _ := e.c.Lookup(hoa1, 1); b.CoA != coa1 {
				t.Fatalf("binding changed to %v", b.CoA)
			}
		})
	}
	t.Run("alternate CoA and a reused MAC", func(t *testing.T) {
		reused := sa
		reused.MAC = proto.NewMNHA(sa.Key)
		e := newEnv(t, func(c *Config) {
			c.MNHAKeys = func(h netip.Addr) (MNHAKey, bool) { return reused, h == hoa1 }
		})
		in := e.input(buSpec{mnha: &sa, alt: coa3, bids: []proto.BID{bid(2, 0)}})
		r := e.c.ProcessBU(in, &e.ba)
		if r.Status != st0 || r.Signer == nil {
			t.Fatalf("result %+v", r)
		}
		if b, ok := e.c.Lookup(hoa1, 2); !ok || b.CoA != coa3 {
			t.Fatalf("binding %+v", b)
		}
		// Refreshes with the reused MAC do not allocate.
		allocs := testing.AllocsPerRun(100, func() {
			in.Msg.Sequence++
			in.MH[6], in.MH[7] = byte(in.Msg.Sequence>>8), byte(in.Msg.Sequence)
			if err := reused.MAC.Sign(in.MH, in.Msg.AuthOffset, coa3, hoa1); err != nil {
				t.Fatal(err)
			}
			if r := e.c.ProcessBU(in, &e.ba); r.Status != st0 || r.Signer == nil {
				t.Fatalf("refresh: %+v", r)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v allocations per authenticated BU", allocs)
		}
	})
	t.Run("checksum field not covered", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MNHAKeys = keys })
		in := e.input(buSpec{mnha: &sa})
		in.MH[4], in.MH[5] = 0xde, 0xad
		if r := e.c.ProcessBU(in, &e.ba); r.Status != st0 || r.Dropped != NotDropped {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("home address without key", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MNHAKeys = keys })
		r := e.bu(buSpec{hoa: hoa2})
		if r.Status != st0 || r.Signer != nil || e.ba.Options.HasMNHAAuth {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("unauthenticated BU does not use up the rate limit", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MNHAKeys = keys; c.MaxBAPerSecondPerHoA = 3 })
		e.mustAccept(buSpec{mnha: &sa})
		for range 10 {
			e.c.ProcessBU(e.input(buSpec{mnha: &other}), &e.ba)
		}
		if r := e.c.ProcessBU(e.input(buSpec{mnha: &sa}), &e.ba); !r.Send {
			t.Fatalf("result %+v", r)
		}
	})
}

// TestTimerHeapBounded: home addresses that come and go leave stale heap
// entries, which are compacted away.
func TestTimerHeapBounded(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{hoa: hoa2, life: 1000}) // one that stays
	for range 5000 {
		e.mustAccept(buSpec{life: 1000})
		e.mustAccept(buSpec{dereg: true})
	}
	if n := len(e.c.timers); n > 2*e.c.HoAs()+1024+1 {
		t.Fatalf("%d heap entries for %d home addresses", n, e.c.HoAs())
	}
	checkInvariants(t, e.c)
	if got, want := e.c.Next(), t0.Add(time.Second+390*time.Second); !got.Equal(want) { // BRR of hoa2
		t.Fatalf("Next = %v, want %v", got, want)
	}
}
