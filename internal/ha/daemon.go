package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/correspondent"
	"github.com/mcoad/mcoad/pkg/dataplane/ebpfha"
	"github.com/mcoad/mcoad/pkg/dataplane/homeagent"
	"github.com/mcoad/mcoad/pkg/dataplane/proxynd"
	"github.com/mcoad/mcoad/pkg/mhsock"
)

// Deps are what an Agent gets from outside: what the command line adds,
// and its side effects. A nil side effect is the real one, which New
// makes (and Run closes) when the configuration wants it; tests give
// fakes.
type Deps struct {
	service.Command

	// Transport: nil, a Mobility Header socket (pkg/mhsock).
	Transport Transport
	// Proxy: nil, proxy neighbour discovery on the home link (none for a
	// correspondent node alone).
	Proxy Proxy
	// Plane: nil, the home agent's tunnels unless [dataplane] backend is
	// "none" (and none for a correspondent node alone).
	Plane Plane
	// CNPlane: nil, the correspondent's route-optimised data path when
	// [correspondent] is enabled, unless backend is "none".
	CNPlane CNPlane
	// Events: nil, a new broker, closed when Run returns.
	Events *control.Events
	Clock  clock.Clock // nil: the wall clock
}

// NFTable is the nftables table of mcoa-ha's Mobility Header socket
// (cmd/mcoa-ha's -cleanup removes it).
const NFTable = "mcoa_ha_mh"

// New builds an agent for cfg: the binding caches and, for the side
// effects deps leaves nil, the real ones. Run runs it and, on return,
// closes what New opened; the saved bindings come back in Run, after the
// leftovers of a killed run are gone (the socket replaced its nftables
// table, the planes made their devices afresh).
func New(cfg *config.HA, deps Deps) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("ha: configuration required")
	}
	if !cfg.HomeAgentRole() && !cfg.Correspondent.Enabled {
		return nil, errors.New("ha: neither the home agent nor the correspondent role is configured")
	}
	prof, err := cfg.WireProfile()
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	a := &Agent{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger,
		clk:     deps.Clock,
		prof:    prof,
		cache:   bcache.New(cacheConfig(cfg, prof), deps.Clock),
		started: deps.Clock.Now(),
		reqs:    make(chan func()),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		proxied: map[netip.Addr]bool{},
		control: cfg.Control,
		beLimit: tokenBucket{rate: beRate},
	}
	if cfg.Correspondent.Enabled {
		if a.cn, err = newCNRole(cfg, deps.Clock, prof); err != nil {
			return nil, err
		}
	}
	// A correspondent node alone keeps nothing (state.go).
	if dir := cfg.HomeAgent.StateDir; dir != "" && cfg.HomeAgentRole() {
		a.persist = &persister{store: newStateStore(dir), wait: saveInterval}
	}
	if err := a.open(); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// open makes the real side effects that deps leaves nil.
func (a *Agent) open() error {
	if a.deps.Events == nil {
		a.deps.Events = control.NewEvents(0)
		a.onClose(a.deps.Events.Close)
	}
	if a.deps.Transport == nil {
		// A home agent's address sits on the home link while its
		// answers go out towards the care-of addresses: let routing
		// pick the interface.
		conn, err := mhsock.Listen(&mhsock.Config{Profile: a.prof, NFTable: NFTable, NoPin: true, Logger: a.log})
		if err != nil {
			return fmt.Errorf("mobility header socket: %w", err)
		}
		a.onClose(func() { conn.Close() })
		a.deps.Transport = conn
	}
	isHA, withPlanes := a.cfg.HomeAgentRole(), a.cfg.Dataplane.Backend != config.BackendNone
	if ifname := a.cfg.HomeAgent.Interface; a.deps.Proxy == nil && isHA && ifname != "" {
		if err := a.openProxy(ifname); err != nil {
			return err
		}
	}
	if a.deps.Plane == nil && isHA && withPlanes {
		p, err := newHomeAgent(a.cfg.Dataplane.Backend, &dataplane.HAConfig{Address: a.cfg.HomeAgent.Address, Logger: a.log})
		if err != nil {
			return fmt.Errorf("data plane: %w", err)
		}
		a.onClose(func() { p.Close() })
		a.deps.Plane, a.planeStats = NewPlane(p), p.Stats
	}
	if a.deps.CNPlane == nil && a.cn != nil && withPlanes {
		// Type 2 routing headers out, Home Address options in; those
		// without a binding get a Binding Error from the agent, which
		// exists already: no cycle to break.
		p, err := correspondent.New(&correspondent.Config{Logger: a.log, BindingError: a.bindingError})
		if err != nil {
			return fmt.Errorf("correspondent data plane: %w", err)
		}
		a.onClose(func() { p.Close() })
		a.deps.CNPlane, a.cnStats = p, p.Stats
	}
	return nil
}

// newHomeAgent is the home agent's tunnel data plane for backend: the
// eBPF programs when named, else the userspace one (it needs no
// ip6_tunnel, so "kernel" and "auto" get it too, for now).
func newHomeAgent(backend config.Backend, cfg *dataplane.HAConfig) (dataplane.HomeAgent, error) {
	if backend == config.BackendEBPF {
		return ebpfha.New(cfg)
	}
	return homeagent.New(cfg)
}

// openProxy starts proxy neighbour discovery on the home link and adopts
// a killed run's entries: Run keeps those of the bindings it restores
// and removes the others.
func (a *Agent) openProxy(ifname string) error {
	p, err := proxynd.New(ifname, a.log)
	if err != nil {
		return err
	}
	a.onClose(func() { p.Close() })
	a.deps.Proxy = p
	if left, err := p.Adopt(a.cfg.HomeAgent.Serve); err != nil {
		a.log.Warn("proxy entries of a previous run not adopted", "err", err)
	} else if len(left) > 0 {
		a.log.Info("proxy entries of a previous run adopted", "hoas", left)
	}
	return nil
}

// bindingError answers a data packet's Home Address option that no
// binding covers (the correspondent plane's callback).
func (a *Agent) bindingError(src, dst, hoa netip.Addr) {
	if _, err := a.HomeAddressOption(context.Background(), src, dst, hoa); err != nil && !errors.Is(err, ErrStopped) {
		a.log.Warn("binding error for a home address option", "src", src, "hoa", hoa, "err", err)
	}
}

func (a *Agent) onClose(fn func()) { a.closers = append(a.closers, fn) }

// close releases what New opened, last opened first.
func (a *Agent) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// Ready is closed once Run serves: the saved bindings are back.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Control is the control API mcoa-ha serves (internal/service starts it).
func (a *Agent) Control() service.Control {
	return service.Control{
		Server: control.Config{Socket: a.control.Socket, Group: a.control.Group, Name: control.DaemonHA,
			HA: a, Events: a.deps.Events, Metrics: control.MetricsFunc(a.Metrics), Logger: a.log},
		MetricsAddress: a.control.MetricsAddress,
	}
}

// logRunning says what runs, at start.
func (a *Agent) logRunning() {
	cfg := a.cfg
	if cfg.HomeAgentRole() {
		a.log.Info("mcoa-ha running as home agent", "address", cfg.HomeAgent.Address, "home_link", cfg.HomeAgent.Interface,
			"serve", cfg.HomeAgent.Serve, "bulk", cfg.HomeAgent.BulkRegistration, "profile", a.prof.Name,
			"control", cfg.Control.Socket)
		warnUnauthenticated(a.log, nil, cfg)
	}
	if cn := cfg.Correspondent; cn.Enabled {
		a.log.Info("mcoa-ha running as correspondent node", "address", cn.Addresses, "max_lifetime", cn.MaxLifetime,
			"route_optimisation", a.deps.CNPlane != nil, "profile", a.prof.Name, "control", cfg.Control.Socket)
	}
}

// warnUnauthenticated writes one WARN line when the home agent accepts
// unauthenticated Binding Updates (allow_unauthenticated, or require_auth
// = false): at start (prev nil) and when a reload turns authentication
// off.
func warnUnauthenticated(log *slog.Logger, prev, cfg *config.HA) {
	if !cfg.HomeAgentRole() || cfg.HomeAgent.RequireAuth {
		return
	}
	if prev != nil && prev.HomeAgentRole() && !prev.HomeAgent.RequireAuth {
		return
	}
	log.Warn("authentication is off (home_agent.allow_unauthenticated): binding updates for home addresses without " +
		"a [[home_agent.mn]] key are accepted unauthenticated, so anyone who reaches this home agent can take their traffic")
}
