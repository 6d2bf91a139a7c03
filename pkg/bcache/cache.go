package bcache

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// binding is one cache entry, kept small and pointer-free: a million of them
// must fit in well under 300 bytes each, and the GC never scans them.
type binding struct {
	coa     [16]byte
	expires int64  // nanoseconds since Cache.epoch
	life    uint16 // granted lifetime, units of 4 s; > 0
	bid     uint16 // 0: binding without BID
	seq     uint16 // sequence number of the BU that registered it last
	prio    uint8
	flags   uint8
}

const (
	flagHome    uint8 = 1 << iota // H: home registration
	flagRouter                    // R: NEMO mobile router (RFC 3963)
	flagBRRSent                   // the BRR of this lifetime went out
)

// registered is when the binding was last registered (its lifetime runs
// from then), so it needs no field of its own.
func (b *binding) registered() int64 { return b.expires - int64(b.life)*int64(lifetimeUnit) }

// Cache is the binding cache. It is NOT safe for concurrent use: one
// goroutine owns it, feeds it BUs and ticks, and hands snapshots (Entries,
// Counters) to others.
type Cache struct {
	cfg   Config
	prof  *proto.Profile
	clk   clock.Clock
	epoch time.Time

	tab hoaTable
	n   int // bindings

	timers timerHeap
	newTAT int64 // GCRA of MaxBAPerSecondNew

	cnt counters
	// gen counts the changes of what Save returns (Generation).
	gen uint64

	// mnps holds the mobile network prefixes registered by each mobile
	// router's home address (RFC 3963), beside the table: few home
	// addresses have them and the table's slots stay 64 octets. A slice
	// in it is never modified, so Binding and Change may share it.
	mnps map[[16]byte][]netip.Prefix

	// Scratch reused across calls so that the hot path does not allocate.
	changes []Change
	brrs    []BRR
	status  []uint8
	authBuf [proto.AuthenticatorLen]byte
	signer  baSigner
}

// New returns an empty cache. clk supplies the time of ProcessBU.
func New(cfg Config, clk clock.Clock) *Cache {
	cfg = cfg.withDefaults()
	if clk == nil {
		clk = clock.Real{}
	}
	c := &Cache{
		cfg:   cfg,
		prof:  cfg.Profile,
		clk:   clk,
		epoch: clk.Now(),
	}
	c.tab.init()
	return c
}

func (c *Cache) mono(t time.Time) int64 { return int64(t.Sub(c.epoch)) }
func (c *Cache) wall(m int64) time.Time { return c.epoch.Add(time.Duration(m)) }

// newHoA adds a home address with room for n bindings. It moves other
// slots: pointers to them are stale afterwards.
func (c *Cache) newHoA(k [16]byte, n int) *hoaState {
	h := c.tab.insert(k)
	h.binds = make([]binding, 0, max(n, 1))
	return h
}

// Len returns the number of bindings.
func (c *Cache) Len() int { return c.n }

// HoAs returns the number of home addresses with at least one binding.
func (c *Cache) HoAs() int { return c.tab.n }

// Registered is when the binding was last registered.
func (b Binding) Registered() time.Time { return b.Expires.Add(-b.Lifetime) }

// Binding is one binding as lookups return it.
type Binding struct {
	HoA      netip.Addr
	BID      uint16 // 0: binding without BID
	CoA      netip.Addr
	Priority uint8
	Sequence uint16
	// Lifetime is the lifetime granted, counted from Registered.
	Lifetime time.Duration
	Expires  time.Time
	// HomeRegistration: registered with the H flag (home agent role).
	HomeRegistration bool
	// MobileRouter: the BU had NEMO's R flag.
	MobileRouter bool
	// Prefixes are the mobile network prefixes registered for the home
	// address (RFC 3963), to be routed to its mobile router. Shared: do
	// not modify.
	Prefixes []netip.Prefix
}

func (c *Cache) export(h *hoaState, b *binding) Binding {
	var ps []netip.Prefix
	if b.flags&flagRouter != 0 {
		ps = c.mnps[h.key]
	}
	return Binding{
		Prefixes:         ps,
		HoA:              netip.AddrFrom16(h.key),
		BID:              b.bid,
		CoA:              netip.AddrFrom16(b.coa),
		Priority:         b.prio,
		Sequence:         b.seq,
		Lifetime:         time.Duration(b.life) * lifetimeUnit,
		Expires:          c.wall(b.expires),
		HomeRegistration: b.flags&flagHome != 0,
		MobileRouter:     b.flags&flagRouter != 0,
	}
}

// lowerBound is the index of the first binding of bs (sorted by BID) with
// a BID not below bid.
func lowerBound(bs []binding, bid uint16) int {
	lo, hi := 0, len(bs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bs[m].bid < bid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// findBID returns the index of bid in bs (sorted by BID), or -1. Mobile
// nodes tend to number BIDs from 1 up, so index bid-1 is tried first: one
// cache line instead of a search.
func findBID(bs []binding, bid uint16) int {
	if i := int(bid) - 1; uint(i) < uint(len(bs)) && bs[i].bid == bid {
		return i
	}
	return searchBID(bs, bid)
}

func searchBID(bs []binding, bid uint16) int {
	if i := lowerBound(bs, bid); i < len(bs) && bs[i].bid == bid {
		return i
	}
	return -1
}

// Lookup returns the binding of (hoa, bid); bid 0 is the binding without
// BID. Bindings past their lifetime stay until Tick or a BU for the home
// address removes them.
func (c *Cache) Lookup(hoa netip.Addr, bid uint16) (Binding, bool) {
	h := c.tab.find(hoa.As16())
	if h == nil {
		return Binding{}, false
	}
	j := findBID(h.binds, bid)
	if j < 0 {
		return Binding{}, false
	}
	return c.export(h, &h.binds[j]), true
}

// LookupHoA appends every binding of hoa to dst, ordered by BID.
func (c *Cache) LookupHoA(hoa netip.Addr, dst []Binding) []Binding {
	h := c.tab.find(hoa.As16())
	if h == nil {
		return dst
	}
	for j := range h.binds {
		dst = append(dst, c.export(h, &h.binds[j]))
	}
	return dst
}

// Select returns the binding used for hoa when no BID is known (draft 6.1
// leaves the choice open): the highest priority, then the most recently
// registered, then the lowest BID.
func (c *Cache) Select(hoa netip.Addr) (Binding, bool) {
	h := c.tab.find(hoa.As16())
	if h == nil {
		return Binding{}, false
	}
	best := -1
	for j := range h.binds {
		if best < 0 || better(&h.binds[j], &h.binds[best]) {
			best = j
		}
	}
	if best < 0 {
		return Binding{}, false
	}
	return c.export(h, &h.binds[best]), true
}

func better(a, b *binding) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if ra, rb := a.registered(), b.registered(); ra != rb {
		return ra > rb
	}
	return a.bid < b.bid
}

// Bound reports whether hoa has a binding to coa, and its BID: a
// correspondent answers packets with a Home Address option from an unbound
// source with a Binding Error, status 1 (RFC 6275 9.3.1, draft 6.5).
func (c *Cache) Bound(hoa, coa netip.Addr) (bid uint16, ok bool) {
	h := c.tab.find(hoa.As16())
	if h == nil {
		return 0, false
	}
	k := coa.As16()
	for _, b := range h.binds {
		if b.coa == k {
			return b.bid, true
		}
	}
	return 0, false
}

// Entry is one binding in the control API's GET /v1/cache.
type Entry struct {
	HoA              netip.Addr `json:"hoa"`
	BID              uint16     `json:"bid"`
	CoA              netip.Addr `json:"coa"`
	Priority         uint8      `json:"priority"`
	Sequence         uint16     `json:"sequence"`
	Lifetime         uint32     `json:"lifetime"`   // seconds granted
	ExpiresIn        int64      `json:"expires_in"` // seconds left, 0 when past
	HomeRegistration bool       `json:"home_registration"`
	// Prefixes: the home address's mobile network prefixes (NEMO).
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
}

// Entries returns a snapshot of the cache ordered by home address and BID.
func (c *Cache) Entries(now time.Time) []Entry {
	t := c.mono(now)
	out := make([]Entry, 0, c.n)
	for i := range c.tab.slots {
		h := &c.tab.slots[i]
		if !h.used {
			continue
		}
		for _, b := range h.binds {
			left := max(b.expires-t, 0) / int64(time.Second)
			out = append(out, Entry{
				HoA:              netip.AddrFrom16(h.key),
				BID:              b.bid,
				CoA:              netip.AddrFrom16(b.coa),
				Priority:         b.prio,
				Sequence:         b.seq,
				Lifetime:         uint32(b.life) * proto.LifetimeUnitSeconds,
				ExpiresIn:        left,
				HomeRegistration: b.flags&flagHome != 0,
				Prefixes:         c.mnps[h.key],
			})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		ka, kb := a.HoA.As16(), b.HoA.As16()
		if r := bytes.Compare(ka[:], kb[:]); r != 0 {
			return r
		}
		return int(a.BID) - int(b.BID)
	})
	return out
}

// ChangeKind says what happened to a binding or home address.
type ChangeKind uint8

const (
	// HoAUp: the home address got its first binding (start proxy neighbour
	// advertisements for it). It comes before that binding's Added.
	HoAUp ChangeKind = iota + 1
	// Added: a new (HoA, BID) binding.
	Added
	// Updated: the care-of address or priority of a binding changed. A
	// plain refresh (same CoA and priority) is not a change.
	Updated
	// Removed: a binding is gone (de-registered, replaced or expired).
	Removed
	// HoADown: the home address lost its last binding (stop proxying). It
	// comes after that binding's Removed.
	HoADown
	// PrefixesChanged: the mobile network prefixes registered by the home
	// address's mobile router changed (RFC 3963); Change.Prefixes holds
	// the new list, empty when they are gone (then before HoADown).
	PrefixesChanged
)

var changeNames = [...]string{"", "hoa-up", "added", "updated", "removed", "hoa-down", "prefixes"}

func (k ChangeKind) String() string {
	if int(k) < len(changeNames) {
		return changeNames[k]
	}
	return "change?"
}

// Change is one change of the cache, for proxy ND and the data plane. For
// HoAUp and HoADown only HoA is set; for Removed, CoA and Priority are the
// binding's last ones.
type Change struct {
	Kind     ChangeKind
	HoA      netip.Addr
	BID      uint16
	CoA      netip.Addr
	Priority uint8
	// Prefixes: PrefixesChanged only. Shared: do not modify.
	Prefixes []netip.Prefix
}

func (c *Cache) note(kind ChangeKind, h *hoaState, b *binding) {
	ch := Change{Kind: kind, HoA: netip.AddrFrom16(h.key)}
	if b != nil {
		ch.BID, ch.CoA, ch.Priority = b.bid, netip.AddrFrom16(b.coa), b.prio
	}
	c.changes = append(c.changes, ch)
}

// removeAt removes binding j of h, noting it.
func (c *Cache) removeAt(h *hoaState, j int) {
	b := h.binds[j]
	c.gen++
	c.note(Removed, h, &b)
	h.binds = slices.Delete(h.binds, j, j+1)
	c.n--
}

// dropIfEmpty forgets h's home address when it has no binding left. It
// moves other slots: pointers to them are stale afterwards.
func (c *Cache) dropIfEmpty(h *hoaState) {
	if len(h.binds) > 0 {
		return
	}
	c.setPrefixes(h.key, nil)
	c.note(HoADown, h, nil)
	c.tab.remove(h.key)
}

// insertBinding adds b to h in BID order, growing the array by half (not
// double) so that home addresses with a few bindings waste little.
func insertBinding(h *hoaState, b binding) {
	if len(h.binds) == cap(h.binds) {
		nb := make([]binding, len(h.binds), cap(h.binds)+cap(h.binds)/2+1)
		copy(nb, h.binds)
		h.binds = nb
	}
	h.binds = slices.Insert(h.binds, lowerBound(h.binds, b.bid), b)
}

// Reconfigure applies a new configuration (a reload): later BUs are
// processed by it, bindings already in the cache keep the lifetime they
// were granted. Call it from the goroutine that owns the Cache.
func (c *Cache) Reconfigure(cfg Config) {
	c.cfg = cfg.withDefaults()
	c.prof = c.cfg.Profile
}

// setPrefixes records the mobile network prefixes of a home address (nil:
// none), noting a change when they differ.
func (c *Cache) setPrefixes(key [16]byte, ps []netip.Prefix) {
	old, had := c.mnps[key]
	if slices.Equal(old, ps) && had == (len(ps) > 0) {
		return
	}
	if len(ps) == 0 {
		delete(c.mnps, key)
	} else {
		if c.mnps == nil {
			c.mnps = map[[16]byte][]netip.Prefix{}
		}
		c.mnps[key] = ps
	}
	c.gen++
	c.changes = append(c.changes, Change{Kind: PrefixesChanged, HoA: netip.AddrFrom16(key), Prefixes: ps})
}
