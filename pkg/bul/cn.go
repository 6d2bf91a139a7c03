package bul

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/rr"
)

// Correspondent registration (route optimisation, draft 3.1, 5.2, 6.1-6.5):
// for each correspondent, one entry per BID whose care-of address is
// registered with the home agent. Each goes through return routability
// (pkg/rr: one HoTI per correspondent through the home agent tunnel, one
// CoTI per care-of address) and then one BU per BID, never bulk. A
// correspondent that does not know MCoA (a BA without BID sub-option, or a
// Binding Error with status 2) gets a single binding without BID for the
// primary care-of address, as RFC 6275 does.

// cnEntry is one Binding Update List entry for a correspondent.
type cnEntry struct {
	bid     uint16 // 0: the single binding of RFC 6275
	iface   string
	ifindex int

	want  want
	coa   netip.Addr
	prio  uint8
	force bool

	registered bool
	regCoA     netip.Addr
	granted    time.Duration
	expires    time.Time
	refreshAt  time.Time

	// The BU in flight.
	inflight bool
	inRemove bool
	inCoA    netip.Addr // the binding's CoA (for a removal, the old one)
	sent     [4]sentSeq
	nsent    int
	timeout  time.Duration
	deadline time.Time
	everSent bool
	sentAt   time.Time

	progress
}

func (e *cnEntry) state() State { return stateOf(e.want, e.failed, e.registered, e.inflight) }

func (e *cnEntry) findSeq(seq uint16) (sentSeq, bool) {
	for i := range min(e.nsent, len(e.sent)) {
		if s := e.sent[i]; s.seq == seq {
			return s, true
		}
	}
	return sentSeq{}, false
}

func (e *cnEntry) clearTx() { e.inflight, e.nsent, e.retransmits = false, 0, 0 }

// cnPeer is one correspondent.
type cnPeer struct {
	addr   netip.Addr
	single bool   // it does not know MCoA: one binding without BID
	seq    uint16 // its own sequence number space
	ents   []*cnEntry
	sends  [maxUpdateRate]time.Time
	sendIx int
}

func (p *cnPeer) find(bid uint16) *cnEntry {
	for _, e := range p.ents {
		if e.bid == bid {
			return e
		}
	}
	return nil
}

// cnState is the correspondent side of the machine.
type cnState struct {
	mn      *rr.MN
	peers   []*cnPeer
	noPlane bool // logged once: no HA tunnel, no return routability
}

func newCNState(c *machine) *cnState {
	if len(c.cfg.Correspondents) == 0 {
		return nil
	}
	mn, err := rr.NewMN(rr.MNConfig{HomeAddress: c.cfg.HomeAddress, Clock: c.cfg.Clock})
	if err != nil {
		c.log.Warn("route optimisation disabled", "err", err)
		return nil
	}
	s := &cnState{mn: mn}
	for _, a := range c.cfg.Correspondents {
		s.peers = append(s.peers, &cnPeer{addr: a, seq: uint16(rand.Uint32())})
	}
	if !c.cfg.DataPlane {
		c.log.Warn("no data plane: return routability cannot run; correspondents are not registered", "correspondents", len(s.peers))
		s.noPlane = true
	}
	return s
}

func (c *machine) cnPeer(a netip.Addr) *cnPeer {
	if c.cn == nil {
		return nil
	}
	for _, p := range c.cn.peers {
		if p.addr == a {
			return p
		}
	}
	return nil
}

func (c *machine) cnLifetime() time.Duration { return min(c.cfg.Lifetime, rr.MaxRRBindingLifetime) }

// haRegistered returns the registered home binding of co's CoA, if any:
// a correspondent binding goes only through a CoA the home agent holds.
func (c *machine) haRegistered(coa netip.Addr) *entry {
	for _, e := range c.ents {
		if e.want == wantRegister && e.registered && e.regCoA == coa {
			return e
		}
	}
	return nil
}

func (c *machine) cnReconcile(now time.Time) {
	for _, p := range c.cn.peers {
		down := c.atHome || c.allDown || c.cn.noPlane
		want := map[uint16]*CareOf{}
		if !down {
			if p.single {
				if co := c.bestUsable(); co != nil && c.haRegistered(co.Addr) != nil {
					want[0] = co
				}
			} else {
				for i := range c.careofs {
					co := &c.careofs[i]
					if c.usable(co) && c.haRegistered(co.Addr) != nil {
						want[co.BID] = co
					}
				}
			}
		}
		for bid, co := range want {
			e := p.find(bid)
			if e == nil {
				e = &cnEntry{bid: bid, progress: progress{lastStatus: -1}}
				p.ents = append(p.ents, e)
				slices.SortFunc(p.ents, func(a, b *cnEntry) int { return int(a.bid) - int(b.bid) })
			}
			if e.want != wantRegister || e.coa != co.Addr || e.prio != co.Priority {
				e.notBefore, e.backoff, e.failed = time.Time{}, 0, false
				if e.inflight && !e.inRemove && e.inCoA != co.Addr {
					e.clearTx()
				}
			}
			e.want, e.coa, e.prio, e.iface, e.ifindex = wantRegister, co.Addr, co.Priority, co.Iface, co.Ifindex
		}
		for i := len(p.ents) - 1; i >= 0; i-- {
			e := p.ents[i]
			if _, ok := want[e.bid]; ok {
				continue
			}
			if e.want != wantRemove {
				e.want, e.notBefore, e.backoff, e.failed = wantRemove, time.Time{}, 0, false
				if e.inflight && !e.inRemove {
					e.clearTx()
				}
			}
			if !e.registered && !e.everSent {
				c.cnDelete(p, e, "never registered", now)
			} else if e.registered && !now.Before(e.expires) || !e.registered && !now.Before(e.sentAt.Add(c.cnLifetime())) {
				c.cnDelete(p, e, "binding expired at the correspondent", now)
			}
		}
	}
}

func (c *machine) cnDelete(p *cnPeer, e *cnEntry, why string, now time.Time) {
	if i := slices.Index(p.ents, e); i >= 0 {
		p.ents = slices.Delete(p.ents, i, i+1)
	}
	if e.coa.IsValid() && !slices.ContainsFunc(c.careofs, func(co CareOf) bool { return co.Addr == e.coa }) {
		c.cn.mn.Forget(p.addr, e.coa)
	}
	v := c.cnView(p, e)
	v.expires = time.Time{}
	c.emit(Event{Time: now, Type: EventRemoved, Binding: &v, Detail: why})
}

// cnDeadline is the earliest time after now at which the correspondents
// have work.
func (c *machine) cnDeadline(now time.Time, consider func(time.Time)) {
	if c.cn == nil || c.cn.noPlane {
		return
	}
	consider(c.cn.mn.Expire(now))
	for _, p := range c.cn.peers {
		if !c.cnRateOK(p, now) {
			consider(p.sends[p.sendIx].Add(time.Second))
		}
		for _, e := range p.ents {
			if e.inflight {
				consider(e.deadline)
			}
			consider(e.notBefore)
			if e.registered {
				consider(e.expires)
				consider(e.refreshAt)
			}
			if e.want == wantRemove && !e.registered {
				consider(e.sentAt.Add(c.cnLifetime()))
			}
		}
	}
}

// cnSettled: nothing left to tell the correspondents before stopping (a
// de-registration that was sent at least once is enough: Stop does not
// wait for an unreachable correspondent).
func (c *machine) cnSettled() bool {
	if c.cn == nil || c.cn.noPlane || c.bestSendable() == nil {
		return true
	}
	for _, p := range c.cn.peers {
		for _, e := range p.ents {
			if e.want == wantRemove && !(e.inflight && e.inRemove) {
				return false
			}
		}
	}
	return true
}

func (c *machine) cnReport(now time.Time) {
	if c.cn == nil || c.cfg.OnChange == nil {
		return
	}
	for _, p := range c.cn.peers {
		for _, e := range p.ents {
			st := e.state()
			if e.reportedSet && st == e.reported {
				continue
			}
			e.reported, e.reportedSet = st, true
			v := c.cnView(p, e)
			c.emit(Event{Time: now, Type: EventBinding, Binding: &v, AtHome: c.atHome, HomeAddressUsable: c.homeUsable()})
		}
	}
}

func (c *machine) cnView(p *cnPeer, e *cnEntry) Entry {
	v := Entry{
		Peer: p.addr, Role: RoleCN, BID: e.bid, Interface: e.iface, CoA: e.coa, Priority: e.prio,
		State: e.state(), Sequence: e.seq, LastStatus: e.lastStatus, LastError: e.lastErr, Retransmits: e.retransmits,
	}
	if e.want == wantRemove && e.regCoA.IsValid() {
		v.CoA = e.regCoA
	}
	if e.registered {
		v.Lifetime = int(e.granted / time.Second)
		v.expires = e.expires
	}
	c.fillTunnel(&v)
	return v
}

func (c *machine) cnViews(out []Entry) []Entry {
	if c.cn == nil {
		return out
	}
	for _, p := range c.cn.peers {
		for _, e := range p.ents {
			out = append(out, c.cnView(p, e))
		}
	}
	return out
}
