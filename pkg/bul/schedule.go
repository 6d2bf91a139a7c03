package bul

import (
	"slices"
	"time"
)

// needsBU reports whether e needs a new BU (not counting retransmissions of
// the one in flight).
func (c *machine) needsBU(e *entry, now time.Time) bool {
	if now.Before(e.notBefore) {
		return false
	}
	if e.tx != nil {
		// Supersede a BU in flight that says something else.
		return !e.inflightMatches()
	}
	if e.want == wantRemove {
		return true
	}
	return e.force || !e.registered || e.regCoA != e.coa || e.regPrio != e.prio || !now.Before(e.refreshAt)
}

func (c *machine) schedule(now time.Time) {
	if c.atHome || c.allDown {
		kind, done := txDeregAll, c.allDownDone
		if c.atHome {
			kind, done = txHome, c.homeDone
		}
		if done {
			return
		}
		for _, t := range c.txs {
			if t.kind == kind {
				return
			}
		}
		c.newTx(kind, nil, now)
		return
	}
	switch c.mode {
	case ModeSingle:
		if e := c.find(0); e != nil && c.needsBU(e, now) {
			c.supersede(e)
			c.newTx(txSingle, []*entry{e}, now)
		}
	case ModeIndividual:
		for _, e := range c.ents {
			if c.needsBU(e, now) {
				c.supersede(e)
				c.newTx(txIndividual, []*entry{e}, now)
			}
		}
	default:
		c.scheduleBulk(now)
	}
}

func (c *machine) scheduleBulk(now time.Time) {
	need := c.scratch[:0]
	refreshDue := false
	for _, e := range c.ents {
		if c.needsBU(e, now) {
			need = append(need, e)
			if e.want == wantRegister && e.registered && !now.Before(e.refreshAt) {
				refreshDue = true
			}
		}
	}
	if len(need) == 0 {
		c.scratch = need
		return
	}
	if refreshDue {
		// One bulk BU refreshes every binding, which keeps their lifetimes
		// aligned.
		for _, e := range c.ents {
			if e.want == wantRegister && e.registered && e.tx == nil && !now.Before(e.notBefore) && !slices.Contains(need, e) {
				need = append(need, e)
			}
		}
	}
	// Fold the bulk BU in flight into the new one: one bulk transaction.
	for i := len(c.txs) - 1; i >= 0; i-- {
		t := c.txs[i]
		if t.kind != txBulk {
			continue
		}
		for _, e := range t.items {
			if e.tx == t && !slices.Contains(need, e) {
				need = append(need, e)
			}
		}
		c.dropTx(t)
	}
	for _, e := range need {
		c.supersede(e)
	}
	if len(need) == 1 && need[0].want == wantRemove {
		// A single binding is removed with one BID sub-option without the
		// C flag (draft 5.4).
		c.newTx(txIndividual, []*entry{need[0]}, now)
	} else {
		c.newTx(txBulk, slices.Clone(need), now)
	}
	clear(need)
	c.scratch = need[:0]
}

func (c *machine) newTx(kind txKind, items []*entry, now time.Time) *txn {
	t := &txn{kind: kind, items: items, deadline: now}
	reg := false
	for _, e := range items {
		e.tx = t
		e.force = false
		e.retransmits = 0
		if e.want == wantRemove {
			e.in = inflight{coa: e.oldCoA(), remove: true}
		} else {
			e.in = inflight{coa: e.coa, prio: e.prio}
			reg = true
		}
	}
	// RFC 6275 11.8: the first registration with a home agent may need
	// duplicate address detection there, hence the longer first timeout.
	t.first = reg && !c.anyRegistered()
	c.txs = append(c.txs, t)
	return t
}

func (c *machine) anyRegistered() bool {
	for _, e := range c.ents {
		if e.registered {
			return true
		}
	}
	return false
}

// supersede takes e out of the transaction it is in.
func (c *machine) supersede(e *entry) {
	t := e.tx
	if t == nil {
		return
	}
	e.tx = nil
	if i := slices.Index(t.items, e); i >= 0 {
		t.items = slices.Delete(t.items, i, i+1)
	}
	if len(t.items) == 0 {
		c.dropTx(t)
	}
}

func (c *machine) dropTx(t *txn) {
	for _, e := range t.items {
		if e.tx == t {
			e.tx = nil
		}
	}
	if i := slices.Index(c.txs, t); i >= 0 {
		c.txs = slices.Delete(c.txs, i, i+1)
	}
}
