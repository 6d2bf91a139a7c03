package bcache

import (
	"net/netip"

	"github.com/mcoad/mcoad/pkg/proto"
)

// bidTally counts a BU's BID sub-options by outcome.
type bidTally struct {
	failed, good, registered int
	failSt                   uint8 // the failures' status; incompliant when they differ
}

// withBIDs processes a BU with BID sub-options (draft 6.2), leaving each
// sub-option's status in c.status.
func (c *Cache) withBIDs(u *bu, h *hoaState) (proto.Status, uint16) {
	bids := u.m.Options.BIDs
	for _, b := range bids {
		if b.C && !c.cfg.BulkRegistration {
			return c.prof.StatusBulkNotSupported, 0
		}
	}
	c.markIncompliant(u)
	life := c.grant(u.m)
	var t bidTally
	for i := range bids {
		h = c.applyBID(u, h, i, life, &t)
	}
	conflict := c.settleBIDs(u, h, t)
	if t.registered == 0 {
		life = 0
	}
	return c.bulkStatus(t, conflict, life)
}

// markIncompliant sets the status of each sub-option that breaks the
// draft's rules to BIDStatusIncompliant.
func (c *Cache) markIncompliant(u *bu) {
	bids := u.m.Options.BIDs
	for i, b := range bids {
		ok := b.Err == nil && b.ID != 0 &&
			(!b.R || b.C) && // R only with C (draft 6.2)
			(!b.C || b.CoA.IsValid()) && // C needs a CoA
			(len(bids) == 1 || b.C) // several bindings only in bulk (4.3.1)
		for k := range i {
			if bids[k].ID == b.ID {
				ok = false // the same BID twice
			}
		}
		if ok && u.m.Lifetime != 0 && !b.R {
			if a := bidCoA(u.in, &b); a != u.hoa && !routable(a) {
				ok = false
			}
		}
		if !ok {
			c.status[i] = c.prof.BIDStatusIncompliant
		}
	}
}

// applyBID applies sub-option i: a removal (lifetime 0, R flag, or care-of
// address = home address) or a registration, which creates the home
// address's entry for its first binding. It returns the entry, nil while
// there is none.
func (c *Cache) applyBID(u *bu, h *hoaState, i int, life uint16, t *bidTally) *hoaState {
	b := &u.m.Options.BIDs[i]
	if c.status[i] != 0 {
		c.status[i] = 0
		c.failBID(t, i, c.prof.BIDStatusIncompliant)
		return h
	}
	coa := bidCoA(u.in, b)
	if u.m.Lifetime == 0 || b.R || coa == u.hoa {
		c.removeBID(u, h, i, t)
		return h
	}
	if h == nil {
		if c.n >= c.cfg.MaxBindings {
			c.failBID(t, i, uint8(proto.StatusInsufficientResources))
			return nil
		}
		h = c.addHoA(u.key, len(u.m.Options.BIDs), u.now)
	}
	if findBID(h.binds, b.ID) < 0 && (len(h.binds) >= c.cfg.MaxBindingsPerHoA || c.n >= c.cfg.MaxBindings) {
		c.failBID(t, i, uint8(proto.StatusInsufficientResources))
		return h
	}
	c.put(h, c.newBinding(u.m, coa, b.ID, b.PrioStatus, life, u.now))
	t.good++
	t.registered++
	return h
}

// removeBID removes the binding of sub-option i, if any.
func (c *Cache) removeBID(u *bu, h *hoaState, i int, t *bidTally) {
	b := &u.m.Options.BIDs[i]
	j := -1
	if h != nil {
		j = findBID(h.binds, b.ID)
	}
	switch {
	case j >= 0:
		c.removeAt(h, j)
		t.good++
	case b.R && u.m.Lifetime != 0:
		t.good++ // nothing to remove: what the MN asks for holds
	default:
		c.failBID(t, i, uint8(proto.StatusNotHomeAgentForMN)) // draft 6.2
	}
}

// failBID gives sub-option i the status st.
func (c *Cache) failBID(t *bidTally, i int, st uint8) {
	c.status[i] = st
	if t.failed > 0 && t.failSt != st {
		t.failSt = c.prof.BIDStatusIncompliant // mixed reasons
	} else {
		t.failSt = st
	}
	t.failed++
}

// settleBIDs finishes the home address's entry after its sub-options: a
// binding with BID replaces the regular binding (draft 6.2: conflict), the
// sequence number is taken when anything succeeded, and the entry goes
// when empty or is rescheduled.
func (c *Cache) settleBIDs(u *bu, h *hoaState, t bidTally) (conflict bool) {
	if t.registered > 0 {
		if j := findBID(h.binds, 0); j >= 0 {
			c.removeAt(h, j)
			conflict = true
		}
	}
	if h == nil {
		return conflict
	}
	if t.good > 0 && h.lastSeq != u.m.Sequence {
		h.lastSeq = u.m.Sequence
		c.gen++
	}
	if len(h.binds) == 0 {
		c.dropIfEmpty(h)
	} else {
		c.schedule(h)
	}
	return conflict
}

// bulkStatus is the BA's status after the sub-options.
func (c *Cache) bulkStatus(t bidTally, conflict bool, life uint16) (proto.Status, uint16) {
	switch {
	case t.failed > 0 && t.good == 0 && t.failSt != c.prof.BIDStatusIncompliant:
		// Every sub-option failed for the same RFC 6275 reason (133 for
		// unknown BIDs, 130): that is the BU's status.
		return proto.Status(t.failSt), 0
	case t.failed > 0:
		return c.prof.StatusBulkRegFail, life
	case conflict:
		return c.prof.StatusMCoAConflict, life
	}
	return proto.StatusAccepted, life
}

// bidCoA is the care-of address of a BID sub-option (draft 6.2).
func bidCoA(in *BUInput, b *proto.BID) netip.Addr {
	if b.C {
		return b.CoA
	}
	return careOf(in)
}
