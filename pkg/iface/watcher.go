package iface

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/vishvananda/netlink"
)

// Errors of the run-time setters.
var (
	ErrUnknownBID = errors.New("iface: unknown BID")
	ErrRunning    = errors.New("iface: watcher already running")
)

// Watcher watches the links and addresses of a network namespace and the
// Router Advertisements on its links, and tells the care-of addresses and
// their BIDs as Snapshots. One goroutine (Run) owns all its state; the
// methods are safe for concurrent use.
type Watcher struct {
	cfg  Config
	log  *slog.Logger
	clk  clock.Clock
	sel  *selector
	open func() (backend, error)

	updates chan Snapshot
	hint    chan struct{}
	raCh    chan raEvent
	cur     atomic.Pointer[Snapshot]
	running atomic.Bool

	mu sync.Mutex
	st settings

	// Run goroutine only.
	gen       uint64
	prev      []CareOf
	listeners map[int]*raListener
	raOn      bool
	raWarned  map[string]bool
}

type raListener struct {
	name   string
	closer io.Closer
	done   chan struct{}
}

func (l *raListener) close() {
	close(l.done)
	l.closer.Close()
}

type raEvent struct {
	l       *raListener
	ifindex int
	info    raInfo
}

// New checks cfg (nil: defaults) and loads the BIDs; Run starts watching.
func New(cfg *Config) (*Watcher, error) {
	n, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		cfg:     n,
		log:     n.Logger,
		clk:     n.Clock,
		updates: make(chan Snapshot, 1),
		hint:    make(chan struct{}, 1),
		raCh:    make(chan raEvent, 16),
		st: settings{
			rules:   n.Rules,
			prioBID: map[uint16]uint8{},
			metered: map[string]bool{},
		},
		raWarned: map[string]bool{},
	}
	w.sel = newSelector(&w.cfg)
	w.sel.bids.setFixed(n.Rules)
	if n.RotateBIDs {
		w.sel.bids.rotate()
	}
	if n.Source != nil {
		w.open = func() (backend, error) { return staticBackend{n.Source}, nil }
	} else {
		w.open = w.openMonitor
	}
	return w, nil
}

// Updates delivers a Snapshot whenever the care-of set (CareOfs) changed,
// and the first one after Run starts. Only the latest undelivered Snapshot
// is kept: a slow reader skips intermediate ones, the watcher never waits.
func (w *Watcher) Updates() <-chan Snapshot { return w.updates }

// Current returns the latest Snapshot (also when only Interfaces changed);
// false before the first one.
func (w *Watcher) Current() (Snapshot, bool) {
	if s := w.cur.Load(); s != nil {
		return *s, true
	}
	return Snapshot{}, false
}

// Hint asks for a fresh reading of the links and addresses (control API
// /v1/hint, NetworkManager). It never blocks.
func (w *Watcher) Hint() {
	select {
	case w.hint <- struct{}{}:
	default:
	}
}

// SetBIDPriority overrides the priority of one BID (in BIDPerCoA mode, one
// care-of address), its rule's or the default, metered or not, until the
// daemon restarts. It takes effect at the next read, which it triggers.
func (w *Watcher) SetBIDPriority(bid uint16, prio uint8) error {
	s, ok := w.Current()
	known := false
	if ok {
		_, known = s.CareOf(bid)
		for _, ifi := range s.Interfaces {
			known = known || (bid != 0 && ifi.BID == bid)
		}
	}
	if !known {
		return fmt.Errorf("%w %d", ErrUnknownBID, bid)
	}
	w.mu.Lock()
	w.st.prioBID[bid] = prio
	w.mu.Unlock()
	w.Hint()
	return nil
}

// SetMetered marks an interface as metered (NetworkManager's property):
// its priority is capped at Config.MeteredPriority unless SetBIDPriority
// overrides it.
func (w *Watcher) SetMetered(iface string, metered bool) {
	w.mu.Lock()
	if metered {
		w.st.metered[iface] = true
	} else {
		delete(w.st.metered, iface)
	}
	w.mu.Unlock()
	w.Hint()
}

// SetRules replaces the interface rules (configuration reload).
func (w *Watcher) SetRules(rules []Rule) error {
	if err := validateRules(rules); err != nil {
		return err
	}
	w.mu.Lock()
	w.st.rules = append([]Rule(nil), rules...)
	w.mu.Unlock()
	w.Hint()
	return nil
}

func (w *Watcher) settings() settings {
	w.mu.Lock()
	defer w.mu.Unlock()
	return settings{
		rules:   w.st.rules,
		prioBID: maps.Clone(w.st.prioBID),
		metered: maps.Clone(w.st.metered),
	}
}

// Run watches until ctx is done (then it returns nil); one Run at a time.
// It reads the state at once, then again after every change:
// level-triggered, so a lost event, a resubscription or a hint all end in
// the same full read.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer w.running.Store(false)
	b, err := w.open()
	if err != nil {
		return fmt.Errorf("iface: %w", err)
	}
	defer b.Close()
	w.raOn = !w.cfg.DisableRA
	w.listeners = map[int]*raListener{}
	defer w.closeListeners()
	l := w.newLoop(b)
	defer l.stop()

	l.p.fire(l.p.now(w.clk.Now())) // the first read takes a token like the others
	l.read()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.changes():
			l.kick()
		case <-w.hint:
			l.kick()
		case ev := <-w.raCh:
			if w.listeners[ev.ifindex] != ev.l {
				continue // from a listener closed since
			}
			if w.sel.ra.update(ev.ifindex, ev.info, w.clk.Now()) {
				l.kick()
			}
			l.raTick()
		case <-l.raT.C():
			l.raTick()
		case <-l.rotT.C():
			w.sel.bids.rotate()
			w.log.Info("BIDs rotated")
			l.kick()
			l.rotT.Reset(w.cfg.RotateInterval)
		case <-l.retryT.C():
			l.kick()
		case <-l.readT.C():
			if ok, next := l.p.fire(w.clk.Now()); ok {
				l.read()
				l.raTick() // a re-attached link's wait may have started
			} else if !next.IsZero() {
				l.arm(l.readT, next)
			}
		}
	}
}

// readRetry is how long a failed read waits before the next.
const readRetry = 100 * time.Millisecond

// loop is Run's timers and pacer.
type loop struct {
	w                        *Watcher
	b                        backend
	p                        *pacer
	readT, retryT, raT, rotT clock.Timer
}

func (w *Watcher) newLoop(b backend) *loop {
	stopped := func() clock.Timer {
		t := w.clk.NewTimer(time.Hour)
		t.Stop()
		return t
	}
	l := &loop{w: w, b: b, p: newPacer(w.cfg.Debounce, w.cfg.MaxDelay, w.cfg.MaxRate, w.cfg.Burst, w.clk.Now()),
		readT: stopped(), retryT: stopped(), raT: stopped(), rotT: stopped()}
	if w.cfg.RotateInterval > 0 {
		l.rotT.Reset(w.cfg.RotateInterval)
	}
	return l
}

func (l *loop) stop() { l.readT.Stop(); l.retryT.Stop(); l.raT.Stop(); l.rotT.Stop() }

func (l *loop) arm(t clock.Timer, at time.Time) { t.Reset(max(0, at.Sub(l.w.clk.Now()))) }

// kick schedules a read through the pacer.
func (l *loop) kick() { l.arm(l.readT, l.p.event(l.w.clk.Now())) }

func (l *loop) read() {
	if err := l.w.read(l.b); err != nil {
		l.w.log.Warn("reading links and addresses", "err", err)
		l.retryT.Reset(readRetry)
	}
}

// raTick forgets expired RA information and arms the next expiry.
func (l *loop) raTick() {
	changed, next := l.w.sel.ra.prune(l.w.clk.Now())
	if changed {
		l.kick()
	}
	if next.IsZero() {
		l.raT.Stop()
	} else {
		l.arm(l.raT, next)
	}
}

func (w *Watcher) closeListeners() {
	for i, l := range w.listeners {
		l.close()
		delete(w.listeners, i)
	}
}

// read takes one full reading and publishes it.
func (w *Watcher) read(b backend) error {
	links, addrs, lost, err := b.read()
	if err != nil {
		return fmt.Errorf("listing links and addresses: %w", err)
	}
	// A carrier loss between two readings still counts: the link must
	// confirm again that it is the one we knew.
	for _, idx := range lost {
		w.sel.ra.detach(idx)
	}
	st := w.settings()
	s := w.sel.build(links, addrs, w.clk.Now(), &st)
	if err := w.sel.bids.save(); err != nil {
		w.log.Warn("BIDs not saved", "err", err)
	}
	w.publish(s)
	w.reconcileRA(b, s)
	return nil
}

func (w *Watcher) publish(s *Snapshot) {
	changed := w.gen == 0 || !equalCareOfs(w.prev, s.CareOfs)
	if changed {
		w.gen++
		w.prev = s.CareOfs
	}
	s.Generation = w.gen
	w.cur.Store(s)
	if !changed {
		return
	}
	w.log.Debug("care-of addresses changed", "generation", s.Generation, "care_ofs", len(s.CareOfs))
	// Latest wins: replace an undelivered snapshot, never block.
	select {
	case <-w.updates:
	default:
	}
	select {
	case w.updates <- *s:
	default:
	}
}

// reconcileRA keeps one RA listener on each link that may carry care-of
// addresses and has a usable link-local address; opening one sends a
// Router Solicitation (so a link coming up learns its routers at once).
func (w *Watcher) reconcileRA(b backend, s *Snapshot) {
	if !w.raOn {
		return
	}
	want := map[int]*Interface{}
	for i := range s.Interfaces {
		ifi := &s.Interfaces[i]
		switch ifi.State {
		case StateCoA, StateHome, StateNoAddress:
			if hasLinkLocal(ifi) {
				want[ifi.Index] = ifi
			}
		}
	}
	for idx, l := range w.listeners {
		if ifi := want[idx]; ifi == nil || ifi.Name != l.name {
			l.close()
			delete(w.listeners, idx)
			w.log.Debug("router advertisement listener closed", "interface", l.name)
		}
	}
	for idx, ifi := range want {
		if w.listeners[idx] != nil {
			continue
		}
		l := &raListener{name: ifi.Name, done: make(chan struct{})}
		mac, _ := net.ParseMAC(ifi.MAC)
		c, err := b.listenRA(idx, mac, func(info raInfo) bool {
			select {
			case <-l.done:
				return false
			default:
			}
			select {
			case w.raCh <- raEvent{l: l, ifindex: idx, info: info}:
				return true
			case <-l.done:
				return false
			}
		})
		if errors.Is(err, errNoRA) {
			w.raOn = false
			return
		}
		if err != nil {
			lvl := slog.LevelDebug
			if !w.raWarned[ifi.Name] {
				lvl = slog.LevelWarn
				w.raWarned[ifi.Name] = true
			}
			w.log.Log(context.Background(), lvl, "no router advertisement listener (retried at the next change)", "interface", ifi.Name, "err", err)
			continue
		}
		l.closer = c
		w.listeners[idx] = l
		w.log.Debug("listening for router advertisements", "interface", ifi.Name)
	}
}

func hasLinkLocal(ifi *Interface) bool {
	for _, a := range ifi.Addrs {
		if a.Prefix.Addr().IsLinkLocalUnicast() && !a.Tentative && !a.DADFailed {
			return true
		}
	}
	return false
}

var (
	_ Source = (*netlink.Handle)(nil)
	_ Source = (*netmon.State)(nil)
)
