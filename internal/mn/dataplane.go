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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/backends"
	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/policy"
)

// healEvery is how often the data path is checked against the kernel even
// when nothing changed: a rule or route someone removed is put back.
const healEvery = 5 * time.Second

// settle is how long the data path lets a burst of changes settle before
// it applies them all at once.
const settle = 2 * time.Millisecond

// bindingList is what the data path reads the bindings from and reports its
// tunnels to: the Binding Update List engine (bul.Engine).
type bindingList interface {
	Snapshot() []bul.Entry
	Updated() <-chan struct{}
	SetTunnels([]bul.Tunnel)
}

// flowPolicy is the flow policy as the data path drives it (*policy.Engine).
type flowPolicy interface {
	Apply(ctx context.Context, st policy.State) error
	Marks() map[uint16]uint32
	Keep() error
	Close() error
}

// dataPath moves the home address's traffic: one tunnel per registered
// binding (pkg/dataplane) and the flow policy that chooses among them
// (pkg/policy). One goroutine (run) reads the engine's snapshot whenever
// it changed, applies it (level-triggered: the whole state each time, so
// the engine never waits on netlink) and reports the tunnels that work
// back to the engine.
type dataPath struct {
	d       *Daemon
	log     *slog.Logger
	bul     bindingList
	backend dataplane.Backend
	pol     flowPolicy
	clk     clock.Clock
	polCfg  *policy.Config
	hoa, ha netip.Addr
	// nets: a mobile router's networks (NEMO), nil for a mobile host;
	// fwd switches forwarding on for them (run's), fwdOn tells the others.
	nets  *policy.Networks
	fwd   *forwarding
	fwdOn atomic.Bool

	mu      sync.Mutex
	uplinks []string // the care-of interfaces, once the watcher reported them
	seenUp  bool     // uplinks is known
	kickc   chan struct{}

	// run's: the BIDs whose tunnel, routes and rules are all in place,
	// the tunnels last reported to the engine, and the route-optimised
	// bindings last applied (ro.go).
	ready     map[uint16]bool
	reported  []bul.Tunnel
	roApplied map[cnKey]netip.Addr
	// devIndex is a tunnel device's interface index (0: none).
	devIndex func(name string) int

	lastErr string       // run's: the last error logged
	errNow  atomic.Value // string: the last apply's error, "" when in order (Status)

	// A restart's adoption (keptFile): the tunnels the previous process
	// kept, wanted while their BIDs register again (under mu), until
	// keptUntil.
	kept      map[uint16]keptTunnel
	keptUntil time.Time
	stateDir  string
	dpCfg     dataplane.Config
	keep      string // stop's decision (stopPlan.keep): keep the data plane, and why
}

// newDataPath starts the data plane and the policy engine, or returns nil
// with [dataplane] backend = "none".
func newDataPath(d *Daemon, cfg *config.MN) (*dataPath, error) {
	dc := cfg.Dataplane
	if dc.Backend == config.BackendNone {
		return nil, nil
	}
	log := d.log.With("component", "dataplane")
	var nets *policy.Networks
	if mr := cfg.MobileRouter; mr.Enabled {
		if len(mr.Ingress) > 0 {
			nets = &policy.Networks{Prefixes: mr.Prefixes, Ingress: mr.Ingress}
		} else {
			log.Warn("mobile router without ingress interfaces: its networks are registered but not forwarded")
		}
	}
	dpc := &dataplane.Config{Backend: string(dc.Backend), Mark: dc.Mark, Mask: dc.Mask, TableBase: dc.TableBase, BPFDir: dc.BPFDir, Logger: log}
	if nets != nil {
		dpc.MobileNetworks = nets.Prefixes
	}
	// What the previous process kept for this one (a restart).
	kf := readKept(cfg.MobileNode.StateDir, log)
	if kf != nil && !kf.matches(cfg) {
		log.Warn("the kept data plane does not match this configuration: removing it", "file", keptPath(cfg.MobileNode.StateDir))
		kf.discard(log)
		kf = nil
	}
	if kf != nil {
		dpc.Adopt = kf.adopt(cfg)
	}
	b, err := backends.New(dpc)
	if err != nil {
		if kf != nil {
			kf.discard(log)
		}
		return nil, fmt.Errorf("data plane: %w", err)
	}
	pc := &policy.Config{Mark: dc.Mark, Mask: dc.Mask, TableBase: dc.TableBase, Logger: log, Adopt: kf != nil}
	pol, err := policy.New(pc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("flow policy: %w", err)
	}
	log.Info("data plane ready", "backend", b.Name(), "mark", fmt.Sprintf("%#x/%#x", dc.Mark, dc.Mask), "table_base", dc.TableBase)
	p := &dataPath{
		d: d, log: log, bul: d.engine, backend: b, pol: pol, polCfg: pc,
		hoa: cfg.MobileNode.HomeAddress, ha: cfg.MobileNode.HomeAgent, nets: nets,
		kickc: make(chan struct{}, 1), devIndex: deviceIndex, clk: clock.Real{},
		stateDir: cfg.MobileNode.StateDir, dpCfg: *dpc,
	}
	if kf != nil {
		// Adopted: from now on a crash leaves what any crash leaves.
		os.Remove(keptPath(p.stateDir))
		p.kept = map[uint16]keptTunnel{}
		for _, t := range kf.Tunnels {
			p.kept[t.BID] = t
		}
		p.keptUntil = p.clk.Now().Add(keptWait)
		p.kick()
	}
	if nets != nil {
		file := ""
		if dir := cfg.MobileNode.StateDir; dir != "" {
			file = filepath.Join(dir, forwardingFile)
		}
		p.fwd = newForwarding(procSysctls{}, nets.Ingress, file, log)
	}
	return p, nil
}

// setUplinks takes the care-of interfaces from the watcher's snapshot: a
// mobile router forwards nothing to or from them untunnelled, and keeps
// them hosts when it switches forwarding on.
func (p *dataPath) setUplinks(names []string) {
	if p == nil || p.nets == nil {
		return
	}
	p.mu.Lock()
	same := p.seenUp && slices.Equal(p.uplinks, names)
	p.uplinks, p.seenUp = names, true
	p.mu.Unlock()
	if !same {
		p.kick()
	}
}

// forwarding reports whether a mobile router forwards now.
func (p *dataPath) forwarding() bool { return p != nil && p.fwdOn.Load() }

// kick asks run to apply the state now (several kicks coalesce).
func (p *dataPath) kick() {
	if p == nil {
		return
	}
	select {
	case p.kickc <- struct{}{}:
	default:
	}
}

func alive(s bul.State) bool { return s == bul.StateRegistered || s == bul.StateRefreshing }

// state is what the kernel should hold for the engine's snapshot: a tunnel
// and a policy binding for every registered binding with the home agent,
// numbered by the engine's choice (Entry.TunnelBID), and after a restart
// the kept tunnels whose BIDs register again.
func (p *dataPath) state(snap []bul.Entry) ([]dataplane.Tunnel, []policy.Binding) {
	var entries []bul.Entry
	for _, e := range snap {
		if e.Role == bul.RoleHA && alive(e.State) && e.CoA.IsValid() && e.Interface != "" && e.TunnelBID != 0 {
			entries = append(entries, e)
		}
	}
	p.mu.Lock()
	entries = append(entries, p.keptPending(snap, p.clk.Now())...) // kept.go
	p.mu.Unlock()
	slices.SortFunc(entries, func(a, b bul.Entry) int { return int(a.TunnelBID) - int(b.TunnelBID) })
	var tunnels []dataplane.Tunnel
	var bindings []policy.Binding
	for _, e := range entries {
		bid := e.TunnelBID
		tunnels = append(tunnels, dataplane.Tunnel{BID: bid, Iface: e.Interface, CoA: e.CoA, HA: p.ha, HoA: p.hoa})
		bindings = append(bindings, policy.Binding{BID: bid, Interface: e.Interface, CoA: e.CoA, Priority: e.Priority})
	}
	return tunnels, bindings
}

// run applies the state whenever it may have changed, until ctx ends.
func (p *dataPath) run(ctx context.Context) error {
	if p == nil {
		return nil
	}
	go func() {
		if err := policy.Watch(ctx, p.polCfg, p.d.mon, p.kick); err != nil {
			p.log.Warn("not watching ip rules and routes: they are checked every "+healEvery.String(), "err", err)
		}
	}()
	p.loop(ctx)
	return nil
}

// loop applies the state once a change settled (the engine's list, a
// kick), healEvery after the last apply, and at the kept tunnels'
// deadline, until ctx ends.
func (p *dataPath) loop(ctx context.Context) {
	heal := p.clk.NewTimer(healEvery)
	defer heal.Stop()
	wait := p.clk.NewTimer(settle)
	wait.Stop()
	defer wait.Stop()
	var keptEnd <-chan time.Time
	if !p.keptUntil.IsZero() {
		t := p.clk.NewTimer(p.keptUntil.Sub(p.clk.Now()) + time.Millisecond)
		defer t.Stop()
		keptEnd = t.C()
	}
	settling := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.bul.Updated():
		case <-p.kickc:
		case <-heal.C():
		case <-keptEnd:
		case <-wait.C():
			settling = false
			p.apply(ctx)
			heal.Reset(healEvery)
			continue
		}
		if !settling {
			settling = true
			wait.Reset(settle)
		}
	}
}

func (p *dataPath) apply(ctx context.Context) {
	snap := p.bul.Snapshot()
	tunnels, bindings := p.state(snap)
	var errs []error
	if err := p.backend.SetTunnels(ctx, tunnels); err != nil {
		errs = append(errs, err)
	}
	if err := p.applyRO(ctx, snap, tunnels); err != nil { // ro.go
		errs = append(errs, err)
	}
	st := policy.State{HomeAddress: p.hoa, Bindings: bindings, Policies: toPolicies(p.d.config().Policies)}
	var uplinks []string
	seenUp := false
	if p.nets != nil {
		p.mu.Lock()
		uplinks, seenUp = p.uplinks, p.seenUp
		p.mu.Unlock()
		n := *p.nets
		n.Uplinks = uplinks
		st.Networks = &n
	}
	polErr := p.pol.Apply(ctx, st)
	if polErr != nil {
		errs = append(errs, polErr)
	}
	// Forwarding only once the forward chain and the guards are in place,
	// and the uplinks are known (they must keep their RAs).
	if p.fwd != nil && seenUp && (polErr == nil || p.fwd.enabled()) {
		if err := p.fwd.apply(uplinks); err != nil {
			errs = append(errs, err)
		}
		p.fwdOn.Store(p.fwd.enabled())
	}
	err := errors.Join(errs...)
	p.reportTunnels(tunnels, err)
	p.noteError(ctx, err)
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("data plane applied", "tunnels", len(tunnels), "marks", p.pol.Marks())
	}
}

// reportTunnels tells the engine which tunnels carry packets after an
// apply that ended with err: a tunnel's device exists before its routes and
// rules do, and a packet sent into it in between is lost (network
// unreachable), so after a failure only what was already complete stays.
func (p *dataPath) reportTunnels(tunnels []dataplane.Tunnel, err error) {
	ready := make(map[uint16]bool, len(tunnels))
	entrance := p.entrances()
	var out []bul.Tunnel
	for _, t := range tunnels {
		if err != nil && !p.ready[t.BID] {
			continue
		}
		ready[t.BID] = true
		if bt, ok := entrance(t.BID); ok {
			out = append(out, bt)
		}
	}
	p.ready = ready
	if !slices.Equal(out, p.reported) {
		p.reported = out
		p.bul.SetTunnels(out)
	}
}

// entrances tells how to enter each working tunnel: its device, or for a
// backend without devices (dataplane.Entrances) its BID's mark.
func (p *dataPath) entrances() func(bid uint16) (bul.Tunnel, bool) {
	eb, ok := p.backend.(dataplane.Entrances)
	if !ok {
		return func(bid uint16) (bul.Tunnel, bool) {
			name := dataplane.DeviceName(bid)
			i := p.devIndex(name)
			return bul.Tunnel{BID: bid, Ifindex: i, Name: name}, i > 0
		}
	}
	names, marks := eb.Entrances(), p.pol.Marks()
	return func(bid uint16) (bul.Tunnel, bool) {
		name, ok := names[bid]
		return bul.Tunnel{BID: bid, Name: name, Mark: marks[bid]}, ok && marks[bid] != 0
	}
}

// deviceIndex is the interface index of the device name (0: none).
func deviceIndex(name string) int {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0
	}
	return ifi.Index
}

// noteError keeps the apply's error for Status and logs a change.
func (p *dataPath) noteError(ctx context.Context, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	p.errNow.Store(msg)
	if msg != p.lastErr && ctx.Err() == nil {
		if err != nil {
			p.log.Warn("data plane", "err", err)
		} else if p.lastErr != "" {
			p.log.Info("data plane in order again")
		}
		p.lastErr = msg
	}
}

// keepOnClose makes close keep the data plane for the next process
// (why: stopPlan.keep; "" removes it).
func (p *dataPath) keepOnClose(why string) {
	if p != nil {
		p.keep = why
	}
}

// close removes the tunnels, the home address, the rules and the table,
// or keeps them for the next process (keepOnClose).
func (p *dataPath) close() {
	if p == nil {
		return
	}
	// Forwarding off first, while the forward chain still guards.
	if err := p.fwd.restore(); err != nil {
		p.log.Warn("forwarding settings", "err", err)
	}
	p.fwdOn.Store(false)
	if p.keep != "" && p.keepAll() {
		return
	}
	if err := p.pol.Close(); err != nil {
		p.log.Warn("flow policy cleanup", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.backend.SetTunnels(ctx, nil); err != nil {
		p.log.Warn("data plane cleanup", "err", err)
	}
	if err := p.backend.Close(); err != nil {
		p.log.Warn("data plane close", "err", err)
	}
}

// traffic is every tunnel's packet counters, for path liveness.
func (p *dataPath) traffic() map[uint16]liveness.Traffic {
	st := p.backend.Stats()
	out := make(map[uint16]liveness.Traffic, len(st.Tunnels))
	for bid, c := range st.Tunnels {
		out[bid] = liveness.Traffic{TxPackets: c.TxPackets, RxPackets: c.RxPackets}
	}
	return out
}

// lastError is why the data plane fails now ("" when in order).
func (p *dataPath) lastError() string {
	if p == nil {
		return ""
	}
	s, _ := p.errNow.Load().(string)
	return s
}

// name is the backend in use ("none" without a data plane).
func (p *dataPath) name() string {
	if p == nil {
		return string(config.BackendNone)
	}
	return p.backend.Name()
}

// metrics are the tunnels' counters and the drops, by reason.
func (p *dataPath) metrics() []control.Metric {
	if p == nil {
		return nil
	}
	st := p.backend.Stats()
	bid := func(b uint16) map[string]string { return map[string]string{"bid": strconv.Itoa(int(b))} }
	tx := control.Metric{Name: "mcoad_tunnel_tx_packets_total", Help: "Packets sent through a BID's tunnel.", Type: "counter"}
	rx := control.Metric{Name: "mcoad_tunnel_rx_packets_total", Help: "Packets received through a BID's tunnel.", Type: "counter"}
	txb := control.Metric{Name: "mcoad_tunnel_tx_bytes_total", Help: "Bytes (inner packets) sent through a BID's tunnel.", Type: "counter"}
	rxb := control.Metric{Name: "mcoad_tunnel_rx_bytes_total", Help: "Bytes (inner packets) received through a BID's tunnel.", Type: "counter"}
	txe := control.Metric{Name: "mcoad_tunnel_tx_errors_total", Help: "Packets a BID's tunnel could not send.", Type: "counter"}
	bids := make([]uint16, 0, len(st.Tunnels))
	for b := range st.Tunnels {
		bids = append(bids, b)
	}
	slices.Sort(bids)
	for _, b := range bids {
		c := st.Tunnels[b]
		tx.Samples = append(tx.Samples, control.Sample{Labels: bid(b), Value: float64(c.TxPackets)})
		rx.Samples = append(rx.Samples, control.Sample{Labels: bid(b), Value: float64(c.RxPackets)})
		txb.Samples = append(txb.Samples, control.Sample{Labels: bid(b), Value: float64(c.TxBytes)})
		rxb.Samples = append(rxb.Samples, control.Sample{Labels: bid(b), Value: float64(c.RxBytes)})
		txe.Samples = append(txe.Samples, control.Sample{Labels: bid(b), Value: float64(c.TxErrors)})
	}
	dr := st.Drops
	drops := control.Metric{Name: "mcoad_dataplane_drops_total", Help: "Packets the data plane dropped, by reason.", Type: "counter"}
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"malformed", dr.Malformed}, {"not_home", dr.NotHome}, {"unknown", dr.Unknown}, {"spoofed", dr.Spoofed}, {"too_big", dr.TooBig}, {"write_error", dr.WriteErr}} {
		drops.Samples = append(drops.Samples, control.Sample{Labels: map[string]string{"reason": r.reason}, Value: float64(r.n)})
	}
	return append([]control.Metric{tx, rx, txb, rxb, txe, drops}, p.roMetrics()...)
}

// The control API's flow policies: the policies of the configuration file
// plus those added at run time. A reload keeps the added ones (Daemon.added,
// reloadPolicies); a restart does not.

func toControlPolicy(p config.Policy) control.Policy {
	t := p.Text()
	return control.Policy{Name: t.Name, Protocol: t.Protocol, SrcPrefix: t.SrcPrefix, SrcPort: t.SrcPort, DstPort: t.DstPort,
		DstPrefix: t.DstPrefix, User: t.User, Cgroup: t.Cgroup, Prefer: t.Prefer}
}

func (d *Daemon) Policies(ctx context.Context) ([]control.Policy, error) {
	cfg := d.config()
	out := make([]control.Policy, 0, len(cfg.Policies))
	for _, p := range cfg.Policies {
		out = append(out, toControlPolicy(p))
	}
	return out, nil
}

// AddPolicy appends a policy (the last to match); its user and cgroup must
// exist. A name in use is refused: delete it first.
func (d *Daemon) AddPolicy(ctx context.Context, cp control.Policy) error {
	p, err := config.ParsePolicy(config.PolicyText{Name: cp.Name, Protocol: cp.Protocol, SrcPrefix: cp.SrcPrefix,
		SrcPort: cp.SrcPort, DstPort: cp.DstPort, DstPrefix: cp.DstPrefix, User: cp.User, Cgroup: cp.Cgroup, Prefer: cp.Prefer})
	if err != nil {
		return fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	if err := policy.Check(toPolicy(p)); err != nil {
		return fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	d.mu.Lock()
	if slices.ContainsFunc(d.cfg.Policies, func(q config.Policy) bool { return q.Name == p.Name }) {
		d.mu.Unlock()
		return fmt.Errorf("%w: a policy named %q exists (delete it first)", control.ErrConflict, p.Name)
	}
	cfg := *d.cfg // the old one may be in use: copy on write
	cfg.Policies = append(slices.Clone(cfg.Policies), p)
	d.cfg = &cfg
	d.added = append(slices.Clone(d.added), p)
	d.mu.Unlock()
	d.dp.kick()
	d.log.Info("policy added", "name", p.Name, "prefer", toControlPolicy(p).Prefer)
	out := toControlPolicy(p)
	d.events.Publish(control.Event{Time: time.Now(), Kind: control.EventPolicy, Policy: &out})
	return nil
}

func (d *Daemon) DeletePolicy(ctx context.Context, name string) error {
	d.mu.Lock()
	i := slices.IndexFunc(d.cfg.Policies, func(q config.Policy) bool { return q.Name == name })
	if i < 0 {
		d.mu.Unlock()
		return fmt.Errorf("%w: no policy named %q", control.ErrNotFound, name)
	}
	old := d.cfg.Policies[i]
	cfg := *d.cfg
	cfg.Policies = slices.Delete(slices.Clone(cfg.Policies), i, i+1)
	d.cfg = &cfg
	d.added = slices.DeleteFunc(slices.Clone(d.added), func(q config.Policy) bool { return q.Name == name })
	d.mu.Unlock()
	d.dp.kick()
	d.log.Info("policy deleted", "name", name)
	out := toControlPolicy(old)
	d.events.Publish(control.Event{Time: time.Now(), Kind: control.EventPolicy, Removed: true, Policy: &out})
	return nil
}

// mergePolicies is a reload's policy list: the file's, then those added at
// run time, so that a reload does not drop what a person or a script set
// with `mcoactl policy add`. The file's policy of the same name wins; its
// name is returned in shadowed.
func mergePolicies(file, added []config.Policy) (merged []config.Policy, shadowed []string) {
	merged = slices.Clone(file)
	for _, p := range added {
		if slices.ContainsFunc(file, func(q config.Policy) bool { return q.Name == p.Name }) {
			shadowed = append(shadowed, p.Name)
			continue
		}
		merged = append(merged, p)
	}
	return merged, shadowed
}
