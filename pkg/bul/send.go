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
func (c *machine) transmit(now time.Time) {
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

func (c *machine) rateOK(now time.Time) bool {
	oldest := c.sends[c.sendIdx]
	return oldest.IsZero() || now.Sub(oldest) >= time.Second
}

func (c *machine) rateNext() time.Time { return c.sends[c.sendIdx].Add(time.Second) }

func (c *machine) noteSend(now time.Time) {
	c.sends[c.sendIdx] = now
	c.sendIdx = (c.sendIdx + 1) % len(c.sends)
}

// nextSeq returns the next sequence number, reserving a window of them in
// the Store whenever the previous reservation is used up.
func (c *machine) nextSeq() uint16 {
	c.seq++
	if !proto.SeqLess(c.seq, c.seqReserved) {
		c.seqReserved = c.seq + seqWindow
		c.saveSeq()
	}
	return c.seq
}

func (c *machine) saveSeq() {
	st := PersistentState{Sequences: map[string]uint16{c.cfg.HomeAgent.String(): c.seqReserved}}
	if err := c.cfg.Store.Save(st); err != nil {
		c.log.Warn("cannot save BUL sequence numbers", "err", err)
	}
}

func (c *machine) send(t *txn, now time.Time) {
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
func (c *machine) build(t *txn) (int, bool) {
	f := c.from(t)
	if !f.src.IsValid() {
		return 0, false
	}
	p := &c.pkt
	m := &p.MH
	m.Reset()
	*p = proto.Packet{MH: *m, HopLimit: 64}
	m = &p.MH
	m.Type = proto.TypeBU
	m.PayloadProto = proto.ProtoNone
	m.Flags = proto.FlagA | proto.FlagH
	p.Dst = c.cfg.HomeAgent
	p.Src = f.src
	if f.src != c.cfg.HomeAddress {
		p.HomeAddress = c.cfg.HomeAddress
	}
	m.Lifetime = f.lifetime
	m.Options.AltCoA = f.alt
	m.Options.BIDs = bidOptions(t, m.Options.BIDs)
	if r := c.cfg.MobileRouter; r != nil {
		// RFC 3963 5.1: R on every BU to the home agent; the prefixes in
		// explicit mode, only in registrations (a lifetime-0 BU removes
		// every prefix with the binding).
		m.Flags |= proto.FlagR
		if !r.Implicit && f.lifetime > 0 {
			m.Options.Prefixes = append(m.Options.Prefixes, r.Prefixes...)
		}
	}
	if c.cfg.Auth != nil {
		c.cfg.Auth.AddOption(m)
	}
	return f.ifindex, true
}

// buFrom is where a BU leaves from and the lifetime it asks for.
type buFrom struct {
	src      netip.Addr // invalid: nothing to send from
	alt      netip.Addr // the Alternate CoA option, when valid
	ifindex  int        // 0: let routing decide
	lifetime uint16
}

// from chooses the source, interface and lifetime of t's BU.
func (c *machine) from(t *txn) buFrom {
	switch t.kind {
	case txHome:
		// RFC 6275 11.5.4: the care-of address is the home address and
		// the BU's source is the home address, so no Home Address
		// option; no BID: every binding goes (draft 3.3).
		return buFrom{src: c.cfg.HomeAddress, ifindex: c.homeIfindex}
	case txDeregAll:
		return c.fromBest(0)
	case txSingle, txIndividual:
		e := t.items[0]
		if !e.in.remove {
			return buFrom{src: e.in.coa, ifindex: e.ifindex, lifetime: c.lifeUnits}
		}
		if t.kind == txSingle {
			return c.fromBest(0)
		}
		if co := c.careOf(e.bid); co != nil && !co.HomeLink && co.Addr == e.in.coa && !c.down[e.bid] {
			return buFrom{src: co.Addr, ifindex: co.Ifindex}
		}
		// The CoA is gone, on the home link, or its path is dead:
		// de-register it through another one with the Alternate CoA
		// option (draft 5.5, 5.6).
		f := c.fromBest(0)
		f.alt = e.in.coa
		return f
	}
	// txBulk: a bulk BU that registers nothing removes with lifetime 0.
	if !t.registers() {
		return c.fromBest(0)
	}
	return c.fromBest(c.lifeUnits)
}

// fromBest sends from the best care-of address there is.
func (c *machine) fromBest(lifetime uint16) buFrom {
	co := c.bestSendable()
	if co == nil {
		return buFrom{}
	}
	return buFrom{src: co.Addr, ifindex: co.Ifindex, lifetime: lifetime}
}

// registers reports whether t registers any binding.
func (t *txn) registers() bool {
	return slices.ContainsFunc(t.items, func(e *entry) bool { return !e.in.remove })
}

// bidOptions appends t's BID sub-options to out: one without flags for a
// single binding (draft 5.2, 5.4), one with C per binding in bulk (5.3).
func bidOptions(t *txn, out []proto.BID) []proto.BID {
	switch t.kind {
	case txIndividual:
		e := t.items[0]
		b := proto.BID{ID: e.bid}
		if !e.in.remove {
			b.PrioStatus = e.in.prio
		}
		out = append(out, b)
	case txBulk:
		reg := t.registers()
		for _, e := range t.items {
			b := proto.BID{ID: e.bid, C: true, CoA: e.in.coa}
			if e.in.remove {
				// With lifetime 0 every listed binding goes (draft 5.4);
				// otherwise R marks the ones to remove (5.3).
				b.R = reg
			} else {
				b.PrioStatus = e.in.prio
			}
			out = append(out, b)
		}
	}
	return out
}

// nextDeadline is the earliest time after now at which tick has work.
func (c *machine) nextDeadline(now time.Time) time.Time {
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
