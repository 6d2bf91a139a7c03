package liveness

import (
	"net/netip"
	"slices"
	"time"
)

// Probe timing beyond Timers.
const (
	// flapWindow: a path that dies again this soon after coming back
	// doubles its hold-down.
	flapWindow  = time.Minute
	maxHoldMult = 64
)

// path is the monitor's state of one care-of address.
type path struct {
	Path
	t     Timers
	state State
	since time.Time

	// Passive: the tunnel's counters.
	seen        bool
	tx, rx      uint64
	lastRx      time.Time
	rxGap       time.Duration // time between polls that saw packets (see traffic)
	rxLastPoll  bool          // the last poll saw packets
	txAt        time.Time     // first send seen after lastProof (zero: none)
	lastProof   time.Time
	lastProofRx bool // lastProof was received traffic, not a probe's answer

	// A check: probing until an answer, a packet, or death.
	checking  bool
	quiet     bool // began after received traffic or with sends unanswered: an answer asks for a home check
	keepalive bool // began with a keepalive or a hint: one miss more to dead
	hinted    bool
	misses    int
	nextProbe time.Time

	// Probe statistics.
	rtt, srtt, rttvar time.Duration
	results           uint32 // 1 bits: lost, newest lowest
	nresults          int
	sent, lost        uint64

	// Dead: answers in a row and when it may come back.
	streak    int
	recoverAt time.Time
	hold      time.Duration
	aliveAt   time.Time // when it last came back
}

type outProbe struct {
	bid      uint16
	home     bool
	at       time.Time
	deadline time.Time
}

// effects is what a step asks the owner to do.
type effects struct {
	changed  bool // some path's State changed
	homeLost bool // the home agent answers on its address but not through the tunnels
}

// detector is the deterministic failure detector: every method takes the
// time; Monitor.Run owns it, or a test does.
type detector struct {
	ha, hoa   netip.Addr
	id, seq   uint16
	prober    Prober
	homeOn    bool
	paths     []*path // sorted by BID
	out       map[uint16]outProbe
	home      homeCheck
	fx        effects
	lastPoll  time.Time       // the last traffic reading
	batch     []time.Duration // tick: the Idle of paths whose keepalive is due; others with it join
	sendError func(p *Path, err error)
}

func newDetector(ha, hoa netip.Addr, id uint16, pr Prober, homeOn bool) *detector {
	return &detector{ha: ha, hoa: hoa, id: id, prober: pr, homeOn: homeOn, out: map[uint16]outProbe{}}
}

func (c *detector) find(bid uint16) *path {
	i, ok := slices.BinarySearchFunc(c.paths, bid, func(p *path, b uint16) int { return int(p.BID) - int(b) })
	if ok {
		return c.paths[i]
	}
	return nil
}

// setPaths replaces the set of paths. A path whose care-of address or
// interface changed starts afresh: it is another path.
func (c *detector) setPaths(ps []Path, now time.Time) {
	next := make([]*path, 0, len(ps))
	for _, np := range ps {
		if np.BID == 0 || !np.CoA.IsValid() {
			continue
		}
		old := c.find(np.BID)
		if old != nil && old.CoA == np.CoA && old.Iface == np.Iface && old.Ifindex == np.Ifindex {
			old.Metered = np.Metered
			old.Timers = np.Timers
			old.t = np.Timers.withDefaults(np.Metered)
			next = append(next, old)
			continue
		}
		next = append(next, &path{Path: np, t: np.Timers.withDefaults(np.Metered), state: Unknown, since: now})
		c.fx.changed = true
	}
	slices.SortFunc(next, func(a, b *path) int { return int(a.BID) - int(b.BID) })
	next = slices.CompactFunc(next, func(a, b *path) bool { return a.BID == b.BID })
	if len(next) != len(c.paths) {
		c.fx.changed = true
	}
	c.paths = next
	for seq, o := range c.out {
		if !o.home && c.find(o.bid) == nil {
			delete(c.out, seq)
		}
	}
}

// traffic takes the tunnels' counters (cumulative; a tunnel made anew
// starts from zero again).
func (c *detector) traffic(tr map[uint16]Traffic, now time.Time) {
	anyRx := false
	for _, p := range c.paths {
		t, ok := tr[p.BID]
		p.rxLastPoll = false
		if !ok {
			p.seen = false
			continue
		}
		if !p.seen || t.RxPackets < p.rx || t.TxPackets < p.tx {
			p.seen, p.tx, p.rx = true, t.TxPackets, t.RxPackets
			continue
		}
		if t.TxPackets > p.tx && p.txAt.IsZero() {
			p.txAt = now
		}
		if t.RxPackets > p.rx {
			anyRx = true
			// The gap between packets: up at once (sparse traffic must
			// not look silent), down by halves (a burst's short gaps do
			// not make the pause after it look like a failure).
			// After a quiet spell the packets came within the time since
			// the last read: that bounds the first gap.
			gap := min(now.Sub(c.lastPoll), p.t.Idle)
			if !p.lastRx.IsZero() && now.Sub(p.lastRx) < p.t.Idle {
				gap = now.Sub(p.lastRx)
			}
			p.rxGap = max(gap, p.rxGap/2)
			p.lastRx, p.rxLastPoll = now, true
			if p.state != Dead {
				c.proof(p, now, false)
			}
		}
		p.tx, p.rx = t.TxPackets, t.RxPackets
	}
	if anyRx {
		// The home agent tunnels only to bindings it holds.
		c.home.lastOK = now
		if c.home.active {
			c.homeOK(now)
		}
	}
	c.lastPoll = now
}

// proof: something came back on p (not dead).
func (c *detector) proof(p *path, now time.Time, probe bool) {
	p.lastProof, p.lastProofRx = now, !probe
	p.txAt = time.Time{}
	p.misses = 0
	if p.checking {
		if probe && p.quiet {
			c.home.wanted = true
		}
		p.checking, p.quiet, p.keepalive = false, false, false
	}
	c.setState(p, Alive, now)
}

func (c *detector) setState(p *path, s State, now time.Time) {
	if p.state != s {
		p.state, p.since = s, now
		c.fx.changed = true
	}
}

// reply takes an echo reply with our identifier.
func (c *detector) reply(seq uint16, at time.Time) {
	o, ok := c.out[seq]
	if !ok {
		return // late (already counted lost) or not ours
	}
	delete(c.out, seq)
	if o.home {
		c.homeOK(at)
		return
	}
	p := c.find(o.bid)
	if p == nil {
		return
	}
	p.record(false)
	p.sampleRTT(at.Sub(o.at))
	if p.state == Dead {
		if p.streak == 0 {
			p.recoverAt = at.Add(p.hold)
		}
		p.streak++
		return
	}
	c.proof(p, at, true)
}

// hint asks for a check of iface's path now ("" every path).
func (c *detector) hint(iface string) {
	for _, p := range c.paths {
		if iface == "" || p.Iface == iface {
			p.hinted = true
		}
	}
}

// tick does what is due at now.
func (c *detector) tick(now time.Time) {
	c.expireProbes(now)
	// Idle paths' keepalives go together: when one is due, those with
	// the same Idle past half of it go with it, so that a node with
	// several idle paths wakes once a keepalive period, not once per path.
	c.batch = c.batch[:0]
	for _, p := range c.paths {
		if p.state != Dead && !p.checking && !p.lastProof.IsZero() && now.Sub(p.lastProof) >= p.t.Idle &&
			!slices.Contains(c.batch, p.t.Idle) {
			c.batch = append(c.batch, p.t.Idle)
		}
	}
	for _, p := range c.paths {
		if p.state == Dead {
			c.tickDead(p, now)
		} else {
			c.tickLive(p, now)
		}
	}
	c.tickHome(now)
}

func (c *detector) expireProbes(now time.Time) {
	for seq, o := range c.out {
		if now.Before(o.deadline) {
			continue
		}
		delete(c.out, seq)
		if o.home {
			c.home.misses++
			continue
		}
		p := c.find(o.bid)
		if p == nil {
			continue
		}
		p.record(true)
		if p.state == Dead {
			p.streak, p.recoverAt = 0, time.Time{}
		} else {
			p.misses++
		}
	}
}

func (c *detector) tickDead(p *path, now time.Time) {
	if p.streak >= p.t.Multiplier && !p.recoverAt.IsZero() && !now.Before(p.recoverAt) {
		p.streak, p.recoverAt = 0, time.Time{}
		p.aliveAt = now
		p.lastProof, p.lastProofRx, p.txAt = now, false, time.Time{}
		p.misses, p.checking, p.hinted = 0, false, false
		c.setState(p, Alive, now)
		return
	}
	if !now.Before(p.nextProbe) {
		c.send(p, now)
		if p.streak > 0 {
			p.nextProbe = now.Add(p.t.Interval) // recovering: gather evidence
		} else {
			p.nextProbe = now.Add(p.retry())
		}
	}
}

func (c *detector) tickLive(p *path, now time.Time) {
	deadAfter := p.t.Multiplier
	if p.keepalive {
		deadAfter++
	}
	if p.checking && p.misses >= deadAfter {
		c.die(p, now)
		return
	}
	if p.misses > 0 {
		c.setState(p, Suspect, now)
	}
	if !p.checking {
		switch {
		case p.hinted:
			// Consumed here: a hint during a check asks for another.
			p.checking, p.keepalive, p.hinted = true, true, false
		case p.silent(now):
			p.checking = true
		case !p.txAt.IsZero() && now.Sub(p.txAt) >= p.t.Interval:
			// Sending, nothing back.
			p.checking = true
		case p.lastProof.IsZero() || now.Sub(p.lastProof) >= p.t.Idle,
			slices.Contains(c.batch, p.t.Idle) && now.Sub(p.lastProof) >= p.t.Idle/2:
			p.checking, p.keepalive = true, true
		}
		if p.checking {
			// Traffic stopped or goes unanswered while the path answers:
			// the home agent may have lost the binding.
			p.quiet = p.lastProofRx || !p.txAt.IsZero()
			p.misses, p.nextProbe = 0, now
		}
	}
	if p.checking && !now.Before(p.nextProbe) {
		c.send(p, now)
		p.nextProbe = now.Add(p.t.Interval)
	}
}

// silence is how long a path that was receiving may stay silent before it
// is checked: an Interval, or twice the usual gap of sparse traffic; none
// (the keepalive's business) when that reaches Idle.
func (p *path) silence() time.Duration { return max(p.t.Interval, 2*p.rxGap) }

func (p *path) silent(now time.Time) bool {
	s := p.silence()
	return p.lastProofRx && s < p.t.Idle && now.Sub(p.lastProof) >= s
}

func (c *detector) die(p *path, now time.Time) {
	if !p.aliveAt.IsZero() && now.Sub(p.aliveAt) < flapWindow && p.hold > 0 {
		p.hold = min(2*p.hold, maxHoldMult*p.t.HoldDown)
	} else {
		p.hold = p.t.HoldDown
	}
	p.checking, p.quiet, p.keepalive, p.hinted = false, false, false, false
	p.misses, p.streak, p.recoverAt = 0, 0, time.Time{}
	p.nextProbe = now.Add(p.retry())
	c.setState(p, Dead, now)
}

func (c *detector) send(p *path, now time.Time) {
	c.seq++
	seq := c.seq
	p.sent++
	c.out[seq] = outProbe{bid: p.BID, at: now, deadline: now.Add(p.rto())}
	if err := c.prober.Probe(p.Ifindex, p.CoA, c.ha, c.id, seq); err != nil && c.sendError != nil {
		c.sendError(&p.Path, err) // lost, as far as the verdict goes
	}
}

// ---- timing ----

// next is the earliest time after now at which tick has work (zero: none).
func (c *detector) next(now time.Time) time.Time {
	var d time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	for _, o := range c.out {
		consider(o.deadline)
	}
	for _, p := range c.paths {
		switch {
		case p.state == Dead:
			consider(p.nextProbe)
			if p.streak >= p.t.Multiplier {
				consider(p.recoverAt)
			}
		case p.checking || p.hinted:
			consider(p.nextProbe)
		default:
			if p.lastProof.IsZero() {
				consider(now)
				continue
			}
			consider(p.lastProof.Add(p.t.Idle))
			if p.lastProofRx && p.silence() < p.t.Idle {
				consider(p.lastProof.Add(p.silence()))
			}
			if !p.txAt.IsZero() {
				consider(p.txAt.Add(p.t.Interval))
			}
		}
	}
	if c.homeOn && len(c.paths) > 0 {
		switch {
		case c.home.active:
			consider(c.home.next)
		case c.home.wanted:
			consider(c.home.notBefore)
		case !c.home.lastOK.IsZero():
			consider(c.home.lastOK.Add(c.homeKeepalive()))
		}
	}
	if !d.IsZero() && d.Before(now) {
		d = now
	}
	return d
}

// pollEvery is how often the tunnels' counters are read: at half an
// Interval while a path sends, is checked, or had packets at the last read
// (so that a busy path's silence is noticed within half an Interval), at
// half the gap between its packets after that, and at a quarter of Idle
// otherwise.
func (c *detector) pollEvery(now time.Time) time.Duration {
	var d time.Duration
	for _, p := range c.paths {
		e := p.t.Idle / 4
		switch {
		case p.checking || !p.txAt.IsZero() || p.rxLastPoll:
			// Sending, checked, or packets in the last poll: maybe
			// busy, so read at the pace that notices its silence.
			e = p.t.Interval / 2
		case !p.lastRx.IsZero() && now.Sub(p.lastRx) < p.t.Idle:
			e = min(max(p.rxGap/2, p.t.Interval/2), e)
		}
		if d == 0 || e < d {
			d = e
		}
	}
	return d
}

// health is every path's verdict.
func (c *detector) health() []Health {
	out := make([]Health, len(c.paths))
	for i, p := range c.paths {
		out[i] = Health{
			BID: p.BID, Interface: p.Iface, CoA: p.CoA, State: p.state, Since: p.since,
			RTT: p.rtt, Loss: p.loss(), LastProof: p.lastProof, ProbesSent: p.sent, ProbesLost: p.lost,
		}
	}
	return out
}

// take returns and clears the effects of the steps so far.
func (c *detector) take() effects {
	fx := c.fx
	c.fx = effects{}
	return fx
}
