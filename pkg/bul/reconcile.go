package bul

import "time"

// pump brings the BUL in line with the inputs and sends what is due.
func (c *machine) pump(now time.Time) {
	c.reconcile(now)
	c.expire(now)
	c.schedule(now)
	c.transmit(now)
	c.cnPump(now)
	c.report(now)
	c.cnReport(now)
}

func (c *machine) reconcile(now time.Time) {
	c.withdraw()
	var home *CareOf
	sendable := 0
	for i := range c.careofs {
		if c.careofs[i].HomeLink {
			if home == nil {
				home = &c.careofs[i]
			}
			continue
		}
		sendable++
	}
	atHome := home != nil && (c.cfg.ReturnHome == ReturnAll || sendable == 0)
	if home != nil {
		c.homeIface, c.homeIfindex = home.Iface, home.Ifindex
	} else {
		c.homeIface, c.homeIfindex = "", 0
	}
	if atHome != c.atHome {
		c.atHome, c.homeDone = atHome, false
		c.emitHome(now)
	}

	if c.atHome || c.allDown {
		kind := txDeregAll
		if c.atHome {
			kind = txHome
		}
		for i := len(c.txs) - 1; i >= 0; i-- {
			if c.txs[i].kind != kind {
				c.dropTx(c.txs[i])
			}
		}
		for _, e := range c.ents {
			e.desire(wantRemove, e.coa, e.prio)
		}
		c.pruneRemovals(now)
		return
	}
	for i := len(c.txs) - 1; i >= 0; i-- {
		if k := c.txs[i].kind; k == txDeregAll || k == txHome {
			c.dropTx(c.txs[i])
		}
	}

	if c.mode == ModeSingle {
		c.reconcileSingle(now)
	} else {
		c.reconcileMulti(now)
	}
	// A BU that never left (nothing to send from) and no longer says what
	// we want is forgotten: the peer never heard of it.
	for _, e := range c.ents {
		if t := e.tx; t != nil && t.nsent == 0 && !e.inflightMatches() {
			c.supersede(e)
		}
	}
	c.pruneRemovals(now)
}
func (c *machine) usable(co *CareOf) bool {
	return !co.HomeLink && !c.suppressed[co.BID] && !c.down[co.BID]
}

func (c *machine) reconcileMulti(now time.Time) {
	// A binding without BID left from single-CoA mode: the first BU with a
	// BID replaces it at the home agent (draft 6.2, status 144).
	if e := c.find(0); e != nil {
		c.deleteEntry(e, "replaced by bindings with BID", now)
	}
	for i := range c.careofs {
		co := &c.careofs[i]
		if !c.usable(co) {
			continue
		}
		e := c.find(co.BID)
		if e == nil {
			e = c.addEntry(co.BID)
		}
		e.desire(wantRegister, co.Addr, co.Priority)
		e.iface, e.ifindex = co.Iface, co.Ifindex
	}
	for _, e := range c.ents {
		if co := c.careOf(e.bid); co == nil || !c.usable(co) {
			e.desire(wantRemove, e.coa, e.prio)
		}
	}
}

func (c *machine) reconcileSingle(now time.Time) {
	for i := len(c.ents) - 1; i >= 0; i-- {
		if c.ents[i].bid != 0 {
			c.deleteEntry(c.ents[i], "peer does not support multiple care-of addresses", now)
		}
	}
	p := c.bestUsable()
	e := c.find(0)
	switch {
	case p != nil:
		if e == nil {
			e = c.addEntry(0)
		}
		e.desire(wantRegister, p.Addr, p.Priority)
		e.iface, e.ifindex = p.Iface, p.Ifindex
	case e != nil:
		e.desire(wantRemove, e.coa, e.prio)
	}
}

// pruneRemovals forgets removals the peer cannot hold any more.
func (c *machine) pruneRemovals(now time.Time) {
	for i := len(c.ents) - 1; i >= 0; i-- {
		e := c.ents[i]
		if e.want != wantRemove {
			continue
		}
		switch {
		case !e.registered && !e.everSent:
			c.deleteEntry(e, "never registered", now)
		case !now.Before(c.maxExpiry(e)):
			c.deleteEntry(e, "binding expired at the peer", now)
		}
	}
}

// maxExpiry is the latest time the peer may still hold e's binding.
func (c *machine) maxExpiry(e *entry) time.Time {
	t := time.Time{}
	if e.registered {
		t = e.expires
	}
	if e.everSent {
		if s := e.lastRegAt.Add(c.cfg.Lifetime); s.After(t) {
			t = s
		}
	}
	return t
}

func (c *machine) expire(now time.Time) {
	for _, e := range c.ents {
		if e.registered && !now.Before(e.expires) {
			e.registered = false
			e.granted = 0
			if e.want == wantRegister {
				e.lastErr = "binding expired before it was refreshed"
			}
		}
	}
}
