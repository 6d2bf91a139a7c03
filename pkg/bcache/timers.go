package bcache

import (
	"math"
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// timer is a timer-heap entry: the next event (BRR due or expiry) of one
// home address. Entries are never removed early; an entry whose home
// address moved on (gen or sched differ) is skipped when it surfaces.
type timer struct {
	when int64
	idx  uint32
	gen  uint32
}

type timerHeap []timer

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].when <= s[i].when {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *timerHeap) pop() timer {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].when < s[m].when {
			m = l
		}
		if r < len(s) && s[r].when < s[m].when {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

func (c *Cache) live(t timer) bool {
	h := &c.hoas[t.idx]
	return h.live && h.gen == t.gen && h.hasSched && h.sched == t.when
}

// brrAt is when the BRR of b is due; math.MaxInt64 when none is.
func (c *Cache) brrAt(b *binding) int64 {
	if b.flags&flagBRRSent != 0 {
		return math.MaxInt64
	}
	lead := c.cfg.brrLead(time.Duration(b.life) * lifetimeUnit)
	if lead <= 0 {
		return math.MaxInt64
	}
	return b.expires - int64(lead)
}

// schedule makes sure home address i has a live timer no later than its
// next event. A later event keeps the earlier entry, which reschedules when
// it fires: refreshes, the common case, cost no heap operation.
func (c *Cache) schedule(i uint32) {
	h := &c.hoas[i]
	next := int64(math.MaxInt64)
	for j := range h.binds {
		b := &h.binds[j]
		next = min(next, b.expires, c.brrAt(b))
	}
	if next == math.MaxInt64 || (h.hasSched && h.sched <= next) {
		return
	}
	h.sched, h.hasSched = next, true
	c.timers.push(timer{when: next, idx: i, gen: h.gen})
}

// expire removes the bindings of home address i whose lifetime is over.
func (c *Cache) expire(i uint32, now int64) {
	h := &c.hoas[i]
	for j := len(h.binds) - 1; j >= 0; j-- {
		if h.binds[j].expires <= now {
			c.removeAt(h, j)
			c.cnt.expired++
		}
	}
	c.dropIfEmpty(i)
}

// Next returns when Tick has work: the earliest BRR due or expiry; the
// zero time when the cache is empty.
func (c *Cache) Next() time.Time {
	for len(c.timers) > 0 {
		if t := c.timers[0]; c.live(t) {
			return c.wall(t.when)
		}
		c.timers.pop()
	}
	return time.Time{}
}

// BRR is a Binding Refresh Request to send (draft 6.4): to the home
// address, through the binding's care-of address (for a home agent, the
// tunnel of that BID).
type BRR struct {
	HoA, CoA netip.Addr
	BID      uint16 // 0: the binding has no BID
}

// Fill fills m with the BRR: with a BID sub-option when the binding has a
// BID, without one otherwise.
func (r BRR) Fill(m *proto.Message) {
	m.Reset()
	m.Type = proto.TypeBRR
	m.PayloadProto = proto.ProtoNone
	if r.BID != 0 {
		m.Options.BIDs = append(m.Options.BIDs, proto.BID{ID: r.BID})
	}
}

// Tick removes the bindings whose lifetime is over at now and returns the
// Binding Refresh Requests that became due (each binding gets at most one
// per registration, BRRLead before it expires), and the changes. Both
// slices are reused by the next Tick or ProcessBU.
func (c *Cache) Tick(now time.Time) ([]BRR, []Change) {
	t := c.mono(now)
	c.changes = c.changes[:0]
	c.brrs = c.brrs[:0]
	for len(c.timers) > 0 && c.timers[0].when <= t {
		e := c.timers.pop()
		if !c.live(e) {
			continue
		}
		h := &c.hoas[e.idx]
		h.hasSched = false
		for j := len(h.binds) - 1; j >= 0; j-- {
			b := &h.binds[j]
			switch {
			case b.expires <= t:
				c.removeAt(h, j)
				c.cnt.expired++
			case c.brrAt(b) <= t:
				b.flags |= flagBRRSent
				c.brrs = append(c.brrs, BRR{HoA: netip.AddrFrom16(h.key), CoA: netip.AddrFrom16(b.coa), BID: b.bid})
				c.cnt.brrs++
			}
		}
		if len(h.binds) == 0 {
			c.dropIfEmpty(e.idx)
		} else {
			c.schedule(e.idx)
		}
	}
	return c.brrs, c.changes
}
