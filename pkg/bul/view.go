package bul

import (
	"maps"
	"slices"
	"time"
)

func (c *machine) emit(ev Event) {
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(ev)
	}
}

func (c *machine) homeUsable() bool { return c.atHome && c.homeDone }

func (c *machine) emitHome(now time.Time) {
	c.emit(Event{Time: now, Type: EventHome, Mode: c.mode, AtHome: c.atHome, HomeAddressUsable: c.homeUsable()})
}

// report announces the entries whose state or liveness changed, and the
// withdrawn paths (StateDown) as they go down and come back.
func (c *machine) report(now time.Time) {
	if c.cfg.OnChange == nil {
		return
	}
	for _, e := range c.ents {
		st := e.state()
		live := c.health[e.bid].State
		if e.reportedSet && st == e.reported && live == e.reportedLive {
			continue
		}
		e.reported, e.reportedLive, e.reportedSet = st, live, true
		v := c.entryView(e)
		c.emit(Event{Time: now, Type: EventBinding, Binding: &v, AtHome: c.atHome, HomeAddressUsable: c.homeUsable()})
	}
	for bid := range c.reportedDown {
		if c.down[bid] && c.find(bid) == nil {
			continue
		}
		delete(c.reportedDown, bid)
		if c.find(bid) == nil {
			// Gone without coming back (its interface left).
			v := Entry{Peer: c.cfg.HomeAgent, Role: RoleHA, BID: bid, State: StateDown, LastStatus: -1}
			c.emit(Event{Time: now, Type: EventRemoved, Binding: &v, Detail: "care-of address gone"})
		}
	}
	for _, v := range c.downViews(nil) {
		if !c.reportedDown[v.BID] {
			c.reportedDown[v.BID] = true
			c.emit(Event{Time: now, Type: EventBinding, Binding: &v, AtHome: c.atHome, HomeAddressUsable: c.homeUsable(), Detail: "path dead"})
		}
	}
}

func (c *machine) fillHealth(v *Entry) {
	if h, ok := c.health[v.BID]; ok {
		v.Liveness, v.RTT, v.Loss = h.State, h.RTT, h.Loss
	}
}

// downViews appends a StateDown view of every withdrawn path that has no
// entry any more (its de-registration is done), so that the list still
// shows it.
func (c *machine) downViews(out []Entry) []Entry {
	for i := range c.careofs {
		co := &c.careofs[i]
		if !c.down[co.BID] || c.find(co.BID) != nil {
			continue
		}
		v := Entry{Peer: c.cfg.HomeAgent, Role: RoleHA, BID: co.BID, Interface: co.Iface, CoA: co.Addr,
			Priority: co.Priority, State: StateDown, LastStatus: -1, LastError: "path dead: probing"}
		c.fillHealth(&v)
		c.fillTunnel(&v)
		out = append(out, v)
	}
	return out
}

// entryView copies e (ExpiresIn is filled in by whoever knows "now").
func (c *machine) entryView(e *entry) Entry {
	v := Entry{
		Peer:        c.cfg.HomeAgent,
		Role:        RoleHA,
		BID:         e.bid,
		Interface:   e.iface,
		CoA:         e.coa,
		Priority:    e.prio,
		State:       e.state(),
		Sequence:    e.seq,
		LastStatus:  e.lastStatus,
		LastError:   e.lastErr,
		Retransmits: e.retransmits,
	}
	if e.want == wantRemove {
		v.CoA = e.oldCoA()
	}
	c.fillHealth(&v)
	c.fillTunnel(&v)
	if e.registered {
		v.Lifetime = int(e.granted / time.Second)
		v.expires = e.expires
	}
	return v
}

func (v *Entry) fill(now time.Time) {
	if !v.expires.IsZero() && v.expires.After(now) {
		v.ExpiresIn = int(v.expires.Sub(now) / time.Second)
	} else {
		v.ExpiresIn = 0
	}
}

// snapshot copies the list; ExpiresIn is relative to now.
func (c *machine) snapshot(now time.Time) []Entry {
	out := make([]Entry, 0, len(c.ents))
	for _, e := range c.ents {
		v := c.entryView(e)
		v.fill(now)
		out = append(out, v)
	}
	out = c.downViews(out)
	n := len(out)
	out = c.cnViews(out)
	for i := n; i < len(out); i++ {
		out[i].fill(now)
	}
	return out
}

func (c *machine) status() Status {
	s := Status{
		HomeAddress:       c.cfg.HomeAddress,
		HomeAgent:         c.cfg.HomeAgent,
		Mode:              c.mode,
		ConfiguredMode:    c.cfg.Mode,
		FallbackReason:    c.fallback,
		ReturnHome:        c.cfg.ReturnHome,
		AtHome:            c.atHome,
		HomeAddressUsable: c.homeUsable(),
		DeregisteredAll:   c.allDown,
		NoCareOf:          c.bestSendable() == nil,
		Sequence:          c.seq,
		Bindings:          len(c.ents),
		Counters:          c.counters,
	}
	if !c.atHome && c.homeIface != "" {
		s.HomeLinkInterface = c.homeIface
	}
	s.Counters.BAsIgnored = maps.Clone(c.counters.BAsIgnored)
	if r := c.cfg.MobileRouter; r != nil {
		ms := &MobileRouterStatus{Mode: "explicit", Prefixes: slices.Clone(r.Prefixes),
			HomeAgentNoNEMO: c.nemoNoR, LastStatus: c.nemoStatus, LastError: c.nemoLastErr}
		if r.Implicit {
			ms.Mode = "implicit"
		}
		s.MobileRouter = ms
	}
	return s
}
