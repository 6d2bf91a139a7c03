package bul

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Engine is the mobile node's Binding Update List. Run owns it; the other
// methods are safe from any goroutine.
type Engine struct {
	c    *machine
	clk  clock.Clock
	auth Auth
	peer netip.Addr   // immutable copy for HandlePacket's goroutine
	cns  []netip.Addr // likewise

	coMu        sync.Mutex
	coNext      []CareOf
	coDirty     bool
	healthNext  []liveness.Health
	healthDirty bool
	tunNext     []Tunnel
	tunDirty    bool
	coKick      chan struct{}

	inbound chan *inbound
	dropped atomic.Uint64
	cmds    chan command

	view    atomic.Pointer[view]
	updated chan struct{} // Updated's

	started atomic.Bool
	done    chan struct{}
	cancel  context.CancelFunc
	cancMu  sync.Mutex
}

type command struct {
	fn    func(c *machine, now time.Time) error
	reply chan error
}

type view struct {
	entries []Entry
	status  Status
}

// inboundQueue packets may wait for the engine; more are dropped (and
// counted): signalling is retransmitted anyway.
const inboundQueue = 256

// New checks cfg and returns an Engine; call Run to start it.
func New(cfg Config) (*Engine, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	e := &Engine{
		c:       newMachine(cfg),
		clk:     cfg.Clock,
		auth:    cfg.Auth,
		peer:    cfg.HomeAgent,
		cns:     slices.Clone(cfg.Correspondents),
		coKick:  make(chan struct{}, 1),
		inbound: make(chan *inbound, inboundQueue),
		cmds:    make(chan command),
		done:    make(chan struct{}),
		updated: make(chan struct{}, 1),
	}
	e.publish()
	return e, nil
}

// Run runs the engine until ctx ends (it returns ctx's error) or Stop
// completes (it returns nil).
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("bul: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	e.cancMu.Lock()
	e.cancel = cancel
	e.cancMu.Unlock()
	defer func() {
		cancel()
		e.publish()
		close(e.done)
	}()

	c := e.c
	timer := e.clk.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed, last time.Time
	now := func() time.Time { last = e.clk.Now(); return last }
	// after re-arms the timer to the earliest deadline. Time may have
	// passed since the last step (and a timer that fired meanwhile is
	// drained by Reset): whatever fell due is handled here, not lost.
	after := func() bool {
		for {
			d := c.nextDeadline(last)
			t := e.clk.Now()
			if !d.IsZero() && !d.After(t) {
				c.tick(now())
				continue
			}
			switch {
			case d.IsZero():
				if !armed.IsZero() {
					timer.Stop()
					armed = time.Time{}
				}
			case !d.Equal(armed):
				timer.Reset(d.Sub(t))
				armed = d
			}
			break
		}
		e.publish()
		return c.stopDone()
	}

	e.applyInputs(now())
	c.tick(now())
	after()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.coKick:
			e.applyInputs(now())
		case in := <-e.inbound:
			c.handleInbound(in, now())
		case cmd := <-e.cmds:
			// A command sees everything handed in before it.
			e.drain(now())
			cmd.reply <- cmd.fn(c, now())
		case <-timer.C():
			armed = time.Time{}
			c.tick(now())
		}
		if after() {
			return nil
		}
	}
}

// drain handles queued inputs and packets.
func (e *Engine) drain(now time.Time) {
	e.applyInputs(now)
	for {
		select {
		case in := <-e.inbound:
			e.c.handleInbound(in, now)
		default:
			return
		}
	}
}

// applyInputs hands the machine the latest health, tunnels and care-of
// addresses handed in.
func (e *Engine) applyInputs(now time.Time) {
	e.coMu.Lock()
	cos, dirty := e.coNext, e.coDirty
	h, hdirty := e.healthNext, e.healthDirty
	ts, tdirty := e.tunNext, e.tunDirty
	e.coNext, e.coDirty = nil, false
	e.healthNext, e.healthDirty = nil, false
	e.tunNext, e.tunDirty = nil, false
	e.coMu.Unlock()
	if hdirty {
		e.c.setHealth(h, now)
	}
	if tdirty {
		e.c.setTunnels(ts, now)
	}
	if dirty {
		e.c.setCareOfs(cos, now)
	}
}

func (e *Engine) publish() {
	c := e.c
	v := &view{status: c.status()}
	v.entries = make([]Entry, 0, len(c.ents))
	for _, en := range c.ents {
		v.entries = append(v.entries, c.entryView(en))
	}
	v.entries = c.downViews(v.entries)
	v.entries = c.cnViews(v.entries)
	old := e.view.Swap(v)
	if old == nil || !slices.Equal(old.entries, v.entries) {
		select {
		case e.updated <- struct{}{}:
		default:
		}
	}
}

// Updated receives a value when the list may have changed since the last
// receive (several changes coalesce): its reader then takes a Snapshot.
// It has one reader, the data plane.
func (e *Engine) Updated() <-chan struct{} { return e.updated }

// SetCareOfs replaces the set of care-of addresses (level-triggered: the
// engine reconciles its list against the latest set; intermediate sets may
// be skipped). It never blocks on the engine. An invalid set is refused
// whole and the previous one stays.
func (e *Engine) SetCareOfs(cos []CareOf) error {
	if err := validateCareOfs(cos); err != nil {
		return err
	}
	e.handIn(func() { e.coNext, e.coDirty = slices.Clone(cos), true })
	return nil
}

// handIn stores an input for the engine goroutine (under coMu) and wakes
// it; several wake-ups coalesce.
func (e *Engine) handIn(store func()) {
	e.coMu.Lock()
	store()
	e.coMu.Unlock()
	select {
	case e.coKick <- struct{}{}:
	default:
	}
}

// SetHealth hands the engine the liveness verdict of every path (by BID;
// level-triggered like SetCareOfs, and it never blocks). A dead path's
// binding is withdrawn while another path is not dead: de-registered
// through a live care-of address, so that the home agent stops sending on
// it, and registered again when the path is alive.
func (e *Engine) SetHealth(h []liveness.Health) {
	e.handIn(func() { e.healthNext, e.healthDirty = slices.Clone(h), true })
}

// SetTunnels hands the engine the home agent tunnels that carry packets
// now, every one (level-triggered like SetCareOfs, and it never blocks):
// the data plane reports them after each apply. The HoTI to a
// correspondent leaves through the primary binding's; Snapshot names each
// binding's.
func (e *Engine) SetTunnels(ts []Tunnel) {
	e.handIn(func() { e.tunNext, e.tunDirty = slices.Clone(ts), true })
}

// Refresh sends a BU for every registered binding now, without lifting an
// administrative de-registration: the home agent may have lost them.
func (e *Engine) Refresh() error {
	return e.do(func(c *machine, now time.Time) error { c.refresh(now); return nil })
}

// HandlePacket hands the engine a received BA, BRR or BE. It copies what
// the engine keeps (and checks the BA's authenticator while p.MHBytes is
// valid), so the caller may reuse p at once. It never blocks.
func (e *Engine) HandlePacket(p *proto.Packet) {
	in := newInbound(p, e.auth, e.peer, e.cns)
	select {
	case e.inbound <- in:
	default:
		e.dropped.Add(1)
	}
}

// do runs fn on the engine goroutine and waits for it. It needs Run.
func (e *Engine) do(fn func(c *machine, now time.Time) error) error {
	return e.doCtx(context.Background(), fn)
}

func (e *Engine) doCtx(ctx context.Context, fn func(c *machine, now time.Time) error) error {
	cmd := command{fn: fn, reply: make(chan error, 1)}
	select {
	case e.cmds <- cmd:
	case <-e.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-e.done:
		return ErrStopped
	}
}

// Register re-registers every binding now. It also lifts Deregister and
// DeregisterAll and returns to the configured mode after a fallback.
func (e *Engine) Register() error {
	return e.do(func(c *machine, now time.Time) error { c.register(now); return nil })
}

// RegisterBIDs registers the bindings of bids again now, lifting a
// Deregister of those BIDs only; the others are left as they are. An
// unknown BID is an error (ErrUnknownBID) and changes nothing.
func (e *Engine) RegisterBIDs(bids []uint16) error {
	bids = slices.Clone(bids)
	return e.do(func(c *machine, now time.Time) error { return c.registerBIDs(bids, now) })
}

// Deregister removes the bindings of bids (until Register).
func (e *Engine) Deregister(bids []uint16) error {
	bids = slices.Clone(bids)
	return e.do(func(c *machine, now time.Time) error { return c.deregister(bids, now) })
}

// DeregisterAll removes every binding with one BU without BID and lifetime
// 0, and registers nothing until Register.
func (e *Engine) DeregisterAll() error {
	return e.do(func(c *machine, now time.Time) error { c.deregisterAll(now); return nil })
}

// Stop ends Run. With deregister, it first removes every binding and waits
// for the home agent's acknowledgement (or until ctx ends, or at once when
// there is nothing to send from). Without, the bindings expire on their own.
// Stop needs Run: before Run starts it waits for it (or for ctx).
func (e *Engine) Stop(ctx context.Context, deregister bool) error {
	err := e.doCtx(ctx, func(c *machine, now time.Time) error { c.stop(deregister, now); return nil })
	switch {
	case errors.Is(err, ErrStopped):
		return nil
	case err != nil:
		return err
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		e.cancMu.Lock()
		e.cancel()
		e.cancMu.Unlock()
		<-e.done
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Snapshot returns a copy of the Binding Update List.
func (e *Engine) Snapshot() []Entry {
	v := e.view.Load()
	out := slices.Clone(v.entries)
	now := e.clk.Now()
	for i := range out {
		out[i].fill(now)
	}
	return out
}

// Status returns the engine's summary.
func (e *Engine) Status() Status {
	s := e.view.Load().status
	s.Counters.BAsIgnored = maps.Clone(s.Counters.BAsIgnored)
	s.Counters.InboundDropped = e.dropped.Load()
	return s
}
