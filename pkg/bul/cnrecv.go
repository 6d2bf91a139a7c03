package bul

import (
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// cnInbound handles a HoT, CoT, BA, BRR or BE from a correspondent.
func (c *machine) cnInbound(p *cnPeer, in *inbound, now time.Time) {
	q := in.pkt
	switch in.typ {
	case proto.TypeHoT:
		c.cn.mn.HandleHoT(q)
	case proto.TypeCoT:
		c.cn.mn.HandleCoT(q)
	case proto.TypeBA:
		c.cnBA(p, in, now)
	case proto.TypeBRR:
		c.counters.BRRs++
		hit := false
		for _, e := range p.ents {
			if e.want == wantRegister && (len(in.bids) == 0 || findBID(in.bids, e.bid) != nil) {
				e.force, hit = true, true
			}
		}
		if !hit {
			c.counters.BRRsIgnored++
		}
	case proto.TypeBE:
		c.counters.BEs++
		switch {
		case in.beHoA.IsValid() && in.beHoA != c.cfg.HomeAddress:
			c.counters.BEsIgnored++
		case in.status == proto.BEUnknownType:
			c.cnSingle(p, "binding error: unrecognized MH type", now)
		case in.status == proto.BEUnknownHAO:
			for _, e := range p.ents {
				if e.want == wantRegister {
					e.force = true
				}
			}
		default:
			c.counters.BEsIgnored++
		}
	default:
		c.ignoreBA(IgnoreUnexpected)
	}
}

func (c *machine) cnBA(p *cnPeer, in *inbound, now time.Time) {
	if in.rh.IsValid() && in.rh != c.cfg.HomeAddress {
		c.ignoreBA(IgnoreWrongDest)
		return
	}
	if in.badBID {
		c.ignoreBA(IgnoreMalformedBID)
		return
	}
	var e *cnEntry
	var s sentSeq
	for _, x := range p.ents {
		if ss, ok := x.findSeq(in.seq); ok && x.inflight {
			e, s = x, ss
			break
		}
	}
	if e == nil {
		c.ignoreBA(IgnoreUnknownSeq)
		return
	}
	if in.dst != s.src {
		c.ignoreBA(IgnoreWrongDest)
		return
	}
	if err := c.cn.mn.VerifyBA(in.pkt); err != nil {
		c.ignoreBA(IgnoreAuth)
		return
	}
	for _, b := range in.bids {
		if b.ID != e.bid {
			c.ignoreBA(IgnoreUnknownBID)
			return
		}
	}
	c.counters.BAsAccepted++
	st := in.status
	e.lastStatus = int(st)
	if b := findBID(in.bids, e.bid); b != nil && b.PrioStatus >= 128 && e.bid != 0 {
		st = proto.Status(b.PrioStatus)
	}
	switch {
	case st == proto.StatusSequenceOutOfWindow:
		p.seq = in.seq
		e.deadline = now // resend at once with a new number
		return
	case st >= proto.StatusExpiredHomeNonce && st <= proto.StatusExpiredNonces:
		// Return routability again (RFC 6275 11.7.3).
		c.cn.mn.Rejected(p.addr, s.src, st)
		e.clearTx()
		e.force, e.lastErr = true, "rejected: "+st.String()+"; return routability again"
		return
	}
	if e.inRemove {
		e.clearTx()
		c.cnDelete(p, e, "de-registered", now)
		return
	}
	if st.Accepted() && e.bid != 0 && len(in.bids) == 0 {
		c.cnSingle(p, "the correspondent answered without BID sub-option", now)
		// Its binding is now this BU's (RFC 6275): keep it as the single one.
		if f := p.find(0); f == nil {
			f = &cnEntry{bid: 0, progress: progress{lastStatus: int(st)}, want: wantRegister, coa: s.src, iface: e.iface, ifindex: e.ifindex, prio: e.prio}
			c.cnRegistered(f, s, in, st)
			p.ents = append([]*cnEntry{f}, p.ents...)
		}
		return
	}
	e.clearTx()
	if !st.Accepted() || in.lifetime == 0 {
		e.failed, e.lastErr, e.force = true, "rejected: "+st.String(), true
		e.backoff = max(initialTimeout, min(2*e.backoff, maxTimeout))
		e.notBefore = now.Add(e.backoff)
		return
	}
	c.cnRegistered(e, s, in, st)
}

func (c *machine) cnRegistered(e *cnEntry, s sentSeq, in *inbound, st proto.Status) {
	granted := min(time.Duration(in.lifetime)*proto.LifetimeUnitSeconds*time.Second, c.cnLifetime())
	e.registered, e.regCoA, e.granted = true, e.coa, granted
	e.expires = s.at.Add(granted)
	refresh := granted * refreshNum / refreshDen
	if in.hasRefresh && in.refresh > 0 {
		refresh = min(refresh, time.Duration(in.refresh)*proto.LifetimeUnitSeconds*time.Second)
	}
	e.refreshAt = s.at.Add(refresh)
	e.failed, e.backoff, e.notBefore, e.lastErr = false, 0, time.Time{}, ""
	e.lastStatus = int(st)
}

// cnSingle switches p to one binding without BID (RFC 6275).
func (c *machine) cnSingle(p *cnPeer, reason string, now time.Time) {
	if p.single {
		return
	}
	p.single = true
	c.log.Warn("correspondent does not support multiple care-of addresses; one binding", "cn", p.addr, "reason", reason)
	for i := len(p.ents) - 1; i >= 0; i-- {
		if p.ents[i].bid != 0 {
			c.cnDelete(p, p.ents[i], reason, now)
		}
	}
}
