package mn

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/iface"
	"github.com/mcoad/mcoad/pkg/liveness"
)

// pathWatch is the liveness monitor of every care-of address's path and
// its glue: the watcher's snapshots give the paths, the data plane's
// counters the passive signal, NetworkManager hints a reason to probe now;
// the verdicts go to the engine (which withdraws dead paths' bindings) and
// out on the control API.
type pathWatch struct {
	d      *Daemon
	mon    *liveness.Monitor
	prober *liveness.ICMPProber

	mu   sync.Mutex
	last map[uint16]liveness.Health // by BID, as last reported
	snap iface.Snapshot             // the watcher's, for interface events
}

// newPathWatch opens the probe sockets, or returns nil with
// [mobile_node] liveness = false.
func newPathWatch(d *Daemon, cfg *config.MN) (*pathWatch, error) {
	if !cfg.MobileNode.Liveness {
		return nil, nil
	}
	var mark uint32
	if cfg.Dataplane.Backend != config.BackendNone {
		mark = cfg.Dataplane.Mark // the bypass mark: probes leave as tunnel packets do
	}
	pr, err := liveness.ListenICMP(mark)
	if err != nil {
		return nil, fmt.Errorf("path liveness: %w", err)
	}
	w := &pathWatch{d: d, prober: pr, last: map[uint16]liveness.Health{}}
	lc := liveness.Config{
		HomeAgent:   cfg.MobileNode.HomeAgent,
		HomeAddress: cfg.MobileNode.HomeAddress,
		Prober:      pr,
		Logger:      d.log.With("component", "liveness"),
		OnChange:    w.onChange,
		OnHomeLost:  w.onHomeLost,
	}
	if d.dp != nil {
		lc.Traffic = d.dp.traffic
		lc.HomeCheck = true
	}
	if w.mon, err = liveness.New(lc); err != nil {
		pr.Close()
		return nil, err
	}
	return w, nil
}

func (w *pathWatch) run(ctx context.Context) error {
	if w == nil {
		return nil
	}
	defer w.prober.Close()
	errc := make(chan error, 1)
	go func() { errc <- w.prober.Run(ctx, w.mon.HandleReply) }()
	err := w.mon.Run(ctx)
	if rerr := <-errc; rerr != nil {
		return rerr
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// setPaths takes the watcher's care-of addresses (home-link ones are
// never probed: nothing is registered from them).
func (w *pathWatch) setPaths(s *iface.Snapshot, rules []config.Interface) {
	if w == nil {
		return
	}
	var ps []liveness.Path
	for _, c := range s.CareOfs {
		if c.HomeLink || c.BID == 0 {
			continue
		}
		metered := false
		if i, ok := s.Interface(c.Iface); ok {
			metered = i.Metered
		}
		ps = append(ps, liveness.Path{BID: c.BID, Iface: c.Iface, Ifindex: c.Ifindex, CoA: c.Addr,
			Metered: metered, Timers: timersFor(rules, c.Iface)})
	}
	w.mu.Lock()
	w.snap = *s
	w.mu.Unlock()
	w.mon.SetPaths(ps)
}

// timersFor are the liveness timers of the first [[interface]] rule that
// matches name (zero: the defaults).
func timersFor(rules []config.Interface, name string) liveness.Timers {
	for _, r := range rules {
		if ok, _ := path.Match(r.Match, name); ok {
			return liveness.Timers{Interval: r.ProbeInterval, Idle: r.ProbeIdle, Multiplier: r.ProbeMultiplier, HoldDown: r.HoldDown}
		}
	}
	return liveness.Timers{}
}

func (w *pathWatch) hint(iface string) {
	if w != nil {
		w.mon.Hint(iface)
	}
}

// onChange runs on the monitor's goroutine: the engine takes the verdicts,
// and the interfaces whose path changed are announced.
func (w *pathWatch) onChange(hs []liveness.Health) {
	w.d.engine.SetHealth(hs)
	w.mu.Lock()
	var changed []liveness.Health
	seen := map[uint16]bool{}
	for _, h := range hs {
		seen[h.BID] = true
		if old, ok := w.last[h.BID]; !ok || old.State != h.State {
			changed = append(changed, h)
		}
		w.last[h.BID] = h
	}
	for bid := range w.last {
		if !seen[bid] {
			delete(w.last, bid)
		}
	}
	snap := w.snap
	w.mu.Unlock()
	for _, h := range changed {
		lvl := w.d.log.Info
		if h.State == liveness.Dead || h.State == liveness.Suspect {
			lvl = w.d.log.Warn
		}
		lvl("path "+string(h.State), "bid", h.BID, "interface", h.Interface, "coa", h.CoA,
			"rtt", h.RTT, "loss", h.Loss)
		if i, ok := snap.Interface(h.Interface); ok {
			ci := controlInterface(i)
			ci.Health = controlHealth(h)
			w.d.events.Publish(control.Event{Time: h.Since, Kind: control.EventInterface, Interface: &ci,
				Message: "path " + string(h.State)})
		}
	}
}

// onHomeLost: the home agent answers on every path but not through the
// tunnels, so it lost the bindings; register them again now. (The engine
// call waits for its goroutine: not on the monitor's.)
func (w *pathWatch) onHomeLost() {
	w.d.events.Publish(control.Event{Time: time.Now(), Kind: control.EventStatus,
		Message: "the home agent lost the bindings: registering again"})
	go func() {
		if err := w.d.engine.Refresh(); err != nil {
			w.d.log.Debug("refresh after the home agent lost the bindings", "err", err)
		}
	}()
}

// health is the latest verdict of bid's path (ok false: not watched).
func (w *pathWatch) health(bid uint16) (liveness.Health, bool) {
	if w == nil {
		return liveness.Health{}, false
	}
	for _, h := range w.mon.Health() {
		if h.BID == bid {
			return h, true
		}
	}
	return liveness.Health{}, false
}

func controlHealth(h liveness.Health) control.Health {
	return control.Health{Liveness: string(h.State), RTTMs: float64(h.RTT) / float64(time.Millisecond), Loss: h.Loss}
}

// metrics: each path's state, round trip, loss and probes.
func (w *pathWatch) metrics() []control.Metric {
	if w == nil {
		return nil
	}
	hs := w.mon.Health()
	slices.SortFunc(hs, func(a, b liveness.Health) int { return int(a.BID) - int(b.BID) })
	state := control.Metric{Name: "mcoad_path_state", Help: "Liveness of each care-of address's path (1 for its state).", Type: "gauge"}
	rtt := control.Metric{Name: "mcoad_path_rtt_seconds", Help: "Round trip of each path's last answered probe.", Type: "gauge"}
	loss := control.Metric{Name: "mcoad_path_loss_ratio", Help: "Share of each path's last 32 probes that went unanswered.", Type: "gauge"}
	sent := control.Metric{Name: "mcoad_path_probes_total", Help: "Probes sent on each path.", Type: "counter"}
	lost := control.Metric{Name: "mcoad_path_probes_lost_total", Help: "Probes on each path that went unanswered.", Type: "counter"}
	for _, h := range hs {
		l := func() map[string]string {
			return map[string]string{"bid": fmt.Sprint(h.BID), "interface": h.Interface}
		}
		for _, s := range []liveness.State{liveness.Unknown, liveness.Alive, liveness.Suspect, liveness.Dead} {
			v := 0.0
			if h.State == s {
				v = 1
			}
			ls := l()
			ls["state"] = string(s)
			state.Samples = append(state.Samples, control.Sample{Labels: ls, Value: v})
		}
		rtt.Samples = append(rtt.Samples, control.Sample{Labels: l(), Value: h.RTT.Seconds()})
		loss.Samples = append(loss.Samples, control.Sample{Labels: l(), Value: h.Loss})
		sent.Samples = append(sent.Samples, control.Sample{Labels: l(), Value: float64(h.ProbesSent)})
		lost.Samples = append(lost.Samples, control.Sample{Labels: l(), Value: float64(h.ProbesLost)})
	}
	return []control.Metric{state, rtt, loss, sent, lost}
}
