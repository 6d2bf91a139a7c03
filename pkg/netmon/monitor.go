// Package netmon watches a network namespace's links, IPv6 addresses and,
// on request, IPv6 routes and rules over one netlink socket, and publishes
// them as immutable States. One goroutine (Run) owns the state; consumers
// read Current when Changes tells them something changed (level-triggered:
// a notification may cover many changes, and a lost one is covered by the
// next). A subscription that fails (ENOBUFS: events were lost) is replaced
// and everything is read again.
package netmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/vishvananda/netlink"
)

// Config configures a Monitor. The zero value watches links and addresses
// of the calling thread's namespace.
type Config struct {
	// NetNS is the network namespace: a name under /run/netns or a path
	// such as /proc/PID/ns/net. Empty: the calling thread's.
	NetNS string
	// Routes also watches IPv6 routes (all tables) and rules.
	Routes bool
	// RecvBuffer is the socket's receive buffer (0: DefaultRecvBuffer).
	RecvBuffer int
	Logger     *slog.Logger
	Clock      clock.Clock
}

// DefaultRecvBuffer is generous, so that a burst (a hundred links
// flapping) rarely overflows it; when it does, everything is read again.
const DefaultRecvBuffer = 4 << 20

// Errors.
var (
	ErrRunning    = errors.New("netmon: monitor already running")
	ErrNotRunning = errors.New("netmon: monitor not running")
)

// Monitor is one netlink subscription and the State built from it.
type Monitor struct {
	log    *slog.Logger
	clk    clock.Clock
	routes bool
	k      kernel

	cur      atomic.Pointer[State]
	mu       sync.Mutex // guards watchers
	watchers map[chan struct{}]Kind
	requests chan chan error
	running  atomic.Bool

	// The owner's: New's, then Run's.
	tab  *table
	gen  uint64
	sub  subscription
	subs atomic.Int32 // subscriptions made, for tests
}

// kernel is the netlink side; tests replace it with a fake.
type kernel interface {
	subscribe(routes bool) (subscription, error)
	// dump lists links and addresses, and routes and rules if routing.
	dump(links, routing bool) (*dump, error)
	Close() error
}

// subscription delivers decoded notifications; an error ends it.
type subscription interface {
	receive() ([]update, error)
	Close() error
}

type op uint8

const (
	opLink op = iota + 1
	opDelLink
	opAddr
	opDelAddr
	opRouting // a route or rule changed: list them again
)

// update is one decoded notification.
type update struct {
	op    op
	link  netlink.Link
	index int // opDelLink
	addr  netlink.Addr
}

// New subscribes, reads the whole state and publishes it; Run keeps it
// current. Close releases the sockets.
func New(cfg *Config) (*Monitor, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	k, err := openKernel(cfg)
	if err != nil {
		return nil, err
	}
	return newMonitor(cfg, k)
}

// Start makes a Monitor (New) and runs it in a goroutine until stop, which
// also closes it: for a consumer that has no daemon's Monitor to share.
func Start(cfg *Config) (m *Monitor, stop func(), err error) {
	if m, err = New(cfg); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx) // ErrRunning is impossible: m is new
	}()
	return m, func() { cancel(); <-done; m.Close() }, nil
}

func newMonitor(cfg *Config, k kernel) (*Monitor, error) {
	m := &Monitor{
		log: cfg.Logger, clk: cfg.Clock, routes: cfg.Routes, k: k,
		watchers: map[chan struct{}]Kind{},
		requests: make(chan chan error),
		tab:      newTable(),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.clk == nil {
		m.clk = clock.Real{}
	}
	if err := m.resubscribe(); err != nil {
		k.Close()
		return nil, err
	}
	return m, nil
}

// Current returns the latest State (never nil after New).
func (m *Monitor) Current() *State { return m.cur.Load() }

// Kind says what a change is about.
type Kind uint8

const (
	// Links: links, their addresses or their carrier losses.
	Links Kind = 1 << iota
	// Routes: routes or rules (only with Config.Routes).
	Routes
)

// Changes returns a channel that receives after every new State whose
// change is of a kind in of, and stop, which ends it. Notifications
// coalesce: a slow reader gets one for many States and never holds up the
// monitor or other readers.
func (m *Monitor) Changes(of Kind) (c <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.watchers[ch] = of
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		delete(m.watchers, ch)
		m.mu.Unlock()
	}
}

// Refresh reads the whole state again now and returns once it is
// published: for a caller that knows of a change no notification told yet.
func (m *Monitor) Refresh(ctx context.Context) error {
	if !m.running.Load() {
		return ErrNotRunning
	}
	reply := make(chan error, 1)
	select {
	case m.requests <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close releases the sockets; call it after Run returned (or instead).
func (m *Monitor) Close() error {
	if m.sub != nil {
		m.sub.Close()
		m.sub = nil
	}
	return m.k.Close()
}

// Backoff of a failing resubscription.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

type batch struct {
	sub subscription
	ups []update
	err error
}

// Run applies notifications until ctx ends (then it returns nil); one Run
// at a time.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	batches := make(chan batch, 16)
	stop := make(chan struct{})
	defer close(stop)
	retry := m.clk.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := minBackoff
	restart := func() {
		if err := m.resubscribe(); err != nil {
			m.log.Warn("netlink: resubscribing", "err", err, "retry_in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, maxBackoff)
			return
		}
		backoff = minBackoff
		go read(m.sub, batches, stop)
	}
	defer func() {
		if m.sub != nil {
			m.sub.Close() // ends the reader
			m.sub = nil
		}
	}()
	if m.sub == nil {
		restart()
	} else {
		go read(m.sub, batches, stop)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-batches:
			if b.sub != m.sub {
				continue // from a subscription replaced since
			}
			if b.err == nil {
				b.err = m.applyAll(b.ups, batches)
			}
			if b.err != nil {
				m.log.Warn("netlink subscription ended (events lost); resubscribing and reading everything again", "err", b.err)
				restart()
			}
		case reply := <-m.requests:
			reply <- m.resync()
		case <-retry.C():
			restart()
		}
	}
}

// read forwards a subscription's notifications until it fails or stop.
func read(s subscription, out chan<- batch, stop <-chan struct{}) {
	for {
		ups, err := s.receive()
		select {
		case out <- batch{s, ups, err}:
		case <-stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// applyAll applies ups and every batch already queued behind it, then
// publishes once. An error is a failed subscription's.
func (m *Monitor) applyAll(ups []update, more <-chan batch) error {
	kinds := m.apply(ups)
	for drained := false; !drained; {
		select {
		case b := <-more:
			switch {
			case b.sub != m.sub:
			case b.err != nil:
				return b.err
			default:
				kinds |= m.apply(b.ups)
			}
		default:
			drained = true
		}
	}
	if kinds&Routes != 0 {
		if err := m.list(false); err != nil {
			m.log.Warn("netlink: listing routes and rules", "err", err)
			kinds &^= Routes
		}
	}
	if kinds != 0 {
		m.publish(kinds)
	}
	return nil
}

// apply applies ups to the table and tells what they changed: Routes means
// the routes and rules must be listed again.
func (m *Monitor) apply(ups []update) (kinds Kind) {
	now := m.clk.Now()
	for _, u := range ups {
		switch u.op {
		case opLink:
			m.tab.setLink(u.link)
		case opDelLink:
			m.tab.delLink(u.index)
		case opAddr:
			m.tab.setAddr(u.addr, now)
		case opDelAddr:
			m.tab.delAddr(u.addr)
		case opRouting:
			if m.routes {
				kinds |= Routes
			}
			continue
		}
		kinds |= Links
	}
	return kinds
}

// resubscribe replaces the subscription and reads everything: subscribed
// first, so that no change falls between.
func (m *Monitor) resubscribe() error {
	if m.sub != nil {
		m.sub.Close()
		m.sub = nil
	}
	s, err := m.k.subscribe(m.routes)
	if err != nil {
		return fmt.Errorf("netmon: subscribing: %w", err)
	}
	m.sub = s
	m.subs.Add(1)
	if err := m.resync(); err != nil {
		s.Close()
		m.sub = nil
		return err
	}
	return nil
}

// resync lists everything and publishes it.
func (m *Monitor) resync() error {
	if err := m.list(true); err != nil {
		return err
	}
	m.publish(Links | Routes)
	return nil
}

// list lists routes and rules (and links and addresses too if all).
func (m *Monitor) list(all bool) error {
	d, err := m.k.dump(all, m.routes)
	if err != nil {
		return fmt.Errorf("netmon: listing: %w", err)
	}
	if all {
		m.tab.reset(d, m.clk.Now())
	} else {
		m.tab.routes, m.tab.rules = d.routes, d.rules
	}
	return nil
}

func (m *Monitor) publish(kinds Kind) {
	m.gen++
	m.cur.Store(m.tab.snapshot(m.gen, m.clk.Now()))
	m.mu.Lock()
	defer m.mu.Unlock()
	for ch, of := range m.watchers {
		if of&kinds == 0 {
			continue
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
