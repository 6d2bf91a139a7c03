package bul

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// transmit sends every transaction that is due, within MAX_UPDATE_RATE.
// What cannot be sent now stays due: the state is level-triggered, so
// nothing is lost, only delayed.
func (c *core) transmit(now time.Time) {
	c.rateBlocked = false
	// Earliest deadline first, so that retransmissions cannot starve a BU
	// that has waited longer for the rate limit. Blocked transactions are
	// tried once per pump (a new CoA may have unblocked them).
	tried := c.tried[:0]
	for {
		var t *txn
		for _, x := range c.txs {
			if (x.blocked || !now.Before(x.deadline)) && !slices.Contains(tried, x) && (t == nil || x.deadline.Before(t.deadline)) {
				t = x
			}
		}
		if t == nil {
			break
		}
		if !c.rateOK(now) {
			c.rateBlocked = true
			break
		}
		tried = append(tried, t)
		c.send(t, now)
	}
	clear(tried)
	c.tried = tried[:0]
}

func (c *core) rateOK(now time.Time) bool {
	oldest := c.sends[c.sendIdx]
	return oldest.IsZero() || now.Sub(oldest) >= time.Second
}

func (c *core) rateNext() time.Time { return c.sends[c.sendIdx].Add(time.Second) }

func (c *core) noteSend(now time.Time) {
	c.sends[c.sendIdx] = now
	c.sendIdx = (c.sendIdx + 1) % len(c.sends)
}

// nextSeq returns the next sequence number, reserving a window of them in
// the Store whenever the previous reservation is used up.
func (c *core) nextSeq() uint16 {
	c.seq++
	if !proto.SeqLess(c.seq, c.seqReserved) {
		c.seqReserved = c.seq + seqWindow
		c.saveSeq()
	}
	return c.seq
}

func (c *core) saveSeq() {
	st := PersistentState{Sequences: map[string]uint16{c.cfg.HomeAgent.String(): c.seqReserved}}
	if err := c.cfg.Store.Save(st); err != nil {
		c.log.Warn("cannot save BUL sequence numbers", "err", err)
	}
}

func (c *core) send(t *txn, now time.Time) {
	ifindex, ok := c.build(t)
	if !ok {
		t.blocked = true
		for _, e := range t.items {
			e.lastErr = "no care-of address to send from"
		}
		return
	}
	t.blocked = false
	seq := c.nextSeq()
	c.pkt.MH.Sequence = seq
	switch {
	case t.nsent == 0:
		t.timeout = initialTimeout
		if t.first {
			t.timeout = initialTimeoutFirst
		}
	case t.restart:
		t.timeout = initialTimeout
	case t.resend:
		// status 135: same timeout, new sequence number
	default:
		t.timeout = min(2*t.timeout, maxTimeout)
		c.counters.Retransmissions++
		for _, e := range t.items {
			e.retransmits++
		}
	}
	t.resend, t.restart = false, false
	t.record(sentSeq{seq: seq, at: now, src: c.pkt.Src})
	t.deadline = now.Add(t.timeout)
	for _, e := range t.items {
		e.seq = seq
		if !e.in.remove {
			// The peer may hold this registration until lastRegAt plus
			// the lifetime asked for.
			e.everSent, e.lastRegAt, e.lastSentCoA = true, now, e.in.coa
		}
		if e.lastErr == "no care-of address to send from" {
			e.lastErr = ""
		}
	}
	c.noteSend(now)
	c.counters.BUsSent++

	var sign proto.Signer
	if c.cfg.Auth != nil {
		sign = c.cfg.Auth.Signer(&c.pkt)
	}
	var err error
	if is, ok := c.cfg.Transport.(InterfaceSender); ok && ifindex > 0 {
		err = is.SendOn(ifindex, &c.pkt, sign)
	} else {
		err = c.cfg.Transport.Send(&c.pkt, sign)
	}
	if err != nil {
		// Like a lost packet: the retransmission timer covers it.
		c.counters.SendErrors++
		c.log.Debug("sending BU failed", "seq", seq, "src", c.pkt.Src, "err", err)
	}
}

// build fills c.pkt with the BU of t (sequence number aside). It returns
// the outgoing interface (0: let routing decide) and false when there is no
// address to send from.
func (c *core) build(t *txn) (int, bool) {
	p := &c.pkt
	m := &p.MH
	m.Reset()
	*p = proto.Packet{MH: *m, HopLimit: 64}
	m = &p.MH
	m.Type = proto.TypeBU
	m.PayloadProto = proto.ProtoNone
	m.Flags = proto.FlagA | proto.FlagH
	p.Dst = c.cfg.HomeAgent
	lifetime := c.lifeUnits
	var src, alt netip.Addr
	ifindex := 0

	fromBest := func() bool {
		co := c.bestSendable()
		if co == nil {
			return false
		}
		src, ifindex = co.Addr, co.Ifindex
		return true
	}

	switch t.kind {
	case txHome:
		// RFC 6275 11.5.4: the care-of address is the home address and
		// the BU's source is the home address, so no Home Address
		// option; no BID: every binding goes (draft 3.3).
		src, ifindex, lifetime = c.cfg.HomeAddress, c.homeIfindex, 0
	case txDeregAll:
		if !fromBest() {
			return 0, false
		}
		lifetime = 0
	case txSingle:
		e := t.items[0]
		if e.in.remove {
			if !fromBest() {
				return 0, false
			}
			lifetime = 0
		} else {
			src, ifindex = e.in.coa, e.ifindex
		}
	case txIndividual:
		e := t.items[0]
		b := proto.BID{ID: e.bid}
		if !e.in.remove {
			src, ifindex = e.in.coa, e.ifindex
			b.PrioStatus = e.in.prio
		} else {
			lifetime = 0
			if co := c.careOf(e.bid); co != nil && !co.HomeLink && co.Addr == e.in.coa && !c.down[e.bid] {
				src, ifindex = co.Addr, co.Ifindex
			} else {
				// The CoA is gone, on the home link, or its path is
				// dead: de-register it through another one with the
				// Alternate CoA option (draft 5.5, 5.6).
				if !fromBest() {
					return 0, false
				}
				alt = e.in.coa
			}
		}
		m.Options.BIDs = append(m.Options.BIDs, b)
	case txBulk:
		if !fromBest() {
			return 0, false
		}
		anyReg := false
		for _, e := range t.items {
			if !e.in.remove {
				anyReg = true
				break
			}
		}
		if !anyReg {
			lifetime = 0
		}
		for _, e := range t.items {
			b := proto.BID{ID: e.bid, C: true, CoA: e.in.coa}
			if e.in.remove {
				// With lifetime 0 every listed binding goes (draft 5.4);
				// otherwise R marks the ones to remove (5.3).
				b.R = anyReg
			} else {
				b.PrioStatus = e.in.prio
			}
			m.Options.BIDs = append(m.Options.BIDs, b)
		}
	}
	if !src.IsValid() {
		return 0, false
	}
	p.Src = src
	if src != c.cfg.HomeAddress {
		p.HomeAddress = c.cfg.HomeAddress
	}
	m.Lifetime = lifetime
	m.Options.AltCoA = alt
	if r := c.cfg.MobileRouter; r != nil {
		// RFC 3963 5.1: R on every BU to the home agent; the prefixes in
		// explicit mode, only in registrations (a lifetime-0 BU removes
		// every prefix with the binding).
		m.Flags |= proto.FlagR
		if !r.Implicit && lifetime > 0 {
			m.Options.Prefixes = append(m.Options.Prefixes, r.Prefixes...)
		}
	}
	if c.cfg.Auth != nil {
		c.cfg.Auth.AddOption(m)
	}
	return ifindex, true
}

// nextDeadline is the earliest time after now at which tick has work.
func (c *core) nextDeadline(now time.Time) time.Time {
	var d time.Time
	consider := func(t time.Time) {
		if t.After(now) && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	for _, t := range c.txs {
		if !t.blocked {
			consider(t.deadline)
		}
	}
	if c.rateBlocked {
		consider(c.rateNext())
	}
	for _, e := range c.ents {
		if e.registered {
			consider(e.expires)
			if e.want == wantRegister && e.tx == nil {
				consider(e.refreshAt)
			}
		}
		consider(e.notBefore)
		if e.want == wantRemove {
			consider(c.maxExpiry(e))
		}
	}
	c.cnDeadline(now, consider)
	return d
}
