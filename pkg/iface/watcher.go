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
	"github.com/vishvananda/netlink"
)

// Errors of the run-time setters.
var (
	ErrUnknownBID = errors.New("iface: unknown BID")
	ErrRunning    = errors.New("iface: watcher already running")
)

// backend is the kernel side: links and addresses, change notifications,
// and Router Advertisement listeners. Tests replace it.
type backend interface {
	Source
	// subscribe starts the link and address subscriptions; they stop when
	// done is closed. events receives (coalesced) when anything changed;
	// closed is closed when a subscription ended on its own (ENOBUFS or
	// another error): the caller resubscribes and reads everything again.
	subscribe(done <-chan struct{}, onErr func(error)) (events, closed <-chan struct{}, err error)
	// listenRA listens for Router Advertisements on the link and sends
	// Router Solicitations; deliver returns false once the listener is
	// closed. errNoRA: the backend has no RA at all.
	listenRA(ifindex int, mac net.HardwareAddr, deliver func(raInfo) bool) (io.Closer, error)
	Close() error
}

var errNoRA = errors.New("iface: no router advertisements on this backend")

// staticBackend serves Config.Source: no notifications (Hint reads), no RA.
type staticBackend struct{ Source }

func (staticBackend) subscribe(<-chan struct{}, func(error)) (_, _ <-chan struct{}, _ error) {
	return nil, nil, nil
}

func (staticBackend) listenRA(int, net.HardwareAddr, func(raInfo) bool) (io.Closer, error) {
	return nil, errNoRA
}

func (staticBackend) Close() error { return nil }

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
		w.open = func() (backend, error) { return openKernel(n.NetNS, n.Logger) }
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

// Hint asks for a fresh read of the kernel state (control API /v1/hint,
// NetworkManager). It never blocks.
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
	defer func() {
		for i, l := range w.listeners {
			l.close()
			delete(w.listeners, i)
		}
	}()

	var (
		events, closed <-chan struct{}
		subDone        chan struct{}
		subErr         = make(chan struct{}, 1)
		backoff        = 100 * time.Millisecond
	)
	unsubscribe := func() {
		if subDone != nil {
			close(subDone)
		}
		subDone, events, closed = nil, nil, nil
	}
	defer unsubscribe()
	subscribe := func() error {
		unsubscribe()
		done := make(chan struct{})
		ev, cl, err := b.subscribe(done, func(err error) {
			select {
			case <-done:
				return // our own close
			default:
			}
			w.log.Debug("netlink subscription", "err", err)
			select {
			case subErr <- struct{}{}:
			default:
			}
		})
		if err != nil {
			close(done)
			return err
		}
		events, closed, subDone = ev, cl, done
		return nil
	}
	if err := subscribe(); err != nil {
		return fmt.Errorf("iface: subscribing to links and addresses: %w", err)
	}

	p := newPacer(w.cfg.Debounce, w.cfg.MaxDelay, w.cfg.MaxRate, w.cfg.Burst, w.clk.Now())
	newStopped := func() clock.Timer {
		t := w.clk.NewTimer(time.Hour)
		t.Stop()
		return t
	}
	readT, retryT, raT, rotT := newStopped(), newStopped(), newStopped(), newStopped()
	defer func() { readT.Stop(); retryT.Stop(); raT.Stop(); rotT.Stop() }()
	arm := func(t clock.Timer, at time.Time) { t.Reset(max(0, at.Sub(w.clk.Now()))) }
	kick := func() { arm(readT, p.event(w.clk.Now())) }
	readFailed := false
	read := func() {
		if err := w.read(b); err != nil {
			w.log.Warn("reading links and addresses", "err", err)
			readFailed = true
			retryT.Reset(backoff)
			return
		}
		readFailed = false
	}
	raTick := func() {
		now := w.clk.Now()
		changed, next := w.sel.ra.prune(now)
		if changed {
			kick()
		}
		if next.IsZero() {
			raT.Stop()
		} else {
			arm(raT, next)
		}
	}
	if w.cfg.RotateInterval > 0 {
		rotT.Reset(w.cfg.RotateInterval)
	}

	p.fire(p.now(w.clk.Now())) // the first read takes a token like the others
	read()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			kick()
		case <-subErr:
			kick() // e.g. an interrupted dump: read again
		case <-closed:
			w.log.Warn("netlink subscription ended (lost events); resubscribing and reading everything again")
			if err := subscribe(); err != nil {
				w.log.Warn("resubscribing", "err", err, "retry_in", backoff)
				retryT.Reset(backoff)
				backoff = min(2*backoff, 10*time.Second)
			} else {
				backoff = 100 * time.Millisecond
			}
			arm(readT, p.now(w.clk.Now()))
		case <-retryT.C():
			if subDone == nil {
				if err := subscribe(); err != nil {
					w.log.Warn("resubscribing", "err", err, "retry_in", backoff)
					retryT.Reset(backoff)
					backoff = min(2*backoff, 10*time.Second)
					continue
				}
				backoff = 100 * time.Millisecond
				arm(readT, p.now(w.clk.Now()))
			} else if readFailed {
				kick()
			}
		case <-w.hint:
			kick()
		case ev := <-w.raCh:
			if w.listeners[ev.ifindex] != ev.l {
				continue // from a listener closed since
			}
			if w.sel.ra.update(ev.ifindex, ev.info, w.clk.Now()) {
				kick()
			}
			raTick()
		case <-raT.C():
			raTick()
		case <-rotT.C():
			w.sel.bids.rotate()
			w.log.Info("BIDs rotated")
			kick()
			rotT.Reset(w.cfg.RotateInterval)
		case <-readT.C():
			if ok, next := p.fire(w.clk.Now()); ok {
				read()
				raTick() // a re-attached link's wait may have started
			} else if !next.IsZero() {
				arm(readT, next)
			}
		}
	}
}

// read takes one full reading and publishes it.
func (w *Watcher) read(b backend) error {
	links, err := b.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	addrs, err := b.AddrList(nil, familyV6)
	if err != nil {
		return fmt.Errorf("listing addresses: %w", err)
	}
	if lc, ok := b.(interface{ lostCarrier() []int }); ok {
		// A carrier loss between two readings still counts: the link
		// must confirm again that it is the one we knew.
		for _, idx := range lc.lostCarrier() {
			w.sel.ra.detach(idx)
		}
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

var _ Source = (*netlink.Handle)(nil)
