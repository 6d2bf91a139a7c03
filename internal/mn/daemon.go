// Package mn is the mcoad daemon's core: it wires the interface watcher,
// the Binding Update List engine and the Mobility Header transport
// together, and serves the control API from their snapshots.
//
//	netlink/RA -> iface.Watcher --snapshots--> bul.Engine -> mhsock.Conn
//	mhsock.Conn.Recv --------------------------> bul.Engine.HandlePacket
//	control API -> commands into the engine and the watcher; reads are snapshots
package mn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/iface"
	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Options are what the command line adds to the configuration.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	Level      *slog.LevelVar // changed on reload
	Version    string
	// Ready is called once the daemon sends and serves (systemd notify).
	Ready func()
	// Started hands out the daemon before Ready, for SIGHUP reloads.
	Started func(*Daemon)
	// DBusAddress is the bus of mcoad's D-Bus service and of
	// NetworkManager (dbus.go): "" the system bus, NoDBus none.
	DBusAddress string
	// WatchConfig reloads the configuration when its file changes.
	WatchConfig bool
	// StopCause tells a restart from a stop (stopcause.go); nil: every
	// stop is a stop.
	StopCause StopCause
}

// Daemon is a running mcoad.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	started time.Time
	prof    *proto.Profile

	mon     *netmon.Monitor
	conn    *mhsock.Conn
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

// Run starts mcoad with cfg and serves until ctx ends, then stops cleanly:
// de-registers when the configuration says so, closes its sockets and
// removes what it installed.
func Run(ctx context.Context, cfg *config.MN, opt Options) error {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	d := &Daemon{opt: opt, log: opt.Logger, cfg: cfg, started: time.Now()}
	prof, err := cfg.MobileNode.WireProfile()
	if err != nil {
		return err
	}
	d.prof = prof
	mnc := cfg.MobileNode

	if err := os.MkdirAll(mnc.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	// One netlink monitor feeds the transport, the watcher and the policy
	// engine; routes and rules only matter to the latter.
	d.mon, err = netmon.New(&netmon.Config{Routes: cfg.Dataplane.Backend != config.BackendNone, Logger: d.log})
	if err != nil {
		return err
	}
	defer d.mon.Close()
	d.conn, err = mhsock.Listen(&mhsock.Config{
		Monitor: d.mon,
		Profile: prof,
		NFTable: "mcoad_mh",
		// Back home, the home agent's answer comes to the home address
		// before it is configured.
		Local:  []netip.Addr{mnc.HomeAddress},
		Logger: d.log,
	})
	if err != nil {
		return fmt.Errorf("mobility header socket: %w", err)
	}
	defer d.conn.Close()

	wc := watcherConfig(cfg, d.log)
	wc.Monitor = d.mon
	d.watcher, err = iface.New(wc)
	if err != nil {
		return err
	}
	d.events = control.NewEvents(0)
	defer d.events.Close()

	engCfg := bul.Config{
		HomeAddress: mnc.HomeAddress,
		HomeAgent:   mnc.HomeAgent,
		Lifetime:    mnc.Lifetime,
		Mode:        bul.Mode(mnc.Registration),
		ReturnHome:  bul.ReturnHome(mnc.ReturnHome),
		Profile:     prof,
		Store:       bul.NewFileStore(mnc.StateDir, d.log),
		Transport:   d.conn,
		Clock:       clock.Real{},
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
			return err
		}
		engCfg.Auth = auth
	}
	d.engine, err = bul.New(engCfg)
	if err != nil {
		return err
	}
	if d.dp, err = newDataPath(d, cfg); err != nil { // dataplane.go
		return err
	}
	defer d.dp.close()
	if d.paths, err = newPathWatch(d, cfg); err != nil { // liveness.go
		return err
	}

	// The goroutines outlive the caller's ctx until the engine has
	// stopped: de-registering on stop needs the receive loop for its BA.
	stopped := ctx.Done()
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	spawn := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	engineCtx, engineCancel := context.WithCancel(context.Background())
	defer engineCancel()
	engineDone := make(chan error, 1)
	// The engine outlives ctx so that Stop can de-register.
	go func() { engineDone <- d.engine.Run(engineCtx) }()

	spawn("netlink monitor", d.mon.Run)
	spawn("interface watcher", d.watcher.Run)
	spawn("care-of addresses", d.forwardSnapshots)
	spawn("receive", d.receive)
	spawn("data plane", d.dp.run)
	spawn("path liveness", d.paths.run)

	if err := os.MkdirAll(filepath.Dir(cfg.Control.Socket), 0o755); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	srv, err := control.NewServer(control.Config{
		Socket: cfg.Control.Socket, Group: cfg.Control.Group, Name: "mcoad",
		MN: d, Events: d.events, Metrics: control.MetricsFunc(d.metrics), Logger: d.log,
	})
	if err != nil {
		return err
	}
	l, err := srv.Listen()
	if err != nil {
		return err
	}
	spawn("control", func(ctx context.Context) error { return srv.Serve(ctx, l) })
	if addr := cfg.Control.MetricsAddress; addr != "" {
		ml, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
		spawn("metrics", func(ctx context.Context) error { return srv.ServeMetrics(ctx, ml) })
	}
	spawn("d-bus", d.runDBus) // dbus.go; never fails the daemon
	if opt.WatchConfig {
		spawn("configuration watch", d.watchConfig) // configwatch.go
	}

	d.log.Info("mcoad running", "home_address", mnc.HomeAddress, "home_agent", mnc.HomeAgent,
		"registration", mnc.Registration, "bid_mode", mnc.BIDMode, "profile", prof.Name,
		"control", cfg.Control.Socket)
	if opt.Started != nil {
		opt.Started(d)
	}
	if opt.Ready != nil {
		opt.Ready()
	}

	var runErr error
	select {
	case <-stopped:
	case runErr = <-errc:
	case err := <-engineDone:
		runErr = fmt.Errorf("binding update list: %w", err)
		engineDone <- err
	}
	d.mu.Lock()
	dereg := d.cfg.MobileNode.DeregisterOnStop
	d.mu.Unlock()
	plan := planStop(dereg, opt.StopCause, d.log) // stopcause.go
	d.dp.keepOnClose(plan.keep)                   // dataplane.go: the deferred close keeps or removes
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := d.engine.Stop(stopCtx, plan.deregister); err != nil {
		d.log.Warn("stop: de-registration not acknowledged", "err", err)
	}
	cancel()
	engineCancel()
	<-engineDone
	wg.Wait()
	d.log.Info("mcoad stopped")
	return runErr
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

func controlBinding(e bul.Entry) control.Binding {
	b := control.Binding{
		Peer: e.Peer, Role: e.Role, BID: e.BID, Interface: e.Interface, CoA: e.CoA,
		Priority: e.Priority, State: string(e.State), Sequence: e.Sequence,
		Lifetime: uint32(max(e.Lifetime, 0)), ExpiresIn: int64(e.ExpiresIn),
		LastStatus: e.LastStatus, LastError: e.LastError, Tunnel: e.Tunnel,
	}
	if e.Liveness != "" {
		b.Health = controlHealth(liveness.Health{State: e.Liveness, RTT: e.RTT, Loss: e.Loss})
	}
	if e.LastStatus >= 0 {
		b.LastStatusText = proto.Status(e.LastStatus).String()
	}
	return b
}

func controlInterface(i iface.Interface) control.Interface {
	return control.Interface{Name: i.Name, Index: i.Index, BID: i.BID, CoA: i.CoA, Priority: i.Priority,
		State: string(i.State), HomeLink: i.HomeLink, Metered: i.Metered}
}

// The control API (control.MNBackend).

func (d *Daemon) Status(ctx context.Context) (control.Status, error) {
	st := d.engine.Status()
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	snap, _ := d.watcher.Current()
	registered := 0
	for _, e := range d.engine.Snapshot() {
		if e.Role == "ha" && (e.State == bul.StateRegistered || e.State == bul.StateRefreshing) {
			registered++
		}
	}
	out := control.Status{
		Daemon: "mcoad", Version: d.opt.Version,
		HomeAddress: cfg.MobileNode.HomeAddress, HomeAgent: cfg.MobileNode.HomeAgent,
		Mode: string(st.Mode), BIDMode: string(cfg.MobileNode.BIDMode), Profile: d.prof.Name,
		Dataplane: d.dp.name(), AtHome: st.AtHome,
		Uptime: int64(time.Since(d.started) / time.Second),
		Counts: control.Counts{Bindings: st.Bindings, Registered: registered,
			Interfaces: len(snap.Interfaces), Policies: len(cfg.Policies)},
		DataplaneError: d.dp.lastError(), Auth: "none",
	}
	if len(cfg.MobileNode.MNHAKey.Bytes()) > 0 {
		out.Auth = "mn-ha"
	}
	if r := st.MobileRouter; r != nil {
		out.MobileRouter = &control.MobileRouter{Enabled: true, Mode: r.Mode, Prefixes: r.Prefixes,
			Ingress: cfg.MobileRouter.Ingress, Forwarding: d.dp.forwarding(), HomeAgentNoNEMO: r.HomeAgentNoNEMO,
			LastStatus: r.LastStatus, LastError: r.LastError}
		if r.LastStatus != 0 {
			out.MobileRouter.LastStatusText = proto.Status(r.LastStatus).String()
		}
	}
	return out, nil
}

func (d *Daemon) Bindings(ctx context.Context) ([]control.Binding, error) {
	es := d.engine.Snapshot()
	out := make([]control.Binding, len(es))
	for i, e := range es {
		out[i] = controlBinding(e)
		// The engine keeps the verdict; the round trip and loss of now
		// are the monitor's.
		if h, ok := d.paths.health(e.BID); ok && e.Liveness != "" && h.CoA == e.CoA {
			out[i].RTTMs, out[i].Loss = controlHealth(h).RTTMs, h.Loss
		}
	}
	return out, nil
}

func (d *Daemon) Interfaces(ctx context.Context) ([]control.Interface, error) {
	snap, _ := d.watcher.Current()
	out := make([]control.Interface, 0, len(snap.Interfaces))
	for _, i := range snap.Interfaces {
		ci := controlInterface(i)
		if h, ok := d.paths.health(i.BID); ok && i.CoA.IsValid() && h.CoA == i.CoA {
			ci.Health = controlHealth(h)
		}
		out = append(out, ci)
	}
	return out, nil
}

// Register registers bids again now (lifting a de-registration of those),
// or with no BIDs every binding (lifting every de-registration).
func (d *Daemon) Register(ctx context.Context, bids []uint16) error {
	d.watcher.Hint()
	if len(bids) > 0 {
		return engineErr(d.engine.RegisterBIDs(bids))
	}
	return engineErr(d.engine.Register())
}

func (d *Daemon) Deregister(ctx context.Context, bids []uint16, all bool) error {
	if all {
		return engineErr(d.engine.DeregisterAll())
	}
	return engineErr(d.engine.Deregister(bids))
}

// SetPriority changes the priority at its source, the watcher, whose next
// snapshot makes the engine re-register the binding.
func (d *Daemon) SetPriority(ctx context.Context, bid uint16, prio uint8) error {
	if err := d.watcher.SetBIDPriority(bid, prio); err != nil {
		return fmt.Errorf("%w: %v", control.ErrNotFound, err)
	}
	return nil
}

// Policies, AddPolicy and DeletePolicy are in dataplane.go.

// Reload re-reads the configuration file. A bad file is refused with its
// errors and the running configuration stays. What can change at run time
// does (log level, interface rules and priorities); a change of the mobile
// node's identity or of the sockets needs a restart and is reported.
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, err := config.LoadMN(d.opt.ConfigPath)
	if err != nil {
		d.log.Warn("reload refused", "err", err)
		return fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	d.mu.Lock()
	old := d.cfg
	file := cfg.Policies
	cfg.Policies, _ = mergePolicies(file, d.added) // dataplane.go
	d.mu.Unlock()
	changed := config.DiffMN(old, cfg)
	var restart, shadowed []string
	for _, c := range changed {
		switch c {
		case "log":
			if d.opt.Level != nil {
				d.opt.Level.Set(cfg.Log.Level)
			}
		case "interface":
			if err := d.watcher.SetRules(watchRules(cfg)); err != nil {
				return fmt.Errorf("%w: %v", control.ErrInvalid, err)
			}
			if snap, ok := d.watcher.Current(); ok {
				d.paths.setPaths(&snap, cfg.Interfaces) // the liveness timers
			}
		case "policy", "correspondent":
			// Listed from the new configuration; applied by the data
			// plane and the correspondent registration when they run.
		default:
			restart = append(restart, c)
		}
	}
	if len(restart) > 0 {
		// Keep the running values for what cannot change live, so that
		// the daemon says what it really does.
		cfg.MobileNode, cfg.Control, cfg.Dataplane, cfg.MobileRouter = old.MobileNode, old.Control, old.Dataplane, old.MobileRouter
		d.log.Warn("reload: these sections change only on restart", "sections", strings.Join(restart, ", "))
	}
	d.mu.Lock()
	// Again: a policy may have been added since.
	cfg.Policies, shadowed = mergePolicies(file, d.added)
	d.added = slices.DeleteFunc(slices.Clone(d.added), func(p config.Policy) bool { return slices.Contains(shadowed, p.Name) })
	d.cfg = cfg
	d.mu.Unlock()
	if len(shadowed) > 0 {
		d.log.Warn("reload: the file's policies replace those of the same name added at run time", "names", strings.Join(shadowed, ", "))
	}
	d.dp.kick() // the policies of the new file
	d.log.Info("configuration reloaded", "changed", changed)
	d.events.Publish(control.Event{Time: time.Now(), Kind: control.EventReload, Message: "reloaded: " + strings.Join(changed, ", ")})
	return nil
}

func (d *Daemon) Hint(ctx context.Context, kind, ifname string) error {
	d.log.Debug("hint", "kind", kind, "interface", ifname)
	d.watcher.Hint()
	if kind == control.HintConnectivity || kind == control.HintUp {
		// Connectivity changed (a captive portal, limited): the paths
		// tell for themselves, now.
		d.paths.hint(ifname)
	}
	return nil
}

func engineErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bul.ErrUnknownBID):
		return fmt.Errorf("%w: %v", control.ErrNotFound, err)
	case errors.Is(err, bul.ErrStopped):
		return fmt.Errorf("%w: %v", control.ErrConflict, err)
	}
	return err
}

func (d *Daemon) metrics() []control.Metric {
	st := d.engine.Status()
	c := st.Counters
	g := func(name, help, typ string, v float64) control.Metric {
		return control.Metric{Name: name, Help: help, Type: typ, Samples: []control.Sample{{Value: v}}}
	}
	ign := control.Metric{Name: "mcoad_ba_ignored_total", Help: "Binding Acknowledgements ignored, by reason.", Type: "counter"}
	for r, n := range c.BAsIgnored {
		ign.Samples = append(ign.Samples, control.Sample{Labels: map[string]string{"reason": r}, Value: float64(n)})
	}
	byState := control.Metric{Name: "mcoad_bindings", Help: "Bindings in the Binding Update List, by state.", Type: "gauge"}
	counts := map[string]int{}
	for _, e := range d.engine.Snapshot() {
		counts[string(e.State)]++
	}
	for s, n := range counts {
		byState.Samples = append(byState.Samples, control.Sample{Labels: map[string]string{"state": s}, Value: float64(n)})
	}
	return append([]control.Metric{
		byState, ign,
		g("mcoad_bu_sent_total", "Binding Updates sent.", "counter", float64(c.BUsSent)),
		g("mcoad_retransmissions_total", "Binding Updates retransmitted.", "counter", float64(c.Retransmissions)),
		g("mcoad_ba_accepted_total", "Binding Acknowledgements accepted.", "counter", float64(c.BAsAccepted)),
		g("mcoad_sequence_resyncs_total", "Sequence numbers resynchronised after status 135.", "counter", float64(c.SeqResyncs)),
		g("mcoad_brr_total", "Binding Refresh Requests received.", "counter", float64(c.BRRs)),
		g("mcoad_be_total", "Binding Errors received.", "counter", float64(c.BEs)),
		g("mcoad_send_errors_total", "Binding Updates the transport could not send.", "counter", float64(c.SendErrors)),
		g("mcoad_home_refreshes_total", "Re-registrations because the home agent had lost the bindings.", "counter", float64(c.Refreshes)),
	}, append(d.dp.metrics(), d.paths.metrics()...)...) // dataplane.go, liveness.go
}
