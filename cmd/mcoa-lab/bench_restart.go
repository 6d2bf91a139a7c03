package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// benchMNRestarts is how many times mnRestart restarts mcoad.
const benchMNRestarts = 10

// restartFigure: the probe stream's gap while mcoad restarts keeping its
// bindings (what `systemctl restart mcoad` and an upgrade's try-restart
// do), and what the home agent saw meanwhile.
type restartFigure struct {
	gap     stats
	lost    int // probes lost over all restarts
	removed int // bindings the home agent's cache lost (de-registrations, expiries)
	stopped stats
}

// mnRestart restarts the lab's mcoad benchMNRestarts times with
// deregister_on_stop = false (the lab's mcoad runs without systemd; a
// systemd restart takes the same path) while the 1 ms probe stream CN ->
// home address runs, and measures the stream's gap around each restart.
// mcoad is left running with the lab's default configuration.
func (b *bench) mnRestart(ctx context.Context) (f restartFigure, err error) {
	b.logf("mcoad restarted keeping its bindings, %d times, 1 ms probes CN -> HoA", benchMNRestarts)
	if err := b.startMN(ctx, lab.MNConfig{KeepOnStop: true}, len(benchIfaces)); err != nil {
		return f, err
	}
	defer func() {
		if rerr := b.startMN(ctx, lab.MNConfig{}, len(benchIfaces)); err == nil {
			err = rerr
		}
	}()
	bids, err := b.bids(ctx)
	if err != nil {
		return f, err
	}
	if err := b.allAlive(ctx, 20*time.Second); err != nil {
		return f, err
	}
	if b.haEv == nil {
		if b.haEv, err = follow(ctx, b.ha.Client); err != nil {
			return f, err
		}
	}
	probe, err := b.probeHoA()
	if err != nil {
		return f, err
	}
	defer probe.Close()
	if err := b.ridesOn(ctx, bids, "eth0", 15*time.Second); err != nil {
		return f, err
	}
	for i := range benchMNRestarts {
		if err := b.probesFlow(ctx, probe); err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		drainRemoved(b.haEv) // what came before is not this restart's
		if b.mnEv != nil {
			b.mnEv.stream.Close()
			b.mnEv = nil
		}
		t0 := time.Now()
		if err := b.mn.Stop(); err != nil {
			return f, err
		}
		stopped := time.Since(t0)
		if err := b.mn.Start(ctx); err != nil {
			return f, err
		}
		if err := b.probesFlow(ctx, probe); err != nil {
			return f, fmt.Errorf("restart %d: the probes do not come back: %w", i+1, err)
		}
		g, lost := probe.Outage(t0, 10*time.Second)
		removed := drainRemoved(b.haEv)
		f.gap, f.stopped = append(f.gap, g), append(f.stopped, stopped)
		f.lost += lost
		f.removed += removed
		b.logf("  restart %d: old process gone after %s, probe gap %s (%d lost), %d bindings left the HA's cache",
			i+1, fmtDur(stopped), fmtDur(g), lost, removed)
		if b.mnEv, err = follow(ctx, b.mn.Client); err != nil {
			return f, err
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return f, err
		}
	}
	return f, nil
}

// drainRemoved empties e's buffered events and counts the cache entries
// removed among them.
func drainRemoved(e *events) int {
	n := 0
	for {
		select {
		case ev, ok := <-e.ch:
			if !ok {
				return n
			}
			if ev.Kind == control.EventCache && ev.Removed {
				n++
			}
		default:
			return n
		}
	}
}

// markdown is the figure's row of the lab table.
func (f restartFigure) markdown(md *strings.Builder) {
	if len(f.gap) == 0 {
		return
	}
	fmt.Fprintf(md, "| mcoad restart keeping its bindings (`systemctl restart`, an upgrade's try-restart; the lab: SIGTERM with `deregister_on_stop = false`, then a new process): gap in the 1 ms probe stream CN → home address (p99 column: max; %d probes lost in all, %d bindings left the HA's cache; the old process took %s (p50) to exit) | %s | %s | %d | target p50 < 100 ms | %s |\n",
		f.lost, f.removed, fmtDur(f.stopped.pct(50)), fmtDur(f.gap.pct(50)), fmtDur(f.gap.pct(100)), len(f.gap), ratio(float64(f.gap.pct(50)), float64(100*time.Millisecond)))
}
