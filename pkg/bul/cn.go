package bul

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
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

func (e *cnEntry) state() State {
	switch {
	case e.want == wantRemove:
		return StateDeregistering
	case e.failed:
		return StateFailed
	case e.registered && e.inflight:
		return StateRefreshing
	case e.registered:
		return StateRegistered
	}
	return StatePending
}

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
	// wait: the home agent tunnel was missing; look again then.
	wait time.Time
}

func (p *cnPeer) find(bid uint16) *cnEntry {
	for _, e := range p.ents {
		if e.bid == bid {
			return e
		}
	}
	return nil
}

// cnState is the correspondent side of the core.
type cnState struct {
	mn      *rr.MN
	peers   []*cnPeer
	noPlane bool // logged once: no HA tunnel, no return routability
}

// tunnelRecheck is how often a correspondent waiting for the home agent
// tunnel (created by the data plane after the home registration) looks again.
const tunnelRecheck = 10 * time.Millisecond

func newCNState(c *core) *cnState {
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
	if c.cfg.HomeTunnel == nil {
		c.log.Warn("no data plane: return routability cannot run; correspondents are not registered", "correspondents", len(s.peers))
		s.noPlane = true
	}
	return s
}

func (c *core) cnPeer(a netip.Addr) *cnPeer {
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

func (c *core) cnLifetime() time.Duration { return min(c.cfg.Lifetime, rr.MaxRRBindingLifetime) }

// haRegistered returns the registered home binding of co's CoA, if any:
// a correspondent binding goes only through a CoA the home agent holds.
func (c *core) haRegistered(coa netip.Addr) *entry {
	for _, e := range c.ents {
		if e.want == wantRegister && e.registered && e.regCoA == coa {
			return e
		}
	}
	return nil
}

// bestTunnel is the interface of the home agent tunnel that carries
// packets from the home address (0: none yet).
func (c *core) bestTunnel() int {
	if c.cfg.HomeTunnel == nil {
		return 0
	}
	var best *entry
	for _, e := range c.ents {
		if e.want == wantRegister && e.registered && (best == nil || e.regPrio > best.regPrio) {
			best = e
		}
	}
	if best == nil {
		return 0
	}
	bid := best.bid
	if bid == 0 {
		// Single-CoA mode: the tunnel is numbered by the CoA's BID.
		for _, co := range c.careofs {
			if co.Addr == best.regCoA {
				bid = co.BID
			}
		}
	}
	return c.cfg.HomeTunnel(bid)
}

func (c *core) cnReconcile(now time.Time) {
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

func (c *core) cnDelete(p *cnPeer, e *cnEntry, why string, now time.Time) {
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

// cnPump reconciles the correspondents' entries and sends what is due:
// HoTI/CoTI first, then BUs once the tokens are there.
func (c *core) cnPump(now time.Time) {
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
func (c *core) cnPrefetch(p *cnPeer, now time.Time) {
	if p.single || c.atHome || c.allDown || c.cn.noPlane || c.bestTunnel() == 0 {
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
		c.cnNeed(p, co.Addr, now)
	}
}

// cnNeedsBU reports whether e needs a new BU (retransmissions aside).
func (c *core) cnNeedsBU(e *cnEntry, now time.Time) bool {
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

func (c *core) cnStep(p *cnPeer, e *cnEntry, now time.Time) {
	newBU := c.cnNeedsBU(e, now)
	resend := e.inflight && !newBU && !now.Before(e.deadline)
	if !newBU && !resend {
		// Keep the tokens fresh while registered, so a refresh never
		// waits for return routability.
		if e.want == wantRegister && e.registered {
			c.cnNeed(p, e.coa, now)
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
			c.cnNeed(p, netip.Addr{}, now)
			return
		}
	} else {
		c.cnNeed(p, e.coa, now)
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

func (c *core) cnRateOK(p *cnPeer, now time.Time) bool {
	o := p.sends[p.sendIx]
	return o.IsZero() || now.Sub(o) >= time.Second
}

// cnNeed sends the HoTI/CoTI due for a registration through coa (coa
// invalid: the home test only). The HoTI leaves from the home address
// through the home agent tunnel; while there is none, nothing is sent.
func (c *core) cnNeed(p *cnPeer, coa netip.Addr, now time.Time) {
	tun := c.bestTunnel()
	if tun == 0 {
		if _, ok := c.cn.mn.ReadyDereg(p.addr, coa); !ok {
			p.wait = now.Add(tunnelRecheck)
			return
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
			if tun == 0 {
				continue // retransmitted later
			}
			c.cnSend(tun, q, nil)
			continue
		}
		ifindex := 0
		if co := c.careOfByAddr(q.Src); co != nil {
			ifindex = co.Ifindex
		}
		c.cnSend(ifindex, q, nil)
	}
}

func (c *core) careOfByAddr(a netip.Addr) *CareOf {
	for i := range c.careofs {
		if c.careofs[i].Addr == a {
			return &c.careofs[i]
		}
	}
	return nil
}

func (c *core) cnSend(ifindex int, p *proto.Packet, sign proto.Signer) {
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

// cnInbound handles a HoT, CoT, BA, BRR or BE from a correspondent.
func (c *core) cnInbound(p *cnPeer, in *inbound, now time.Time) {
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

func (c *core) cnBA(p *cnPeer, in *inbound, now time.Time) {
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

func (c *core) cnRegistered(e *cnEntry, s sentSeq, in *inbound, st proto.Status) {
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
func (c *core) cnSingle(p *cnPeer, reason string, now time.Time) {
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

// cnDeadline is the earliest time after now at which the correspondents
// have work.
func (c *core) cnDeadline(now time.Time, consider func(time.Time)) {
	if c.cn == nil || c.cn.noPlane {
		return
	}
	consider(c.cn.mn.Expire(now))
	for _, p := range c.cn.peers {
		consider(p.wait)
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
func (c *core) cnSettled() bool {
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

func (c *core) cnReport(now time.Time) {
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

func (c *core) cnView(p *cnPeer, e *cnEntry) Entry {
	v := Entry{
		Peer: p.addr, Role: "cn", BID: e.bid, Interface: e.iface, CoA: e.coa, Priority: e.prio,
		State: e.state(), Sequence: e.seq, LastStatus: e.lastStatus, LastError: e.lastErr, Retransmits: e.retransmits,
	}
	if e.want == wantRemove && e.regCoA.IsValid() {
		v.CoA = e.regCoA
	}
	if e.registered {
		v.Lifetime = int(e.granted / time.Second)
		v.expires = e.expires
	}
	return v
}

func (c *core) cnViews(out []Entry) []Entry {
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
