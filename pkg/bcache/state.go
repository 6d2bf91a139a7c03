package bcache

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// SavedHoA is one home address's state as Save returns it and Restore
// takes it back: what a restarted node needs to carry on as if it had
// not stopped (the rate limiter and timers start afresh).
type SavedHoA struct {
	HoA netip.Addr
	// LastSequence is the sequence number of the last accepted BU for the
	// home address: the next one must be greater (RFC 6275 9.5.1).
	LastSequence uint16
	// Prefixes are the mobile network prefixes its mobile router
	// registered (NEMO); nil for a mobile host. Shared: do not modify.
	Prefixes []netip.Prefix
	Bindings []SavedBinding // ordered by BID
}

// SavedBinding is one binding of a SavedHoA.
type SavedBinding struct {
	BID      uint16 // 0: binding without BID
	CoA      netip.Addr
	Priority uint8
	Sequence uint16 // of the BU that registered it last
	// Lifetime is the lifetime granted (a multiple of 4 s), Expires the
	// wall-clock time it ends: time spent stopped counts.
	Lifetime time.Duration
	Expires  time.Time
	// HomeRegistration: the H flag; MobileRouter: the R flag (NEMO);
	// BRRSent: this registration's Binding Refresh Request went out.
	HomeRegistration, MobileRouter, BRRSent bool
}

// Generation changes whenever what Save would return changes (a binding
// registered, refreshed, updated, removed or expired, a sequence number, a
// mobile router's prefixes, a Binding Refresh Request sent), so that the
// owner knows when a new copy is due without comparing snapshots.
func (c *Cache) Generation() uint64 { return c.gen }

// Save appends the whole cache to dst, home addresses in table order and
// each one's bindings by BID. The result shares nothing mutable with the
// cache: the owner may hand it to another goroutine.
func (c *Cache) Save(dst []SavedHoA) []SavedHoA {
	for i := range c.tab.slots {
		h := &c.tab.slots[i]
		if !h.used {
			continue
		}
		s := SavedHoA{
			HoA:          netip.AddrFrom16(h.key),
			LastSequence: h.lastSeq,
			Prefixes:     c.mnps[h.key],
			Bindings:     make([]SavedBinding, len(h.binds)),
		}
		for j := range h.binds {
			b := &h.binds[j]
			s.Bindings[j] = SavedBinding{
				BID:              b.bid,
				CoA:              netip.AddrFrom16(b.coa),
				Priority:         b.prio,
				Sequence:         b.seq,
				Lifetime:         time.Duration(b.life) * lifetimeUnit,
				Expires:          c.wall(b.expires),
				HomeRegistration: b.flags&flagHome != 0,
				MobileRouter:     b.flags&flagRouter != 0,
				BRRSent:          b.flags&flagBRRSent != 0,
			}
		}
		dst = append(dst, s)
	}
	return dst
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	// HoAs and Bindings restored.
	HoAs, Bindings int
	// Expired counts the bindings left out because their lifetime was
	// over at now.
	Expired int
	// Refused lists the home addresses left out whole, each with why
	// (not served any more, no longer a mobile router, malformed, already
	// in the cache).
	Refused []error
	// Changes are the restored state as changes (HoAUp, Added,
	// PrefixesChanged per home address), to be applied as if the BUs had
	// just been accepted. It aliases a buffer reused by the next
	// ProcessBU, Tick or Restore.
	Changes []Change
}

// Restore puts saved home addresses back into the cache, as they were
// when saved except for the bindings whose lifetime ended by now (an
// absolute, wall-clock time), which are dropped; a home address left
// without any is dropped with its sequence number, as expiry would. A
// home address is refused whole when the running configuration would not
// have accepted its bindings (a home agent that no longer serves it, a
// mobile router's prefixes no longer allowed, a role that does not match)
// or when it is malformed or already in the cache. Expiry, Binding
// Refresh Requests and sequence number checks then run as if the node
// had never stopped.
func (c *Cache) Restore(saved []SavedHoA, now time.Time) RestoreResult {
	c.changes = c.changes[:0]
	t := c.mono(now)
	var res RestoreResult
	for i := range saved {
		s := &saved[i]
		live, expired, err := c.checkSaved(s, t)
		res.Expired += expired
		if err != nil {
			res.Refused = append(res.Refused, fmt.Errorf("%v: %w", s.HoA, err))
			continue
		}
		if len(live) == 0 {
			continue
		}
		key := s.HoA.As16()
		h := c.newHoA(key, len(live))
		h.lastSeq = s.LastSequence
		c.note(HoAUp, h, nil)
		for _, b := range live {
			insertBinding(h, b)
			c.n++
			c.note(Added, h, &b)
		}
		if len(s.Prefixes) > 0 {
			c.setPrefixes(key, slices.Clone(s.Prefixes))
		}
		c.schedule(h)
		res.HoAs++
		res.Bindings += len(live)
	}
	if res.HoAs > 0 {
		c.gen++
	}
	res.Changes = c.changes
	return res
}

// checkSaved checks one saved home address against the running
// configuration and returns its bindings still alive at t.
func (c *Cache) checkSaved(s *SavedHoA, t int64) (live []binding, expired int, err error) {
	hoa := s.HoA
	switch {
	case !routable(hoa):
		return nil, 0, errors.New("not a global unicast home address")
	case c.tab.find(hoa.As16()) != nil:
		return nil, 0, errors.New("already in the cache")
	case c.cfg.Role == RoleHA && c.serves(hoa) != 0:
		return nil, 0, errors.New("not served (home_agent.serve)")
	case len(s.Bindings) > c.cfg.MaxBindingsPerHoA:
		return nil, 0, fmt.Errorf("%d bindings, more than %d", len(s.Bindings), c.cfg.MaxBindingsPerHoA)
	}
	if len(s.Prefixes) > 0 {
		if err := c.prefixesAllowed(hoa, s.Prefixes); err != nil {
			return nil, 0, err
		}
	}
	for i, sb := range s.Bindings {
		if i > 0 && sb.BID <= s.Bindings[i-1].BID {
			return nil, 0, errors.New("bindings not ordered by BID")
		}
		if sb.BID == 0 && len(s.Bindings) > 1 {
			return nil, 0, errors.New("a binding without BID beside others")
		}
		if !routable(sb.CoA) || sb.CoA == hoa {
			return nil, 0, fmt.Errorf("BID %d: care-of address %v", sb.BID, sb.CoA)
		}
		if sb.HomeRegistration != (c.cfg.Role == RoleHA) {
			return nil, 0, fmt.Errorf("BID %d: a %s binding in a %s cache", sb.BID, roleOf(sb.HomeRegistration), c.cfg.Role)
		}
		if sb.MobileRouter && c.cfg.Role != RoleHA {
			return nil, 0, fmt.Errorf("BID %d: a mobile router binding in a correspondent cache", sb.BID)
		}
		u := sb.Lifetime / lifetimeUnit
		if sb.Lifetime%lifetimeUnit != 0 || u < 1 || u > maxLifetimeUnitsField {
			return nil, 0, fmt.Errorf("BID %d: lifetime %v", sb.BID, sb.Lifetime)
		}
		b := binding{
			coa:  sb.CoA.As16(),
			life: uint16(u),
			bid:  sb.BID,
			seq:  sb.Sequence,
			prio: sb.Priority,
			// A clock set back while stopped must not stretch a
			// binding beyond the lifetime it was granted.
			expires: min(c.mono(sb.Expires), t+int64(sb.Lifetime)),
		}
		if b.expires <= t {
			expired++
			continue
		}
		if sb.HomeRegistration {
			b.flags |= flagHome
		}
		if sb.MobileRouter {
			b.flags |= flagRouter
		}
		if sb.BRRSent {
			b.flags |= flagBRRSent
		}
		live = append(live, b)
	}
	if c.n+len(live) > c.cfg.MaxBindings {
		return nil, expired, fmt.Errorf("the cache is full (%d bindings)", c.cfg.MaxBindings)
	}
	return live, expired, nil
}

func roleOf(home bool) Role {
	if home {
		return RoleHA
	}
	return RoleCN
}

// prefixesAllowed checks restored mobile network prefixes as a BU's would
// be (RFC 3963 6.1): the home address must still be a mobile router and
// each prefix inside its configured ones.
func (c *Cache) prefixesAllowed(hoa netip.Addr, ps []netip.Prefix) error {
	var allowed []netip.Prefix
	ok := false
	if c.cfg.Role == RoleHA && c.cfg.MobileRouters != nil {
		allowed, ok = c.cfg.MobileRouters(hoa)
	}
	if !ok || len(allowed) == 0 {
		return fmt.Errorf("mobile network prefixes %v, but not a mobile router", ps)
	}
	for _, p := range ps {
		if !p.IsValid() || p.Masked() != p || !slices.ContainsFunc(allowed, func(a netip.Prefix) bool {
			return a.Bits() <= p.Bits() && a.Contains(p.Addr())
		}) {
			return fmt.Errorf("mobile network prefix %v not allowed", p)
		}
	}
	return nil
}
