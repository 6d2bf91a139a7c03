package bul

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

func (c *machine) handleInbound(in *inbound, now time.Time) {
	if p := c.cnPeer(in.src); p != nil && in.pkt != nil && in.src != c.cfg.HomeAgent {
		c.cnInbound(p, in, now)
		c.pump(now)
		return
	}
	switch in.typ {
	case proto.TypeBA:
		c.handleBA(in, now)
	case proto.TypeBRR:
		c.handleBRR(in, now)
	case proto.TypeBE:
		c.handleBE(in, now)
	default:
		c.ignoreBA(IgnoreUnexpected)
	}
	c.pump(now)
}

func (c *machine) ignoreBA(reason string) { c.counters.BAsIgnored[reason]++ }

// handleBA validates a Binding Acknowledgement as RFC 6275 11.7.3 and the
// draft's 5.7 say: from the home agent, to us, authenticated, for a BU in
// flight, naming only BIDs that BU carried. Anything else is ignored.
func (c *machine) handleBA(in *inbound, now time.Time) {
	if in.src != c.cfg.HomeAgent {
		c.ignoreBA(IgnoreWrongSource)
		return
	}
	if in.rh.IsValid() && in.rh != c.cfg.HomeAddress {
		c.ignoreBA(IgnoreWrongDest)
		return
	}
	if in.authErr != nil {
		c.ignoreBA(IgnoreAuth)
		return
	}
	if in.badBID {
		c.ignoreBA(IgnoreMalformedBID)
		return
	}
	if in.status == proto.StatusSequenceOutOfWindow {
		// The BA carries the peer's last accepted sequence number, which
		// matches none of ours (RFC 6275 11.7.3): take it and resend.
		if !c.sentFrom(in.dst) || (!in.rh.IsValid() && in.dst != c.cfg.HomeAddress) {
			c.ignoreBA(IgnoreUnknownSeq)
			return
		}
		c.counters.SeqResyncs++
		c.seq = in.seq
		c.seqReserved = in.seq // persist the new numbers with the next BU
		for _, t := range c.txs {
			t.resend, t.deadline = true, now
			for _, e := range t.items {
				e.lastStatus = int(in.status)
			}
		}
		c.log.Info("sequence number out of window; resynchronised", "peer_seq", in.seq)
		return
	}
	var t *txn
	var s sentSeq
	for _, x := range c.txs {
		if ss, ok := x.find(in.seq); ok {
			t, s = x, ss
			break
		}
	}
	if t == nil {
		c.ignoreBA(IgnoreUnknownSeq)
		return
	}
	// The BA goes to the BU's source: a CoA with a type 2 routing header
	// carrying the home address, or the home address itself from home.
	if in.dst != s.src || (!in.rh.IsValid() && in.dst != c.cfg.HomeAddress) {
		c.ignoreBA(IgnoreWrongDest)
		return
	}
	for _, b := range in.bids {
		if !t.hasBID(b.ID) {
			c.ignoreBA(IgnoreUnknownBID)
			return
		}
	}
	c.counters.BAsAccepted++
	c.applyBA(t, s, in, now)
}

// sentFrom reports whether a BU in flight was sent from addr.
func (c *machine) sentFrom(addr netip.Addr) bool {
	for _, t := range c.txs {
		n := min(t.nsent, len(t.sent))
		for i := range n {
			if t.sent[i].src == addr {
				return true
			}
		}
	}
	return false
}

func (c *machine) applyBA(t *txn, s sentSeq, in *inbound, now time.Time) {
	st := in.status
	if c.cfg.MobileRouter != nil {
		c.nemoBA(t, in)
	}
	withBIDs := t.kind == txIndividual || t.kind == txBulk
	items := t.items
	switch {
	case withBIDs && st == c.prof.StatusBulkNotSupported && c.mode == ModeBulk:
		// Draft 6.2: the peer does not do bulk registration. Send the
		// same bindings one by one.
		c.dropTx(t)
		for _, e := range items {
			e.lastStatus, e.force = int(st), true
		}
		c.setMode(ModeIndividual, "bulk registration not supported (status "+strconv.Itoa(int(st))+")", now)
	case withBIDs && len(in.bids) == 0 && st.Accepted():
		// Draft 5.7: a BA without BID sub-option means the peer does not
		// know MCoA: register only the primary CoA, as RFC 6275 does.
		c.fallbackSingle("the home agent answered without BID sub-option", now)
	case t.kind == txHome || t.kind == txDeregAll:
		c.allStatus = int(st)
		// 133 to a de-registration: the home agent holds no binding for
		// us, which is what we wanted.
		if !st.Accepted() && st != proto.StatusNotHomeAgentForMN {
			c.log.Warn("home agent rejected the de-registration; retrying", "status", st)
			return // retransmitted with back-off
		}
		c.dropTx(t)
		for i := len(c.ents) - 1; i >= 0; i-- {
			c.deleteEntry(c.ents[i], "de-registered", now)
		}
		if t.kind == txHome {
			c.homeDone = true
			c.emitHome(now)
		} else {
			c.allDownDone = true
		}
	default:
		c.dropTx(t)
		if st == c.prof.StatusMCoAConflict {
			// Draft 5.7: the home agent replaced our regular binding with
			// this one. It is registered; we never send a BU without BID
			// while using BIDs.
			c.conflict = true
		}
		for _, e := range items {
			es, ok := st, st.Accepted() || st == c.prof.StatusMCoAConflict
			if b := findBID(in.bids, e.bid); b != nil {
				if ps := proto.Status(b.PrioStatus); ps >= 128 || st == c.prof.StatusBulkRegFail {
					es, ok = ps, ps < 128
				}
			} else if st == c.prof.StatusBulkRegFail {
				ok = false // no per-BID status: count it as failed
			}
			if e.in.remove && (ok || es == proto.StatusNotHomeAgentForMN) {
				c.deleteEntry(e, "de-registered", now)
				continue
			}
			if ok {
				c.bindingOK(e, s.at, in, st, now)
			} else {
				c.bindingFailed(e, es, "", now)
			}
		}
	}
}

// isNEMOStatus reports the RFC 3963 rejections (section 4.2).
func isNEMOStatus(st proto.Status) bool {
	return st >= proto.StatusMRNotAuthorized && st <= proto.StatusForwardingSetupFailed
}

// nemoBA records what a BA says about NEMO support (RFC 3963 5.3).
func (c *machine) nemoBA(t *txn, in *inbound) {
	nemo := proto.Status(0)
	if isNEMOStatus(in.status) {
		nemo = in.status
	}
	for _, b := range in.bids {
		if ps := proto.Status(b.PrioStatus); isNEMOStatus(ps) {
			nemo = ps
		}
	}
	switch {
	case nemo != 0:
		c.nemoStatus, c.nemoLastErr = int(nemo), "home agent rejected the mobile router: "+nemo.String()
		c.log.Warn("home agent rejected the mobile router registration", "status", nemo)
	case in.status.Accepted() && in.lifetime > 0 && t.kind != txHome && t.kind != txDeregAll:
		if !in.flagR {
			if !c.nemoNoR {
				c.log.Warn("home agent acknowledged a mobile router BU without the R flag: it does not support NEMO; the mobile network prefixes are not routed")
			}
			c.nemoNoR = true
			c.nemoStatus, c.nemoLastErr = 0, "home agent does not support NEMO (BA without R flag)"
			return
		}
		c.nemoNoR, c.nemoStatus, c.nemoLastErr = false, 0, ""
	}
}

func findBID(bids []proto.BID, id uint16) *proto.BID {
	for i := range bids {
		if bids[i].ID == id {
			return &bids[i]
		}
	}
	return nil
}

func (c *machine) bindingOK(e *entry, sentAt time.Time, in *inbound, st proto.Status, now time.Time) {
	granted := min(time.Duration(in.lifetime)*proto.LifetimeUnitSeconds*time.Second, c.cfg.Lifetime)
	if granted == 0 {
		c.bindingFailed(e, st, "the peer granted lifetime 0", now)
		return
	}
	e.registered = true
	e.regCoA, e.regPrio, e.granted = e.in.coa, e.in.prio, granted
	// RFC 6275 11.7.3: the lifetime runs from when the BU was sent.
	e.expires = sentAt.Add(granted)
	refresh := granted * refreshNum / refreshDen
	if in.hasRefresh && in.refresh > 0 {
		if adv := time.Duration(in.refresh) * proto.LifetimeUnitSeconds * time.Second; adv < refresh {
			refresh = adv
		}
	}
	e.refreshAt = sentAt.Add(refresh)
	e.failed, e.backoff, e.notBefore = false, 0, time.Time{}
	e.lastStatus, e.lastErr = int(st), ""
}

// bindingFailed records a rejection and schedules a retry with back-off.
func (c *machine) bindingFailed(e *entry, st proto.Status, why string, now time.Time) {
	if why == "" {
		why = "rejected: " + st.String()
	}
	e.failed = true
	e.lastStatus, e.lastErr = int(st), why
	e.force = true
	switch {
	case c.cfg.MobileRouter != nil && isNEMOStatus(st) && st != proto.StatusForwardingSetupFailed:
		// RFC 3963 6.6: 140-142 are configuration problems on either
		// side: nothing changes in a second, so retry at the slowest rate.
		e.backoff = maxTimeout
	case e.backoff == 0:
		e.backoff = initialTimeout
	default:
		e.backoff = min(2*e.backoff, maxTimeout)
	}
	e.notBefore = now.Add(e.backoff)
	c.log.Info("binding rejected", "bid", e.bid, "status", st, "retry_in", e.backoff)
}

func (c *machine) fallbackSingle(reason string, now time.Time) {
	if c.mode == ModeSingle {
		return
	}
	for i := len(c.txs) - 1; i >= 0; i-- {
		if k := c.txs[i].kind; k == txIndividual || k == txBulk {
			c.dropTx(c.txs[i])
		}
	}
	for i := len(c.ents) - 1; i >= 0; i-- {
		if c.ents[i].bid != 0 {
			c.deleteEntry(c.ents[i], "peer does not support multiple care-of addresses", now)
		}
	}
	c.setMode(ModeSingle, reason, now)
}

func (c *machine) setMode(m Mode, reason string, now time.Time) {
	if c.mode == m {
		return
	}
	c.mode, c.fallback = m, reason
	if reason != "" {
		c.log.Warn("registration mode changed", "mode", m, "reason", reason)
	}
	c.emit(Event{Time: now, Type: EventMode, Mode: m, Detail: reason, AtHome: c.atHome, HomeAddressUsable: c.homeUsable()})
}

// handleBRR: draft 5.8. With a BID only that binding is refreshed, without
// one every binding in the list.
func (c *machine) handleBRR(in *inbound, now time.Time) {
	c.counters.BRRs++
	if in.src != c.cfg.HomeAgent {
		c.counters.BRRsIgnored++
		return
	}
	if c.atHome || c.allDown {
		c.counters.BRRsIgnored++
		return
	}
	if len(in.bids) > 0 && c.mode != ModeSingle {
		hit := false
		for _, b := range in.bids {
			if e := c.find(b.ID); e != nil && e.want == wantRegister {
				e.force, hit = true, true
			}
		}
		if !hit {
			c.counters.BRRsIgnored++
		}
		return
	}
	for _, e := range c.ents {
		if e.want == wantRegister {
			e.force = true
		}
	}
}

// handleBE: draft 5.9 and RFC 6275 11.3.6.
func (c *machine) handleBE(in *inbound, now time.Time) {
	c.counters.BEs++
	if in.src != c.cfg.HomeAgent || (in.beHoA.IsValid() && in.beHoA != c.cfg.HomeAddress) {
		c.counters.BEsIgnored++
		return
	}
	switch in.status {
	case proto.BEUnknownType:
		if c.mode != ModeSingle {
			c.fallbackSingle("binding error: unrecognized MH type", now)
		}
	case proto.BEUnknownHAO:
		// The peer lost our binding: register again (just the BID named,
		// if one is).
		for _, e := range c.ents {
			if e.want == wantRegister && (len(in.bids) == 0 || findBID(in.bids, e.bid) != nil) {
				e.force = true
			}
		}
	default:
		c.counters.BEsIgnored++
	}
}

// inbound is the part of a received packet the engine keeps (a copy: the
// caller reuses its Packet).
type inbound struct {
	typ        proto.MHType
	src, dst   netip.Addr
	rh         netip.Addr
	seq        uint16
	lifetime   uint16
	status     proto.Status
	hasRefresh bool
	refresh    uint16
	flagR      bool // BA: NEMO R flag (RFC 3963 4.2)
	bids       []proto.BID
	badBID     bool
	beHoA      netip.Addr
	authErr    error
	// pkt is a copy of a packet from a correspondent, for pkg/rr.
	pkt *proto.Packet
}

func newInbound(p *proto.Packet, auth Auth, peer netip.Addr, cns []netip.Addr) *inbound {
	in := &inbound{
		typ:      p.MH.Type,
		src:      p.Src,
		dst:      p.Dst,
		rh:       p.RoutingHome,
		seq:      p.MH.Sequence,
		lifetime: p.MH.Lifetime,
		status:   p.MH.Status,
		beHoA:    p.MH.BEHomeAddress,
	}
	in.hasRefresh, in.refresh = p.MH.Options.HasRefreshAdvice, p.MH.Options.RefreshInterval
	in.flagR = p.MH.Type == proto.TypeBA && p.MH.Flags&proto.BAFlagR != 0
	if n := len(p.MH.Options.BIDs); n > 0 {
		in.bids = make([]proto.BID, n)
		copy(in.bids, p.MH.Options.BIDs)
		for _, b := range in.bids {
			if b.Err != nil {
				in.badBID = true
			}
		}
	}
	// Only BAs from the peer are worth an HMAC; others are dropped anyway.
	if p.MH.Type == proto.TypeBA && auth != nil && p.Src == peer {
		in.authErr = auth.Verify(p)
	}
	if p.Src != peer && slices.Contains(cns, p.Src) {
		q := *p
		q.MH.Options.BIDs = slices.Clone(p.MH.Options.BIDs)
		q.MHBytes = slices.Clone(p.MHBytes)
		in.pkt = &q
	}
	return in
}

// machine is the deterministic Binding Update List engine: every method takes
// the current time, calls the transport, and leaves deadlines for
