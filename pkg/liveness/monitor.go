package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
)

// Config configures a Monitor.
type Config struct {
	HomeAgent   netip.Addr // probes go to its address
	HomeAddress netip.Addr // the home check's source
	Prober      Prober     // required
	// Traffic returns every tunnel's counters by BID; nil: no passive
	// signal (no data plane), so paths are only probed.
	Traffic func() map[uint16]Traffic
	// HomeCheck: tunnels carry the home address's traffic, so an echo
	// from it tells whether the home agent still holds the bindings.
	HomeCheck bool
	Clock     clock.Clock
	Logger    *slog.Logger
	// OnChange is called on the monitor's goroutine with every path's
	// health when a path's State changes. It must not block.
	OnChange func([]Health)
	// OnHomeLost is called on the monitor's goroutine when the home agent
	// answers on its address from every live path but not through the
	// tunnels: it lost the bindings (a restart without its state). It
	// must not block.
	OnHomeLost func()
}

// Monitor watches the paths. Run owns its state; the other methods are
// safe from any goroutine and never block.
type Monitor struct {
	cfg Config
	c   *detector
	log *slog.Logger

	mu        sync.Mutex
	nextPaths []Path
	dirty     bool
	hints     []string
	kick      chan struct{}

	replies chan reply
	view    atomic.Pointer[[]Health]
	started atomic.Bool
}

type reply struct {
	seq uint16
	at  time.Time
}

// replyQueue answers may wait for the monitor; more are dropped (the
// probe counts as lost: the verdict needs Multiplier of those in a row).
const replyQueue = 256

// New checks cfg and returns a Monitor; call Run to start it.
func New(cfg Config) (*Monitor, error) {
	if !cfg.HomeAgent.Is6() || cfg.HomeAgent.Is4In6() {
		return nil, fmt.Errorf("%w: home agent %v is not an IPv6 address", ErrInvalidConfig, cfg.HomeAgent)
	}
	if cfg.HomeCheck && (!cfg.HomeAddress.Is6() || cfg.HomeAddress.Is4In6()) {
		return nil, fmt.Errorf("%w: home address %v is not an IPv6 address", ErrInvalidConfig, cfg.HomeAddress)
	}
	if cfg.Prober == nil {
		return nil, fmt.Errorf("%w: no prober", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		cfg:     cfg,
		log:     cfg.Logger,
		c:       newDetector(cfg.HomeAgent, cfg.HomeAddress, uint16(rand.Uint32()), cfg.Prober, cfg.HomeCheck),
		kick:    make(chan struct{}, 1),
		replies: make(chan reply, replyQueue),
	}
	var lastErr string
	m.c.sendError = func(p *Path, err error) {
		// Logged once per distinct error: a dead interface fails every probe.
		if s := err.Error(); s != lastErr {
			lastErr = s
			if p != nil {
				m.log.Debug("probe not sent", "bid", p.BID, "interface", p.Iface, "err", err)
			} else {
				m.log.Debug("home check not sent", "err", err)
			}
		}
	}
	empty := []Health{}
	m.view.Store(&empty)
	return m, nil
}

// ID is the ICMPv6 echo identifier of this monitor's probes.
func (m *Monitor) ID() uint16 { return m.c.id }

// SetPaths replaces the paths to watch (level-triggered: the latest set
// wins).
func (m *Monitor) SetPaths(ps []Path) {
	m.mu.Lock()
	m.nextPaths, m.dirty = slices.Clone(ps), true
	m.mu.Unlock()
	m.poke()
}

// Hint asks for iface's path to be checked now ("": every path), e.g.
// when NetworkManager finds a captive portal or limited connectivity.
func (m *Monitor) Hint(iface string) {
	m.mu.Lock()
	if len(m.hints) < 64 {
		m.hints = append(m.hints, iface)
	}
	m.mu.Unlock()
	m.poke()
}

// HandleReply takes an ICMPv6 echo reply received at at; replies with
// another identifier are ignored.
func (m *Monitor) HandleReply(id, seq uint16, at time.Time) {
	if id != m.c.id {
		return
	}
	select {
	case m.replies <- reply{seq: seq, at: at}:
	default:
	}
}

// Health returns every path's verdict (a copy).
func (m *Monitor) Health() []Health { return slices.Clone(*m.view.Load()) }

func (m *Monitor) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("liveness: Run called twice")
	}
	clk := m.cfg.Clock
	timer := clk.NewTimer(time.Hour)
	defer timer.Stop()
	var nextPoll time.Time
	for {
		now := clk.Now()
		m.mu.Lock()
		ps, dirty, hints := m.nextPaths, m.dirty, m.hints
		m.nextPaths, m.dirty, m.hints = nil, false, nil
		m.mu.Unlock()
		if dirty {
			m.c.setPaths(ps, now)
			nextPoll = now // a new tunnel's counters: take them at once
		}
		for _, h := range hints {
			m.c.hint(h)
		}
	drain:
		for {
			select {
			case r := <-m.replies:
				m.c.reply(r.seq, r.at)
			default:
				break drain
			}
		}
		if m.cfg.Traffic != nil && !now.Before(nextPoll) {
			m.c.traffic(m.cfg.Traffic(), now)
			nextPoll = now.Add(m.c.pollEvery(now))
		}
		m.c.tick(now)
		m.publish()

		wake := m.c.next(now)
		if m.cfg.Traffic != nil && len(m.c.paths) > 0 && (wake.IsZero() || nextPoll.Before(wake)) {
			wake = nextPoll
		}
		if wake.IsZero() {
			wake = now.Add(time.Hour)
		}
		timer.Reset(max(wake.Sub(clk.Now()), 0))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C():
		case <-m.kick:
		case r := <-m.replies:
			m.c.reply(r.seq, r.at)
		}
	}
}

func (m *Monitor) publish() {
	fx := m.c.take()
	if fx.changed {
		h := m.c.health()
		m.view.Store(&h)
		for _, x := range h {
			m.log.Debug("path", "bid", x.BID, "interface", x.Interface, "state", x.State, "rtt", x.RTT, "loss", x.Loss)
		}
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(slices.Clone(h))
		}
	} else {
		// RTT and loss change with every probe: the view follows them.
		h := m.c.health()
		m.view.Store(&h)
	}
	if fx.homeLost {
		m.log.Info("the home agent answers on its address but not through the tunnels: it lost the bindings")
		if m.cfg.OnHomeLost != nil {
			m.cfg.OnHomeLost()
		}
	}
}
