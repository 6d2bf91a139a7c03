package bul

import (
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/proto"
)

// machine is the Binding Update List state machine behind Engine: every
// method takes the current time, calls the transport, and leaves deadlines
// for nextDeadline. It is owned by one goroutine (Engine.Run) or by a test.
type machine struct {
	cfg       Config
	prof      *proto.Profile
	log       *slog.Logger
	lifeUnits uint16

	careofs    []CareOf // sorted by BID
	suppressed map[uint16]bool
	health     map[uint16]liveness.Health
	tunnels    map[uint16]Tunnel // working home agent tunnels, by BID (tunnel.go)
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

func newMachine(cfg Config) *machine {
	c := &machine{
		cfg:          cfg,
		prof:         cfg.Profile,
		log:          cfg.Logger,
		lifeUnits:    uint16((cfg.Lifetime + proto.LifetimeUnitSeconds*time.Second - 1) / (proto.LifetimeUnitSeconds * time.Second)),
		suppressed:   map[uint16]bool{},
		health:       map[uint16]liveness.Health{},
		tunnels:      map[uint16]Tunnel{},
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

func (c *machine) setCareOfs(cos []CareOf, now time.Time) {
	c.careofs = append(c.careofs[:0], cos...)
	slices.SortFunc(c.careofs, func(a, b CareOf) int { return int(a.BID) - int(b.BID) })
	c.pump(now)
}

func (c *machine) setHealth(hs []liveness.Health, now time.Time) {
	clear(c.health)
	for _, h := range hs {
		c.health[h.BID] = h
	}
	c.pump(now)
}

func (c *machine) dead(bid uint16) bool { return c.health[bid].State == liveness.Dead }

// withdraw decides which dead paths give up their bindings: all of them,
// unless no other path is left that is not dead (then nothing better is
// there, and what is registered stays).
func (c *machine) withdraw() {
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
func (c *machine) refresh(now time.Time) {
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

func (c *machine) register(now time.Time) {
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

func (c *machine) registerBIDs(bids []uint16, now time.Time) error {
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

func (c *machine) deregister(bids []uint16, now time.Time) error {
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

func (c *machine) deregisterAll(now time.Time) {
	if !c.allDown {
		c.allDown, c.allDownDone, c.allStatus = true, false, -1
	}
	c.pump(now)
}

func (c *machine) stop(deregister bool, now time.Time) {
	c.stopping, c.stopDereg = true, deregister
	if deregister {
		c.deregisterAll(now)
	}
}

// stopDone reports whether a requested Stop may end the engine.
func (c *machine) stopDone() bool {
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

func (c *machine) tick(now time.Time) { c.pump(now) }

func (c *machine) find(bid uint16) *entry {
	i, ok := slices.BinarySearchFunc(c.ents, bid, func(e *entry, b uint16) int { return int(e.bid) - int(b) })
	if ok {
		return c.ents[i]
	}
	return nil
}

func (c *machine) addEntry(bid uint16) *entry {
	e := &entry{bid: bid, progress: progress{lastStatus: -1}}
	i, _ := slices.BinarySearchFunc(c.ents, bid, func(e *entry, b uint16) int { return int(e.bid) - int(b) })
	c.ents = slices.Insert(c.ents, i, e)
	return e
}

func (c *machine) deleteEntry(e *entry, why string, now time.Time) {
	c.supersede(e)
	if i := slices.Index(c.ents, e); i >= 0 {
		c.ents = slices.Delete(c.ents, i, i+1)
	}
	v := c.entryView(e)
	v.expires = time.Time{}
	c.emit(Event{Time: now, Type: EventRemoved, Binding: &v, Detail: why})
}

func (c *machine) careOf(bid uint16) *CareOf {
	i, ok := slices.BinarySearchFunc(c.careofs, bid, func(co CareOf, b uint16) int { return int(co.BID) - int(b) })
	if ok {
		return &c.careofs[i]
	}
	return nil
}

// best returns the highest-priority care-of address (lowest BID on ties)
// that ok accepts.
func (c *machine) best(ok func(*CareOf) bool) *CareOf {
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
func (c *machine) bestUsable() *CareOf { return c.best(c.usable) }

// bestSendable: any foreign care-of address, administratively
// de-registered ones included (they can still carry signalling).
func (c *machine) bestSendable() *CareOf {
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
