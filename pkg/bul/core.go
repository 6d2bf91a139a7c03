package bul

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/proto"
)

// want is what reconciliation decided for a binding.
type want uint8

const (
	wantRegister want = iota
	wantRemove
)

// inflight is what the BU in flight says about a binding.
type inflight struct {
	coa    netip.Addr // registered CoA, or for a removal the CoA being removed
	prio   uint8
	remove bool
}

// entry is one Binding Update List entry (peer = the home agent; the BID is
// the key, 0 for the binding without BID of single-CoA mode).
type entry struct {
	bid     uint16
	iface   string
	ifindex int

	// Desired state, set by reconcile.
	want  want
	coa   netip.Addr
	prio  uint8
	force bool // send a BU even if nothing changed (BRR, Register, retry)

	// What the peer acknowledged.
	registered bool
	regCoA     netip.Addr
	regPrio    uint8
	granted    time.Duration
	expires    time.Time
	refreshAt  time.Time

	// The BU in flight, if any.
	tx          *txn
	in          inflight
	everSent    bool // a registration BU was sent
	lastSentCoA netip.Addr
	lastRegAt   time.Time

	progress
}

// progress is what home and correspondent entries alike keep about their
// registration: sequence, outcome, back-off and the state last reported.
type progress struct {
	seq         uint16
	lastStatus  int
	lastErr     string
	failed      bool
	backoff     time.Duration
	notBefore   time.Time
	retransmits int

	reported     State
	reportedLive liveness.State
	reportedSet  bool
}

func (e *entry) state() State {
	switch {
	case e.want == wantRemove:
		return StateDeregistering
	case e.failed:
		return StateFailed
	case e.registered && e.tx != nil:
		return StateRefreshing
	case e.registered:
		return StateRegistered
	}
	return StatePending
}

// oldCoA is the CoA the peer may hold for this binding.
func (e *entry) oldCoA() netip.Addr {
	if e.registered {
		return e.regCoA
	}
	return e.lastSentCoA
}

type txKind uint8

const (
	txIndividual txKind = iota // one BID, no flags (draft 5.2, 5.4)
	txBulk                     // C-flag BID sub-options (draft 5.3)
	txSingle                   // no BID (RFC 6275): single-CoA mode
	txDeregAll                 // no BID, lifetime 0, from a foreign CoA
	txHome                     // no BID, lifetime 0, from the home link (RFC 6275 11.5.4)
)

type sentSeq struct {
	seq uint16
	at  time.Time
	src netip.Addr
}

// txn is one BU transaction: the same content resent (with a new sequence
// number each time, RFC 6275 11.8) until a BA settles it.
type txn struct {
	kind     txKind
	items    []*entry
	sent     [4]sentSeq // the latest transmissions, ring
	nsent    int
	timeout  time.Duration
	deadline time.Time
	blocked  bool // nothing to send from
	resend   bool // status 135: resend at once without back-off
	restart  bool // Refresh: resend at once, back-off from the start
	first    bool // first registration with the HA
}

func (t *txn) record(s sentSeq) {
	t.sent[t.nsent%len(t.sent)] = s
	t.nsent++
}

func (t *txn) find(seq uint16) (sentSeq, bool) {
	n := min(t.nsent, len(t.sent))
	for i := range n {
		if s := t.sent[i]; s.seq == seq {
			return s, true
		}
	}
	return sentSeq{}, false
}

func (t *txn) hasBID(bid uint16) bool {
	if t.kind != txIndividual && t.kind != txBulk {
		return false
	}
	for _, e := range t.items {
		if e.bid == bid {
			return true
		}
	}
	return false
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

// core is the deterministic Binding Update List engine: every method takes
// the current time, calls the transport, and leaves deadlines for
// nextDeadline. It is owned by one goroutine (Engine.Run) or by a test.
type core struct {
	cfg       Config
	prof      *proto.Profile
	log       *slog.Logger
	lifeUnits uint16

	careofs    []CareOf // sorted by BID
	suppressed map[uint16]bool
	health     map[uint16]liveness.Health
	// down: dead paths withdrawn (another path is not dead); recomputed by
	// reconcile.
	down         map[uint16]bool
	reportedDown map[uint16]bool
	allDown      bool // DeregisterAll / Stop(deregister) until Register
	allDownDone  bool
	allStatus    int // status of the last BA to a no-BID de-registration
	stopping     bool
	stopDereg    bool

	mode     Mode
	fallback string
	conflict bool // a 144 was seen

	// NEMO (RFC 3963), with Config.MobileRouter.
	nemoNoR     bool // an accepting BA came without the R flag
	nemoStatus  int  // last 140-143, 0 none
	nemoLastErr string

	seq, seqReserved uint16
	sends            [maxUpdateRate]time.Time
	sendIdx          int
	rateBlocked      bool

	ents []*entry // sorted by BID
	txs  []*txn

	atHome      bool
	homeDone    bool
	homeIface   string
	homeIfindex int

	cn *cnState // nil without correspondents

	counters Counters
	pkt      proto.Packet
	scratch  []*entry
	tried    []*txn
}

func newCore(cfg Config) *core {
	c := &core{
		cfg:          cfg,
		prof:         cfg.Profile,
		log:          cfg.Logger,
		lifeUnits:    uint16((cfg.Lifetime + proto.LifetimeUnitSeconds*time.Second - 1) / (proto.LifetimeUnitSeconds * time.Second)),
		suppressed:   map[uint16]bool{},
		health:       map[uint16]liveness.Health{},
		down:         map[uint16]bool{},
		reportedDown: map[uint16]bool{},
		mode:         cfg.Mode,
		allStatus:    -1,
	}
	c.counters.BAsIgnored = map[string]uint64{}
	st, err := cfg.Store.Load()
	if err != nil {
		c.log.Warn("cannot load BUL state; starting with a random sequence number", "err", err)
	}
	if s, ok := st.Sequences[cfg.HomeAgent.String()]; ok {
		// The stored value is at or after the last number sent.
		c.seq = s
	} else {
		c.seq = uint16(rand.Uint32())
	}
	c.seqReserved = c.seq // the first BU reserves a new window
	c.cn = newCNState(c)
	return c
}

// ---- inputs ----

func (c *core) setCareOfs(cos []CareOf, now time.Time) {
	c.careofs = append(c.careofs[:0], cos...)
	slices.SortFunc(c.careofs, func(a, b CareOf) int { return int(a.BID) - int(b.BID) })
	c.pump(now)
}

func (c *core) setHealth(hs []liveness.Health, now time.Time) {
	clear(c.health)
	for _, h := range hs {
		c.health[h.BID] = h
	}
	c.pump(now)
}

func (c *core) dead(bid uint16) bool { return c.health[bid].State == liveness.Dead }

// withdraw decides which dead paths give up their bindings: all of them,
// unless no other path is left that is not dead (then nothing better is
// there, and what is registered stays).
func (c *core) withdraw() {
	clear(c.down)
	other := false
	for i := range c.careofs {
		co := &c.careofs[i]
		if !co.HomeLink && !c.suppressed[co.BID] && !c.dead(co.BID) {
			other = true
			break
		}
	}
	if !other {
		return
	}
	for i := range c.careofs {
		if co := &c.careofs[i]; c.dead(co.BID) {
			c.down[co.BID] = true
		}
	}
}

// refresh re-registers every binding that should be registered. A BU
// already in flight (the home agent was down when it left) goes again at
// once, its back-off started anew: the home agent may be back.
func (c *core) refresh(now time.Time) {
	for _, e := range c.ents {
		if e.want == wantRegister && e.tx == nil {
			e.force = true
			e.notBefore, e.backoff = time.Time{}, 0
		}
	}
	for _, t := range c.txs {
		if t.nsent > 0 {
			t.restart, t.deadline = true, now
		}
	}
	c.counters.Refreshes++
	c.pump(now)
}

func (c *core) register(now time.Time) {
	clear(c.suppressed)
	c.allDown, c.allDownDone, c.allStatus = false, false, -1
	if c.mode != c.cfg.Mode {
		c.setMode(c.cfg.Mode, "", now)
	}
	for _, e := range c.ents {
		e.force = true
		e.notBefore = time.Time{}
		e.backoff = 0
	}
	c.pump(now)
}

func (c *core) registerBIDs(bids []uint16, now time.Time) error {
	for _, bid := range bids {
		if c.careOf(bid) == nil && c.find(bid) == nil {
			return unknownBID(bid)
		}
	}
	for _, bid := range bids {
		delete(c.suppressed, bid)
		if e := c.find(bid); e != nil && e.want == wantRegister {
			e.force = true
			e.notBefore, e.backoff = time.Time{}, 0
		}
	}
	c.pump(now)
	return nil
}

func (c *core) deregister(bids []uint16, now time.Time) error {
	for _, bid := range bids {
		if c.careOf(bid) == nil && c.find(bid) == nil {
			return unknownBID(bid)
		}
	}
	for _, bid := range bids {
		c.suppressed[bid] = true
	}
	c.pump(now)
	return nil
}

func (c *core) deregisterAll(now time.Time) {
	if !c.allDown {
		c.allDown, c.allDownDone, c.allStatus = true, false, -1
	}
	c.pump(now)
}

func (c *core) stop(deregister bool, now time.Time) {
	c.stopping, c.stopDereg = true, deregister
	if deregister {
		c.deregisterAll(now)
	}
}

// stopDone reports whether a requested Stop may end the engine.
func (c *core) stopDone() bool {
	if !c.stopping {
		return false
	}
	if !c.stopDereg {
		return true
	}
	if c.atHome {
		return c.homeDone
	}
	return (c.allDownDone || c.bestSendable() == nil) && c.cnSettled()
}

func (c *core) tick(now time.Time) { c.pump(now) }

// ---- reconciliation ----

// pump brings the BUL in line with the inputs and sends what is due.
func (c *core) pump(now time.Time) {
	c.reconcile(now)
	c.expire(now)
	c.schedule(now)
	c.transmit(now)
	c.cnPump(now)
	c.report(now)
	c.cnReport(now)
}

func (c *core) reconcile(now time.Time) {
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

// inflightMatches reports whether the BU in flight says what e wants.
func (e *entry) inflightMatches() bool {
	if e.want == wantRemove {
		return e.in.remove
	}
	return !e.in.remove && e.in.coa == e.coa && e.in.prio == e.prio
}

func (c *core) usable(co *CareOf) bool {
	return !co.HomeLink && !c.suppressed[co.BID] && !c.down[co.BID]
}

func (c *core) reconcileMulti(now time.Time) {
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

// desire sets what e should be. A change of mind cancels the back-off of
// a rejected BU: the new BU says something else.
func (e *entry) desire(w want, coa netip.Addr, prio uint8) {
	if e.want != w || e.coa != coa || e.prio != prio {
		e.notBefore, e.backoff = time.Time{}, 0
		if e.want != w {
			e.failed = false
		}
	}
	e.want, e.coa, e.prio = w, coa, prio
}

func (c *core) reconcileSingle(now time.Time) {
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
func (c *core) pruneRemovals(now time.Time) {
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
func (c *core) maxExpiry(e *entry) time.Time {
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

func (c *core) expire(now time.Time) {
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

// needsBU reports whether e needs a new BU (not counting retransmissions of
// the one in flight).
func (c *core) needsBU(e *entry, now time.Time) bool {
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

func (c *core) schedule(now time.Time) {
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

func (c *core) scheduleBulk(now time.Time) {
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

func (c *core) newTx(kind txKind, items []*entry, now time.Time) *txn {
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

func (c *core) anyRegistered() bool {
	for _, e := range c.ents {
		if e.registered {
			return true
		}
	}
	return false
}

// supersede takes e out of the transaction it is in.
func (c *core) supersede(e *entry) {
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

func (c *core) dropTx(t *txn) {
	for _, e := range t.items {
		if e.tx == t {
			e.tx = nil
		}
	}
	if i := slices.Index(c.txs, t); i >= 0 {
		c.txs = slices.Delete(c.txs, i, i+1)
	}
}

// ---- helpers ----

func (c *core) find(bid uint16) *entry {
	i, ok := slices.BinarySearchFunc(c.ents, bid, func(e *entry, b uint16) int { return int(e.bid) - int(b) })
	if ok {
		return c.ents[i]
	}
	return nil
}

func (c *core) addEntry(bid uint16) *entry {
	e := &entry{bid: bid, progress: progress{lastStatus: -1}}
	i, _ := slices.BinarySearchFunc(c.ents, bid, func(e *entry, b uint16) int { return int(e.bid) - int(b) })
	c.ents = slices.Insert(c.ents, i, e)
	return e
}

func (c *core) deleteEntry(e *entry, why string, now time.Time) {
	c.supersede(e)
	if i := slices.Index(c.ents, e); i >= 0 {
		c.ents = slices.Delete(c.ents, i, i+1)
	}
	v := c.entryView(e)
	v.expires = time.Time{}
	c.emit(Event{Time: now, Type: EventRemoved, Binding: &v, Detail: why})
}

func (c *core) careOf(bid uint16) *CareOf {
	i, ok := slices.BinarySearchFunc(c.careofs, bid, func(co CareOf, b uint16) int { return int(co.BID) - int(b) })
	if ok {
		return &c.careofs[i]
	}
	return nil
}

// best returns the highest-priority care-of address (lowest BID on ties)
// that ok accepts.
func (c *core) best(ok func(*CareOf) bool) *CareOf {
	var b *CareOf
	for i := range c.careofs {
		co := &c.careofs[i]
		if ok(co) && (b == nil || co.Priority > b.Priority) {
			b = co
		}
	}
	return b
}

// bestUsable: the primary care-of address.
func (c *core) bestUsable() *CareOf { return c.best(c.usable) }

// bestSendable: any foreign care-of address, administratively
// de-registered ones included (they can still carry signalling).
func (c *core) bestSendable() *CareOf {
	if b := c.bestUsable(); b != nil {
		return b
	}
	if b := c.best(func(co *CareOf) bool { return !co.HomeLink && !c.dead(co.BID) }); b != nil {
		return b
	}
	return c.best(func(co *CareOf) bool { return !co.HomeLink })
}

func unknownBID(bid uint16) error { return &bidError{bid: bid} }

type bidError struct{ bid uint16 }

func (e *bidError) Error() string { return "bul: unknown BID " + strconv.Itoa(int(e.bid)) }
func (e *bidError) Unwrap() error { return ErrUnknownBID }
