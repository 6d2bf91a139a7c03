package bcache

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/internal/clock"
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
	flagRouter                    // R: NEMO mobile router (RFC 3963), kept for later
	flagBRRSent                   // the BRR of this lifetime went out
)

// registered is when the binding was last registered (its lifetime runs
// from then), so it needs no field of its own.
func (b *binding) registered() int64 { return b.expires - int64(b.life)*int64(lifetimeUnit) }

// hoaState is everything about one home address.
type hoaState struct {
	key   [16]byte
	binds []binding
	// tat is the rate limiter's theoretical arrival time (GCRA).
	tat int64
	// sched is the time of this home address's live timer-heap entry
	// (when hasSched); heap entries with another time are stale.
	sched    int64
	gen      uint32 // bumped when the slot is freed, to spot stale heap entries
	lastSeq  uint16 // last accepted sequence number
	live     bool
	hasSched bool
}

// Cache is the binding cache. It is NOT safe for concurrent use: one
// goroutine owns it, feeds it BUs and ticks, and hands snapshots (Entries,
// Counters) to others.
type Cache struct {
	cfg   Config
	prof  *proto.Profile
	clk   clock.Clock
	epoch time.Time

	index map[[16]byte]uint32 // home address -> slot in hoas
	hoas  []hoaState
	free  []uint32
	n     int // bindings

	timers timerHeap
	newTAT int64 // GCRA of MaxBAPerSecondNew

	cnt counters

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
	return &Cache{
		cfg:   cfg,
		prof:  cfg.Profile,
		clk:   clk,
		epoch: clk.Now(),
		index: make(map[[16]byte]uint32),
	}
}

func (c *Cache) mono(t time.Time) int64    { return int64(t.Sub(c.epoch)) }
func (c *Cache) wall(m int64) time.Time    { return c.epoch.Add(time.Duration(m)) }
func (c *Cache) hoa(i uint32) *hoaState    { return &c.hoas[i] }
func (c *Cache) find(hoa netip.Addr) int64 { return c.findKey(hoa.As16()) }

func (c *Cache) findKey(k [16]byte) int64 {
	if i, ok := c.index[k]; ok {
		return int64(i)
	}
	return -1
}

// newHoA allocates a slot for k with room for n bindings.
func (c *Cache) newHoA(k [16]byte, n int) uint32 {
	var i uint32
	if l := len(c.free); l > 0 {
		i = c.free[l-1]
		c.free = c.free[:l-1]
	} else {
		c.hoas = append(c.hoas, hoaState{})
		i = uint32(len(c.hoas) - 1)
	}
	h := &c.hoas[i]
	gen := h.gen
	*h = hoaState{key: k, gen: gen, live: true, binds: make([]binding, 0, max(n, 1))}
	c.index[k] = i
	return i
}

// freeHoA forgets a home address without bindings.
func (c *Cache) freeHoA(i uint32) {
	h := &c.hoas[i]
	delete(c.index, h.key)
	*h = hoaState{gen: h.gen + 1}
	c.free = append(c.free, i)
}

// Len returns the number of bindings.
func (c *Cache) Len() int { return c.n }

// HoAs returns the number of home addresses with at least one binding.
func (c *Cache) HoAs() int { return len(c.index) }

// Binding is one binding as lookups return it.
type Binding struct {
	HoA      netip.Addr
	BID      uint16 // 0: binding without BID
	CoA      netip.Addr
	Priority uint8
	Sequence uint16
	// Lifetime is the lifetime granted, counted from Registered.
	Lifetime   time.Duration
	Registered time.Time
	Expires    time.Time
	// HomeRegistration: registered with the H flag (home agent role).
	HomeRegistration bool
	// MobileRouter: the BU had NEMO's R flag.
	MobileRouter bool
}

func (c *Cache) export(h *hoaState, b *binding) Binding {
	return Binding{
		HoA:              netip.AddrFrom16(h.key),
		BID:              b.bid,
		CoA:              netip.AddrFrom16(b.coa),
		Priority:         b.prio,
		Sequence:         b.seq,
		Lifetime:         time.Duration(b.life) * lifetimeUnit,
		Registered:       c.wall(b.registered()),
		Expires:          c.wall(b.expires),
		HomeRegistration: b.flags&flagHome != 0,
		MobileRouter:     b.flags&flagRouter != 0,
	}
}

func findBID(bs []binding, bid uint16) int {
	for i := range bs {
		if bs[i].bid == bid {
			return i
		}
	}
	return -1
}

// Lookup returns the binding of (hoa, bid); bid 0 is the binding without
// BID. Bindings past their lifetime stay until Tick or a BU for the home
// address removes them.
func (c *Cache) Lookup(hoa netip.Addr, bid uint16) (Binding, bool) {
	i := c.find(hoa)
	if i < 0 {
		return Binding{}, false
	}
	h := c.hoa(uint32(i))
	j := findBID(h.binds, bid)
	if j < 0 {
		return Binding{}, false
	}
	return c.export(h, &h.binds[j]), true
}

// LookupHoA appends every binding of hoa to dst, ordered by BID.
func (c *Cache) LookupHoA(hoa netip.Addr, dst []Binding) []Binding {
	i := c.find(hoa)
	if i < 0 {
		return dst
	}
	h := c.hoa(uint32(i))
	start := len(dst)
	for j := range h.binds {
		dst = append(dst, c.export(h, &h.binds[j]))
	}
	slices.SortFunc(dst[start:], func(a, b Binding) int { return int(a.BID) - int(b.BID) })
	return dst
}

// Select returns the binding used for hoa when no BID is known (draft 6.1
// leaves the choice open): the highest priority, then the most recently
// registered, then the lowest BID.
func (c *Cache) Select(hoa netip.Addr) (Binding, bool) {
	i := c.find(hoa)
	if i < 0 {
		return Binding{}, false
	}
	h := c.hoa(uint32(i))
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
	i := c.find(hoa)
	if i < 0 {
		return 0, false
	}
	k := coa.As16()
	for _, b := range c.hoa(uint32(i)).binds {
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
}

// Entries returns a snapshot of the cache ordered by home address and BID.
func (c *Cache) Entries(now time.Time) []Entry {
	t := c.mono(now)
	out := make([]Entry, 0, c.n)
	for k, i := range c.index {
		for _, b := range c.hoas[i].binds {
			left := max(b.expires-t, 0) / int64(time.Second)
			out = append(out, Entry{
				HoA:              netip.AddrFrom16(k),
				BID:              b.bid,
				CoA:              netip.AddrFrom16(b.coa),
				Priority:         b.prio,
				Sequence:         b.seq,
				Lifetime:         uint32(b.life) * proto.LifetimeUnitSeconds,
				ExpiresIn:        left,
				HomeRegistration: b.flags&flagHome != 0,
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
)

var changeNames = [...]string{"", "hoa-up", "added", "updated", "removed", "hoa-down"}

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
	c.note(Removed, h, &b)
	last := len(h.binds) - 1
	h.binds[j] = h.binds[last]
	h.binds = h.binds[:last]
	c.n--
}

// dropIfEmpty frees slot i when its home address has no binding left.
func (c *Cache) dropIfEmpty(i uint32) {
	h := &c.hoas[i]
	if len(h.binds) > 0 {
		return
	}
	c.note(HoADown, h, nil)
	c.freeHoA(i)
}

// appendBinding adds b to h, growing the array by half (not double) so
// that home addresses with a few bindings waste little.
func appendBinding(h *hoaState, b binding) {
	if len(h.binds) == cap(h.binds) {
		nb := make([]binding, len(h.binds), cap(h.binds)+cap(h.binds)/2+1)
		copy(nb, h.binds)
		h.binds = nb
	}
	h.binds = append(h.binds, b)
}
