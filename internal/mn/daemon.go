// Package mn is the mcoad daemon's core: it wires the interface watcher,
// the Binding Update List engine and the Mobility Header transport
// together, and serves the control API from their snapshots.
//
//	netlink/RA -> iface.Watcher --snapshots--> bul.Engine -> mhsock.Conn
//	mhsock.Conn.Recv --------------------------> bul.Engine.HandlePacket
//	control API -> commands into the engine and the watcher; reads are snapshots
//
// New(cfg, Deps) builds a Daemon (side effects in Deps: nil is the real
// one), Run(ctx) runs it; internal/service serves its control API and
// reloads it, as it does mcoa-ha's (internal/ha), which has the same shape.
package mn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/iface"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Deps are what a Daemon gets from outside: what the command line adds,
// and its side effects. A nil side effect is the real one, which New
// makes (and Run closes); tests give fakes.
type Deps struct {
	service.Command

	// Transport sends and receives Mobility Header packets; nil: a raw
	// socket and AF_PACKET (pkg/mhsock).
	Transport Transport
	// Netlink is where the interface watcher reads links and addresses.
	// nil: the kernel, through one netmon.Monitor that New makes for the
	// transport, the watcher and the policy engine (Router Advertisements
	// included). A fake (iface.Source) is read on hints only.
	Netlink iface.Source
	Clock   clock.Clock // nil: the wall clock
	// DBusAddress is the bus of mcoad's D-Bus service and of
	// NetworkManager (dbus.go): "" the system bus, NoDBus none.
	DBusAddress string
	// StopCause tells a restart from a stop (stopcause.go); nil: every
	// stop is a stop.
	StopCause StopCause
}

// Transport is the part of *mhsock.Conn mcoad uses.
type Transport interface {
	bul.Transport
	Recv(ctx context.Context, r *mhsock.Received) error
}

// Daemon is mcoad: New builds it, Run runs it.
type Daemon struct {
	deps    Deps
	log     *slog.Logger
	started time.Time
	prof    *proto.Profile
	ran     atomic.Bool   // Run was called
	ready   chan struct{} // closed once Run serves
	closers []func()      // what New opened, closed by Run last first

	mon     *netmon.Monitor // nil with Deps.Netlink
	conn    Transport
	watcher *iface.Watcher
	engine  *bul.Engine
	events  *control.Events
	dp      *dataPath  // dataplane.go; nil with [dataplane] backend = "none"
	paths   *pathWatch // liveness.go; nil with [mobile_node] liveness = false

	mu  sync.Mutex // guards cfg and added
	cfg *config.MN
	// added are the policies added through the control API, kept across
	// reloads (dataplane.go).
	added []config.Policy
}

// New builds mcoad for cfg: the Mobility Header transport, the interface
// watcher, the Binding Update List engine, the data path and the path
// liveness monitor, the real ones where deps leaves them nil. Run runs
// them and, on return, closes what New opened.
func New(cfg *config.MN, deps Deps) (*Daemon, error) {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	d := &Daemon{deps: deps, log: deps.Logger, cfg: cfg, started: time.Now(), ready: make(chan struct{}), conn: deps.Transport}
	if err := d.build(cfg); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) build(cfg *config.MN) error {
	prof, err := cfg.MobileNode.WireProfile()
	if err != nil {
		return err
	}
	d.prof = prof
	if err := os.MkdirAll(cfg.MobileNode.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if d.deps.Netlink == nil {
		// Routes and rules only matter to the policy engine.
		if d.mon, err = netmon.New(&netmon.Config{Routes: cfg.Dataplane.Backend != config.BackendNone, Logger: d.log}); err != nil {
			return err
		}
		d.onClose(func() { d.mon.Close() })
	}
	if d.conn == nil {
		var mark uint32
		if cfg.Dataplane.Backend == config.BackendEBPF {
			// The bypass mark: a BU pinned to its care-of address's
			// uplink must not take the encap route through that same
			// uplink that the BIDs' tables hold (tunnel devices are
			// other interfaces: the pin keeps the TUN planes' BUs out).
			mark = cfg.Dataplane.Mark
		}
		conn, err := mhsock.Listen(&mhsock.Config{
			Mark:    mark,
			Monitor: d.mon,
			Profile: prof,
			NFTable: mhsock.DefaultNFTable,
			// Back home, the home agent's answer comes to the home
			// address before it is configured.
			Local:  []netip.Addr{cfg.MobileNode.HomeAddress},
			Logger: d.log,
		})
		if err != nil {
			return fmt.Errorf("mobility header socket: %w", err)
		}
		d.onClose(func() { conn.Close() })
		d.conn = conn
	}
	wc := watcherConfig(cfg, d.log)
	wc.Monitor, wc.Source, wc.Clock = d.mon, d.deps.Netlink, d.deps.Clock
	if d.watcher, err = iface.New(wc); err != nil {
		return err
	}
	d.events = control.NewEvents(0)
	d.onClose(d.events.Close)
	engCfg, err := d.engineConfig(cfg)
	if err != nil {
		return err
	}
	if d.engine, err = bul.New(engCfg); err != nil {
		return err
	}
	if d.dp, err = newDataPath(d, cfg); err != nil { // dataplane.go
		return err
	}
	d.onClose(d.dp.close)
	if d.paths, err = newPathWatch(d, cfg); err != nil { // liveness.go
		return err
	}
	return nil
}

// engineConfig is the Binding Update List engine's configuration.
func (d *Daemon) engineConfig(cfg *config.MN) (bul.Config, error) {
	mnc := cfg.MobileNode
	engCfg := bul.Config{
		HomeAddress: mnc.HomeAddress,
		HomeAgent:   mnc.HomeAgent,
		Lifetime:    mnc.Lifetime,
		Mode:        bul.Mode(mnc.Registration),
		ReturnHome:  bul.ReturnHome(mnc.ReturnHome),
		Profile:     d.prof,
		Store:       bul.NewFileStore(mnc.StateDir, d.log),
		Transport:   d.conn,
		Clock:       d.deps.Clock,
		Logger:      d.log,
		OnChange:    d.onEngineChange,
	}
	for _, c := range cfg.Correspondents {
		if c.RouteOptimization {
			engCfg.Correspondents = append(engCfg.Correspondents, c.Address)
		}
	}
	if mr := cfg.MobileRouter; mr.Enabled {
		// NEMO (RFC 3963): every BU carries the R flag, and in explicit
		// mode the mobile network prefixes.
		engCfg.MobileRouter = &bul.MobileRouter{Prefixes: mr.Prefixes, Implicit: mr.Mode == config.NEMOImplicit}
	}
	// The data path reports its working tunnels (SetTunnels): the HoTI
	// leaves from the home address through one.
	engCfg.DataPlane = cfg.Dataplane.Backend != config.BackendNone
	if key := mnc.MNHAKey.Bytes(); len(key) > 0 {
		auth, err := bul.NewMNHAAuth(mnc.MNHASPI, key)
		if err != nil {
			return engCfg, err
		}
		engCfg.Auth = auth
	}
	return engCfg, nil
}

func (d *Daemon) onClose(fn func()) { d.closers = append(d.closers, fn) }

// close releases what New opened, last opened first.
func (d *Daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// Run serves until ctx ends, then stops cleanly: de-registers when the
// configuration says so (and the stop is not a restart), and closes what
// New opened. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return errors.New("mn: Run called twice")
	}
	defer d.close()
	// The goroutines outlive the caller's ctx until the engine has
	// stopped: de-registering on stop needs the receive loop for its BA.
	g := newGroup(context.WithoutCancel(ctx))
	// The engine outlives them all so that stop can de-register.
	engineCtx, engineCancel := context.WithCancel(context.Background())
	defer engineCancel()
	engineDone := make(chan error, 1)
	go func() { engineDone <- d.engine.Run(engineCtx) }()

	if d.mon != nil {
		g.spawn("netlink monitor", d.mon.Run)
	}
	g.spawn("interface watcher", d.watcher.Run)
	g.spawn("care-of addresses", d.forwardSnapshots)
	g.spawn("receive", d.receive)
	g.spawn("data plane", d.dp.run)
	g.spawn("path liveness", d.paths.run)
	g.spawn("d-bus", d.runDBus) // dbus.go; never fails the daemon
	cfg := d.config()
	mnc := cfg.MobileNode
	d.log.Info("mcoad running", "home_address", mnc.HomeAddress, "home_agent", mnc.HomeAgent,
		"registration", mnc.Registration, "bid_mode", mnc.BIDMode, "profile", d.prof.Name,
		"control", cfg.Control.Socket)
	close(d.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-g.errc:
	case err := <-engineDone:
		runErr = fmt.Errorf("binding update list: %w", err)
		engineDone <- err
	}
	d.stop()
	g.cancel()
	engineCancel()
	<-engineDone
	g.wg.Wait()
	d.log.Info("mcoad stopped")
	return runErr
}

// stop de-registers, or keeps the bindings (and the data plane) for the
// next process, as planStop decides (stopcause.go).
func (d *Daemon) stop() {
	plan := planStop(d.config().MobileNode.DeregisterOnStop, d.deps.StopCause, d.log)
	d.dp.keepOnClose(plan.keep) // dataplane.go: close keeps or removes
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.engine.Stop(ctx, plan.deregister); err != nil {
		d.log.Warn("stop: de-registration not acknowledged", "err", err)
	}
}

// group runs the daemon's goroutines; the first error of one ends Run.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error
}

func newGroup(parent context.Context) *group {
	ctx, cancel := context.WithCancel(parent)
	return &group{ctx: ctx, cancel: cancel, errc: make(chan error, 16)}
}

func (g *group) spawn(name string, fn func(context.Context) error) {
	g.wg.Go(func() {
		if err := fn(g.ctx); err != nil && g.ctx.Err() == nil {
			g.errc <- fmt.Errorf("%s: %w", name, err)
		}
	})
}

// Ready is closed once Run serves.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Control is the control API mcoad serves (internal/service starts it).
func (d *Daemon) Control() service.Control {
	c := d.config().Control
	return service.Control{
		Server: control.Config{Socket: c.Socket, Group: c.Group, Name: control.DaemonMN,
			MN: d, Events: d.events, Metrics: control.MetricsFunc(d.metrics), Logger: d.log},
		MetricsAddress: c.MetricsAddress,
	}
}

func watcherConfig(cfg *config.MN, log *slog.Logger) *iface.Config {
	mnc := cfg.MobileNode
	return &iface.Config{
		HomeAddress:     mnc.HomeAddress,
		HomeAgent:       mnc.HomeAgent,
		HomePrefix:      mnc.HomePrefix,
		BIDMode:         iface.BIDMode(mnc.BIDMode),
		Rules:           watchRules(cfg),
		StateDir:        mnc.StateDir,
		AllowDeprecated: mnc.AllowDeprecated,
		MeteredPriority: meteredCap(cfg.Interfaces), // dbus.go
		Logger:          log,
	}
}

// watchRules are the [[interface]] rules, after a mobile router's ingress
// interfaces: those are never care-of interfaces.
func watchRules(cfg *config.MN) []iface.Rule {
	var out []iface.Rule
	if mr := cfg.MobileRouter; mr.Enabled {
		for _, n := range mr.Ingress {
			out = append(out, iface.Rule{Match: n, Exclude: true})
		}
	}
	return append(out, rules(cfg.Interfaces)...)
}

// rules are the [[interface]] rules, or iface.DefaultRules when the file
// has none.
func rules(in []config.Interface) []iface.Rule {
	if len(in) == 0 {
		return slices.Clone(iface.DefaultRules)
	}
	out := make([]iface.Rule, 0, len(in))
	for _, r := range in {
		out = append(out, iface.Rule{Match: r.Match, Priority: r.Priority, Exclude: r.Exclude, BID: r.BID})
	}
	return out
}

// forwardSnapshots hands every care-of address set the watcher reports to
// the engine (level-triggered: the engine reconciles against the whole set).
func (d *Daemon) forwardSnapshots(ctx context.Context) error {
	var last iface.Snapshot
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-d.watcher.Updates():
			cos := make([]bul.CareOf, len(s.CareOfs))
			for i, c := range s.CareOfs {
				cos[i] = bul.CareOf(c)
			}
			if err := d.engine.SetCareOfs(cos); err != nil {
				d.log.Warn("care-of addresses refused by the engine", "err", err)
			}
			d.publishInterfaces(&last, &s)
			d.paths.setPaths(&s, d.config().Interfaces)
			d.dp.setUplinks(uplinks(&s))
			last = s
		}
	}
}

// uplinks are the interfaces the watcher may take care-of addresses from
// (neither excluded, like a mobile router's ingress, nor ignored, like
// tunnels).
func uplinks(s *iface.Snapshot) []string {
	var out []string
	for _, i := range s.Interfaces {
		if i.State != iface.StateExcluded && i.State != iface.StateIgnored {
			out = append(out, i.Name)
		}
	}
	slices.Sort(out)
	return out
}

func (d *Daemon) publishInterfaces(old, cur *iface.Snapshot) {
	for _, i := range cur.Interfaces {
		o, ok := old.Interface(i.Name)
		if ok && o.State == i.State && o.CoA == i.CoA && o.BID == i.BID && o.Priority == i.Priority && o.HomeLink == i.HomeLink {
			continue
		}
		ci := controlInterface(i)
		d.events.Publish(control.Event{Time: cur.Time, Kind: control.EventInterface, Interface: &ci})
	}
	for _, o := range old.Interfaces {
		if _, ok := cur.Interface(o.Name); !ok {
			ci := controlInterface(o)
			d.events.Publish(control.Event{Time: cur.Time, Kind: control.EventInterface, Removed: true, Interface: &ci})
		}
	}
}

// receive feeds received Mobility Header packets to the engine.
func (d *Daemon) receive(ctx context.Context) error {
	var r mhsock.Received
	for {
		if err := d.conn.Recv(ctx, &r); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// A message of a type we do not know is of no use to the engine;
		// one with a malformed BID sub-option is (it counts it and
		// ignores it: malformed-bid).
		if errors.Is(r.Err, proto.ErrUnknownType) {
			d.log.Debug("unknown mobility header type", "src", r.Packet.Src, "err", r.Err)
			continue
		}
		d.engine.HandlePacket(&r.Packet)
	}
}

func (d *Daemon) onEngineChange(ev bul.Event) {
	e := control.Event{Time: ev.Time, Kind: control.EventBinding}
	switch ev.Type {
	case bul.EventBinding, bul.EventRemoved:
		b := controlBinding(*ev.Binding)
		e.Binding = &b
		e.Removed = ev.Type == bul.EventRemoved
		d.log.Info("binding "+b.State, "bid", b.BID, "coa", b.CoA, "interface", b.Interface,
			"priority", b.Priority, "status", b.LastStatus, "removed", e.Removed)
	case bul.EventMode:
		e.Kind = control.EventStatus
		e.Message = fmt.Sprintf("registration mode %s", ev.Mode)
		if ev.Detail != "" {
			e.Message += ": " + ev.Detail
		}
		d.log.Info("registration mode", "mode", ev.Mode, "detail", ev.Detail)
	case bul.EventHome:
		e.Kind = control.EventStatus
		e.Message = fmt.Sprintf("at home: %v, home address usable: %v", ev.AtHome, ev.HomeAddressUsable)
		d.log.Info("home link", "at_home", ev.AtHome, "home_address_usable", ev.HomeAddressUsable)
	}
	d.events.Publish(e)
}
