package bul

import (
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
	"github.com/mcoad/mcoad/pkg/rr"
)

// cnPump reconciles the correspondents' entries and sends what is due:
// HoTI/CoTI first, then BUs once the tokens are there.
func (c *machine) cnPump(now time.Time) {
	if c.cn == nil {
		return
	}
	c.cn.mn.Expire(now)
	c.cnReconcile(now)
	if c.cn.noPlane {
		return
	}
	for _, p := range c.cn.peers {
		for _, e := range p.ents {
			if e.registered && !now.Before(e.expires) {
				e.registered, e.granted = false, 0
			}
			c.cnStep(p, e, now)
		}
		c.cnPrefetch(p, now)
	}
}

// cnPrefetch starts the care-of test of each usable CoA that the home agent
// does not hold yet, while the home address is registered through another:
// the correspondent BU waits for the home binding of its CoA, but its
// care-of keygen token is then already there, one round trip sooner.
func (c *machine) cnPrefetch(p *cnPeer, now time.Time) {
	if p.single || c.atHome || c.allDown || c.cn.noPlane || !c.bestTunnel().usable() {
		return
	}
	for i := range c.careofs {
		co := &c.careofs[i]
		if !c.usable(co) || c.haRegistered(co.Addr) != nil {
			continue
		}
		if e := p.find(co.BID); e != nil && e.coa == co.Addr {
			continue // its entry asks for the tokens itself
		}
		c.cnNeed(p, co.Addr)
	}
}

// cnNeedsBU reports whether e needs a new BU (retransmissions aside).
func (c *machine) cnNeedsBU(e *cnEntry, now time.Time) bool {
	if now.Before(e.notBefore) {
		return false
	}
	if e.inflight {
		return e.inRemove != (e.want == wantRemove)
	}
	if e.want == wantRemove {
		return true
	}
	return e.force || !e.registered || e.regCoA != e.coa || !now.Before(e.refreshAt)
}

func (c *machine) cnStep(p *cnPeer, e *cnEntry, now time.Time) {
	newBU := c.cnNeedsBU(e, now)
	resend := e.inflight && !newBU && !now.Before(e.deadline)
	if !newBU && !resend {
		// Keep the tokens fresh while registered, so a refresh never
		// waits for return routability.
		if e.want == wantRegister && e.registered {
			c.cnNeed(p, e.coa)
		}
		return
	}
	src, ifindex := e.coa, e.ifindex
	if e.want == wantRemove {
		if co := c.bestSendable(); co != nil {
			src, ifindex = co.Addr, co.Ifindex
			if cur := c.careOf(e.bid); cur != nil && !cur.HomeLink && cur.Addr == e.regCoA {
				src, ifindex = cur.Addr, cur.Ifindex
			}
		} else {
			return // nothing to send from; it expires at the peer
		}
		if _, ok := c.cn.mn.ReadyDereg(p.addr, src); !ok {
			c.cnNeed(p, netip.Addr{})
			return
		}
	} else {
		c.cnNeed(p, e.coa)
		if _, ok := c.cn.mn.Ready(p.addr, e.coa); !ok {
			return
		}
	}
	if !c.cnRateOK(p, now) {
		return
	}
	if newBU {
		e.clearTx()
		e.inflight, e.inRemove, e.force = true, e.want == wantRemove, false
		e.inCoA = e.coa
		if e.inRemove {
			e.inCoA = e.regCoA
		}
		e.timeout = initialTimeout
	} else {
		e.timeout = min(2*e.timeout, maxTimeout)
		e.retransmits++
		c.counters.Retransmissions++
	}
	p.seq++
	life := c.cnLifetime()
	if e.inRemove {
		life = 0
	}
	pkt, sign, err := c.cn.mn.BU(rr.BUParams{CN: p.addr, CoA: src, BID: e.bid, Priority: e.prio, Sequence: p.seq, Lifetime: life})
	if err != nil {
		return
	}
	pkt.HopLimit = 64
	e.sent[e.nsent%len(e.sent)] = sentSeq{seq: p.seq, at: now, src: src}
	e.nsent++
	e.seq = p.seq
	e.deadline = now.Add(e.timeout)
	if !e.inRemove {
		e.everSent, e.sentAt = true, now
	}
	p.sends[p.sendIx] = now
	p.sendIx = (p.sendIx + 1) % len(p.sends)
	c.counters.BUsSent++
	c.cnSend(ifindex, &pkt, sign)
}

func (c *machine) cnRateOK(p *cnPeer, now time.Time) bool {
	o := p.sends[p.sendIx]
	return o.IsZero() || now.Sub(o) >= time.Second
}

// cnNeed sends the HoTI/CoTI due for a registration through coa (coa
// invalid: the home test only). The HoTI leaves from the home address
// through the home agent tunnel; while there is none, nothing is sent.
func (c *machine) cnNeed(p *cnPeer, coa netip.Addr) {
	tun := c.bestTunnel()
	if !tun.usable() {
		if _, ok := c.cn.mn.ReadyDereg(p.addr, coa); !ok {
			return // SetTunnels pumps again once there is one
		}
	}
	pkts, err := c.cn.mn.Need(p.addr, coa)
	if err != nil {
		c.log.Warn("return routability", "cn", p.addr, "err", err)
		return
	}
	for i := range pkts {
		q := &pkts[i]
		q.HopLimit = 64
		c.log.Debug("return routability init", "type", q.MH.Type, "src", q.Src, "cn", q.Dst, "tunnel", tun)
		if q.MH.Type == proto.TypeHoTI {
			if !tun.usable() {
				continue // retransmitted later
			}
			c.cnSendInto(tun, q)
			continue
		}
		ifindex := 0
		if co := c.careOfByAddr(q.Src); co != nil {
			ifindex = co.Ifindex
		}
		c.cnSend(ifindex, q, nil)
	}
}

func (c *machine) careOfByAddr(a netip.Addr) *CareOf {
	for i := range c.careofs {
		if c.careofs[i].Addr == a {
			return &c.careofs[i]
		}
	}
	return nil
}

// cnSendInto sends p (a HoTI) into the home agent tunnel tun: through its
// device, or with its mark when it has none.
func (c *machine) cnSendInto(tun Tunnel, p *proto.Packet) {
	ms, ok := c.cfg.Transport.(MarkSender)
	if tun.Ifindex > 0 || !ok {
		c.cnSend(tun.Ifindex, p, nil)
		return
	}
	if err := ms.SendMarked(tun.Mark, p, nil); err != nil {
		c.counters.SendErrors++
		c.log.Debug("sending to correspondent failed", "type", p.MH.Type, "dst", p.Dst, "err", err)
	}
}

func (c *machine) cnSend(ifindex int, p *proto.Packet, sign proto.Signer) {
	var err error
	if is, ok := c.cfg.Transport.(InterfaceSender); ok && ifindex > 0 {
		err = is.SendOn(ifindex, p, sign)
	} else {
		err = c.cfg.Transport.Send(p, sign)
	}
	if err != nil {
		c.counters.SendErrors++
		c.log.Debug("sending to correspondent failed", "type", p.MH.Type, "dst", p.Dst, "err", err)
	}
}
