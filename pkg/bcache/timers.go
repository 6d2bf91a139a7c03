package bcache

import (
	"math"
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// timer is a timer-heap entry: the next event (BRR due or expiry) of one
// home address. Entries are never removed early; an entry whose home
// address is gone or moved on (sched differs) is skipped when it surfaces.
type timer struct {
	when int64
	key  [16]byte
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
	*h = s[:last]
	h.down(0)
	return top
}

// down restores the heap order below i.
func (h timerHeap) down(i int) {
	s := h
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
}

// live returns the home address of a heap entry that is still current.
func (c *Cache) live(t *timer) *hoaState {
	h := c.tab.find(t.key)
	if h == nil || !h.hasSched || h.sched != t.when {
		return nil
	}
	return h
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
func (c *Cache) schedule(h *hoaState) {
	next := int64(math.MaxInt64)
	for j := range h.binds {
		b := &h.binds[j]
		next = min(next, b.expires, c.brrAt(b))
	}
	if next == math.MaxInt64 || (h.hasSched && h.sched <= next) {
		return
	}
	h.sched, h.hasSched = next, true
	c.timers.push(timer{when: next, key: h.key})
	if len(c.timers) > 2*c.tab.n+1024 {
		c.compactTimers()
	}
}

// compactTimers drops the stale heap entries, which pile up when home
// addresses come and go faster than their old entries surface.
func (c *Cache) compactTimers() {
	live := c.timers[:0]
	for i := range c.timers {
		if c.live(&c.timers[i]) != nil {
			live = append(live, c.timers[i])
		}
	}
	clear(c.timers[len(live):])
	c.timers = live
	for i := len(live)/2 - 1; i >= 0; i-- {
		c.timers.down(i)
	}
}

// expire removes the bindings of h whose lifetime is over, and h when
// none is left (then other slots move).
func (c *Cache) expire(h *hoaState, now int64) {
	for j := len(h.binds) - 1; j >= 0; j-- {
		if h.binds[j].expires <= now {
			c.removeAt(h, j)
			c.cnt.expired++
		}
	}
	c.dropIfEmpty(h)
}

// Next returns when Tick has work: the earliest BRR due or expiry; the
// zero time when the cache is empty.
func (c *Cache) Next() time.Time {
	for len(c.timers) > 0 {
		if t := &c.timers[0]; c.live(t) != nil {
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
		h := c.live(&e)
		if h == nil {
			continue
		}
		h.hasSched = false
		for j := len(h.binds) - 1; j >= 0; j-- {
			b := &h.binds[j]
			switch {
			case b.expires <= t:
				c.removeAt(h, j)
				c.cnt.expired++
			case c.brrAt(b) <= t:
				b.flags |= flagBRRSent
				c.gen++
				c.brrs = append(c.brrs, BRR{HoA: netip.AddrFrom16(h.key), CoA: netip.AddrFrom16(b.coa), BID: b.bid})
				c.cnt.brrs++
			}
		}
		if len(h.binds) == 0 {
			c.dropIfEmpty(h)
		} else {
			c.schedule(h)
		}
	}
	return c.brrs, c.changes
}
