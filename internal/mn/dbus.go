package mn

import (
	"context"
	"maps"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/nm"
)

// NoDBus as Options.DBusAddress keeps mcoad off D-Bus (the lab, tests).
const NoDBus = "none"

// dbusRetry bounds the wait between attempts to reach the bus.
const (
	dbusRetryMin = 5 * time.Second
	dbusRetryMax = time.Minute
)

// runDBus offers mcoad's D-Bus service and follows NetworkManager while a
// bus is reachable, connecting again when the bus goes away. D-Bus is an
// extra: without it mcoad works as before, says so once, and this never
// fails the daemon.
func (d *Daemon) runDBus(ctx context.Context) error {
	if d.deps.DBusAddress == NoDBus {
		return nil
	}
	g := &meteredGlue{d: d, said: map[string]bool{}, applied: map[string]bool{}}
	// A reload may change which interfaces lose priority when metered.
	sub := d.events.Subscribe()
	defer sub.Close()
	go func() {
		for {
			ev, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if ev.Kind == control.EventReload || ev.Kind == control.EventLost {
				g.apply()
			}
		}
	}()

	wait := dbusRetryMin
	connected := false
	for {
		err := d.dbusSession(ctx, g, func() { connected, wait = true, dbusRetryMin })
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			d.log.Warn("D-Bus connection lost; connecting again", "err", err)
			connected = false
		} else if wait == dbusRetryMin {
			d.log.Info("D-Bus not available; mcoad runs without it (control socket only)", "err", err)
		} else {
			d.log.Debug("D-Bus still not available", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, dbusRetryMax)
	}
}

// dbusSession is one connection to the bus: the service and the
// NetworkManager watcher on it, until ctx ends or the connection closes.
func (d *Daemon) dbusSession(ctx context.Context, g *meteredGlue, up func()) error {
	conn, err := nm.Connect(d.deps.DBusAddress)
	if err != nil {
		return err
	}
	defer conn.Close()
	up()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := nm.Serve(ctx, nm.ServiceConfig{Conn: conn, Backend: d, Events: d.events, Logger: d.log})
		if err != nil && ctx.Err() == nil && conn.Connected() {
			// Typically the policy file is not installed, or another
			// mcoad runs: following NetworkManager still works.
			d.log.Warn("D-Bus service not offered", "name", nm.BusName, "err", err)
		}
	}()
	defer wg.Wait()

	w, err := nm.NewWatcher(nm.WatcherConfig{
		Conn:    conn,
		Hint:    func(kind, iface string) { d.Hint(ctx, kind, iface) },
		Metered: g.set,
		Logger:  d.log,
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// meteredGlue turns what NetworkManager says about metered links into the
// interface watcher's metered marks, for the interfaces whose [[interface]]
// rule gives a lower priority when metered (metered_priority < priority).
type meteredGlue struct {
	d *Daemon

	mu      sync.Mutex
	said    map[string]bool // NetworkManager: metered interfaces
	applied map[string]bool // marked metered in the watcher
}

func (g *meteredGlue) set(iface string, metered bool) {
	g.mu.Lock()
	if metered {
		g.said[iface] = true
	} else {
		delete(g.said, iface)
	}
	g.mu.Unlock()
	g.apply()
}

// apply brings the watcher's marks in line with what NetworkManager said
// and the configuration now in force (level-triggered: after a metered
// change and after a reload alike).
func (g *meteredGlue) apply() {
	rules := g.d.config().Interfaces
	g.mu.Lock()
	defer g.mu.Unlock()
	names := slices.Sorted(maps.Keys(g.said))
	for n := range g.applied {
		if !g.said[n] {
			names = append(names, n)
		}
	}
	for _, n := range names {
		want := g.said[n] && lowersWhenMetered(rules, n)
		if want == g.applied[n] {
			continue
		}
		if want {
			g.applied[n] = true
		} else {
			delete(g.applied, n)
		}
		g.d.log.Info("metered link", "interface", n, "metered", want)
		g.d.watcher.SetMetered(n, want)
	}
}

// lowersWhenMetered reports whether the first rule matching iface gives
// it a lower priority while metered.
func lowersWhenMetered(rules []config.Interface, iface string) bool {
	for _, r := range rules {
		if ok, _ := path.Match(r.Match, iface); ok {
			return !r.Exclude && r.MeteredPriority < r.Priority
		}
	}
	return false
}

// meteredCap is the priority metered links are capped at: the interface
// watcher has one cap for all, the lowest metered_priority any rule asks
// for (0 when none does, which the watcher reads as its default).
func meteredCap(rules []config.Interface) uint8 {
	var c uint8
	set := false
	for _, r := range rules {
		if !r.Exclude && r.MeteredPriority < r.Priority && (!set || r.MeteredPriority < c) {
			c, set = r.MeteredPriority, true
		}
	}
	return c
}

// config returns the configuration in force.
func (d *Daemon) config() *config.MN {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}
