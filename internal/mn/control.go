package mn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/iface"
	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/proto"
)

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
		if e.Role == bul.RoleHA && (e.State == bul.StateRegistered || e.State == bul.StateRefreshing) {
			registered++
		}
	}
	out := control.Status{
		Daemon: "mcoad", Version: d.deps.Version,
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
	cfg, err := config.LoadMN(d.deps.ConfigPath)
	if err != nil {
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
			if d.deps.Level != nil {
				d.deps.Level.Set(cfg.Log.Level)
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
