package bcache

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// restored is a second cache, as a restarted node builds it, at the time
// of e's clock plus down.
func (e *env) restored(t *testing.T, mod func(*Config), down time.Duration) (*Cache, *clock.Fake, RestoreResult) {
	t.Helper()
	saved := e.c.Save(nil)
	cfg := haConfig()
	if mod != nil {
		mod(&cfg)
	}
	clk := clock.NewFake(e.clk.Now().Add(down))
	c := New(cfg, clk)
	res := c.Restore(saved, clk.Now())
	checkInvariants(t, c)
	return c, clk, res
}

// Save and Restore carry every binding with its care-of address,
// priority, sequence number, lifetime and expiry, the home address's last
// sequence number and a mobile router's prefixes; Restore reports them as
// the changes a registration would have made.
func TestSaveRestoreRoundTrip(t *testing.T) {
	e := newEnv(t, routers)
	e.mustAccept(buSpec{flags: proto.FlagR, bids: []proto.BID{bulk(1, coa1), bulk(2, coa2), bulk(3, coa3)}, prefixes: []netip.Prefix{mnpB}})
	e.mustAccept(buSpec{hoa: hoa2, life: 50, bids: []proto.BID{{ID: 7, PrioStatus: 3}}})
	lastSeq := e.seq
	before := append(e.c.LookupHoA(hoa1, nil), e.c.LookupHoA(hoa2, nil)...)

	c, _, res := e.restored(t, routers, 10*time.Second)
	if res.HoAs != 2 || res.Bindings != 4 || res.Expired != 0 || len(res.Refused) != 0 {
		t.Fatalf("restore: %+v", res)
	}
	after := append(c.LookupHoA(hoa1, nil), c.LookupHoA(hoa2, nil)...)
	for i := range before {
		b, a := before[i], after[i]
		if !a.Expires.Equal(b.Expires) {
			t.Errorf("BID %d expires %v, saved %v", a.BID, a.Expires, b.Expires)
		}
		a.Expires, b.Expires = time.Time{}, time.Time{}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("restored %+v\nsaved    %+v", a, b)
		}
	}
	if got := after[0].Prefixes; !slices.Equal(got, []netip.Prefix{mnpB}) || !after[0].MobileRouter {
		t.Errorf("mobile router prefixes %v (router %v)", got, after[0].MobileRouter)
	}
	var kinds []string
	for _, ch := range res.Changes {
		kinds = append(kinds, ch.Kind.String()+" "+ch.HoA.String())
	}
	got := strings.Join(kinds, ", ")
	for _, want := range []string{
		"hoa-up 2001:db8:aaaa::100, added 2001:db8:aaaa::100, added 2001:db8:aaaa::100, added 2001:db8:aaaa::100, prefixes 2001:db8:aaaa::100",
		"hoa-up 2001:db8:aaaa::200, added 2001:db8:aaaa::200",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("changes %q lack %q", got, want)
		}
	}
	if c.Generation() == 0 {
		t.Error("generation unchanged by a restore")
	}
	// The home address's sequence number: the next BU must be greater.
	h := c.tab.find(hoa2.As16())
	if h == nil || h.lastSeq != lastSeq {
		t.Fatalf("hoa2's last sequence number not restored (%v)", h)
	}
}

// Restored bindings expire at their saved (wall-clock) time: the time
// spent stopped counts, those already over are dropped, and a home
// address with none left is not restored (nor its sequence number).
func TestRestoreExpiry(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{life: 25, bids: []proto.BID{{ID: 1}}}) // 100 s
	e.clk.Advance(50 * time.Second)
	e.mustAccept(buSpec{hoa: hoa2, life: 25, bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}})

	c, clk, res := e.restored(t, nil, 60*time.Second)
	if res.HoAs != 1 || res.Bindings != 2 || res.Expired != 1 || len(res.Refused) != 0 {
		t.Fatalf("restore 60 s later: %+v", res)
	}
	if _, ok := c.Lookup(hoa1, 1); ok {
		t.Fatal("an expired binding was restored")
	}
	b, ok := c.Lookup(hoa2, 2)
	if !ok || b.Expires.Sub(clk.Now()) != 40*time.Second {
		t.Fatalf("hoa2 BID 2: %+v, %v left", b, b.Expires.Sub(clk.Now()))
	}
	// Its timers run from the saved expiry: a BRR 10 s before, then gone.
	if next := c.Next(); !next.Equal(b.Expires.Add(-10 * time.Second)) {
		t.Fatalf("next timer %v, want the BRR 10 s before %v", next, b.Expires)
	}
	clk.Advance(30 * time.Second)
	brrs, _ := c.Tick(clk.Now())
	if len(brrs) != 2 {
		t.Fatalf("BRRs at the restored time: %+v", brrs)
	}
	clk.Advance(10 * time.Second)
	_, ch := c.Tick(clk.Now())
	if c.Len() != 0 || len(ch) == 0 || ch[len(ch)-1].Kind != HoADown {
		t.Fatalf("after the restored expiry: %d bindings, changes %+v", c.Len(), ch)
	}

	// All of it over: nothing restored.
	_, _, res = e.restored(t, nil, 200*time.Second)
	if res.HoAs != 0 || res.Expired != 3 {
		t.Fatalf("restore 200 s later: %+v", res)
	}
}

// A clock set back while the node was stopped does not stretch a binding
// beyond the lifetime it was granted.
func TestRestoreClockBack(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{life: 25, bids: []proto.BID{{ID: 1}}})
	c, clk, _ := e.restored(t, nil, -time.Hour)
	b, ok := c.Lookup(hoa1, 1)
	if !ok || b.Expires.Sub(clk.Now()) != 100*time.Second {
		t.Fatalf("restored with %v left, want at most the 100 s granted", b.Expires.Sub(clk.Now()))
	}
}

// After a restore, the mobile node's next BU with a higher sequence
// number is accepted as a refresh (no change, no 135); a replayed old one
// gets 135 with the last accepted number.
func TestRestoreSequenceNumbers(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{seq: 500, bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}})
	e.mustAccept(buSpec{seq: 501, bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}})
	c, clk, _ := e.restored(t, nil, time.Second)
	e.c, e.clk = c, clk

	r := e.bu(buSpec{seq: 501, bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}})
	if r.Status != proto.StatusSequenceOutOfWindow || e.ba.Sequence != 501 {
		t.Fatalf("replayed BU: status %v, BA sequence %d; want 135 with 501", r.Status, e.ba.Sequence)
	}
	r = e.bu(buSpec{seq: 502, bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}})
	if r.Status != proto.StatusAccepted || len(r.Changes) != 0 {
		t.Fatalf("next BU: status %v, changes %+v; want a plain refresh", r.Status, r.Changes)
	}
	// The sequence number wraps modulo 2^16 as before.
	e2 := newEnv(t, nil)
	e2.mustAccept(buSpec{seq: 65535, bids: []proto.BID{{ID: 1}}})
	c, clk, _ = e2.restored(t, nil, time.Second)
	e2.c, e2.clk = c, clk
	if r := e2.bu(buSpec{seq: 2, bids: []proto.BID{{ID: 1}}}); r.Status != proto.StatusAccepted {
		t.Fatalf("BU 2 after 65535: status %v", r.Status)
	}
}

// Restore refuses what the running configuration would not accept, and
// keeps the rest.
func TestRestoreRefuses(t *testing.T) {
	e := newEnv(t, routers)
	e.mustAccept(buSpec{flags: proto.FlagR, bids: []proto.BID{{ID: 1}}, prefixes: []netip.Prefix{mnpB}})
	e.mustAccept(buSpec{hoa: hoa2, bids: []proto.BID{{ID: 1}}})
	saved := e.c.Save(nil)

	restore := func(mod func(*Config), saved []SavedHoA) (*Cache, RestoreResult) {
		cfg := haConfig()
		if mod != nil {
			mod(&cfg)
		}
		c := New(cfg, e.clk)
		res := c.Restore(saved, e.clk.Now())
		checkInvariants(t, c)
		return c, res
	}
	// hoa1 is no longer a mobile router: refused whole; hoa2 stays.
	c, res := restore(nil, saved)
	if res.HoAs != 1 || len(res.Refused) != 1 || !strings.Contains(res.Refused[0].Error(), "not a mobile router") {
		t.Fatalf("without the router: %+v", res)
	}
	if _, ok := c.Lookup(hoa2, 1); !ok {
		t.Fatal("hoa2 not restored")
	}
	// Not served any more.
	_, res = restore(func(c *Config) {
		routers(c)
		c.Serve = []netip.Prefix{netip.MustParsePrefix("2001:db8:aaaa::100/128")}
	}, saved)
	if res.HoAs != 1 || len(res.Refused) != 1 || !strings.Contains(res.Refused[0].Error(), "2001:db8:aaaa::200: not served") {
		t.Fatalf("serving hoa1 only: %+v", res)
	}
	// Malformed: unordered BIDs, a BID-less binding beside others, a bad
	// care-of address or lifetime, a correspondent's binding.
	good := SavedBinding{BID: 1, CoA: coa1, Lifetime: 40 * time.Second, Expires: e.clk.Now().Add(time.Minute), HomeRegistration: true}
	with := func(f func(*SavedBinding)) SavedBinding { b := good; f(&b); return b }
	for name, bs := range map[string][]SavedBinding{
		"order":    {with(func(b *SavedBinding) { b.BID = 2 }), good},
		"bid 0":    {with(func(b *SavedBinding) { b.BID = 0 }), good},
		"coa":      {with(func(b *SavedBinding) { b.CoA = netip.MustParseAddr("fe80::1") })},
		"lifetime": {with(func(b *SavedBinding) { b.Lifetime = 3 * time.Second })},
		"role":     {with(func(b *SavedBinding) { b.HomeRegistration = false })},
	} {
		_, res := restore(nil, []SavedHoA{{HoA: hoa2, Bindings: bs}})
		if res.HoAs != 0 || len(res.Refused) != 1 {
			t.Errorf("%s: %+v", name, res)
		}
	}
	// Already there.
	c, _ = restore(nil, []SavedHoA{{HoA: hoa2, Bindings: []SavedBinding{good}}})
	if res := c.Restore([]SavedHoA{{HoA: hoa2, Bindings: []SavedBinding{good}}}, e.clk.Now()); len(res.Refused) != 1 || c.Len() != 1 {
		t.Fatalf("restoring a home address twice: %+v", res)
	}
}

// The generation moves with every change Save would see, and only then.
func TestGeneration(t *testing.T) {
	e := newEnv(t, nil)
	g := e.c.Generation()
	step := func(what string, moved bool) {
		t.Helper()
		n := e.c.Generation()
		if (n != g) != moved {
			t.Errorf("%s: generation %d -> %d", what, g, n)
		}
		g = n
	}
	e.mustAccept(buSpec{life: 25, bids: []proto.BID{{ID: 1}}})
	step("registration", true)
	e.mustAccept(buSpec{life: 25, bids: []proto.BID{{ID: 1}}})
	step("refresh", true)
	e.bu(buSpec{seq: 1, bids: []proto.BID{{ID: 1}}})
	step("135", false)
	e.bu(buSpec{hoa: netip.MustParseAddr("2001:db8:ffff::1"), bids: []proto.BID{{ID: 1}}})
	step("132", false)
	e.clk.Advance(89 * time.Second)
	e.c.Tick(e.clk.Now())
	step("BRR", true)
	e.c.Tick(e.clk.Now())
	step("idle tick", false)
	e.clk.Advance(20 * time.Second)
	e.c.Tick(e.clk.Now())
	step("expiry", true)
}
