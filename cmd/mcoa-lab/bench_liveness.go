package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// The path liveness figures of `mcoa-lab bench`: the gap a black hole on
// the active path costs the 1 ms probe stream (the path dies upstream,
// its link keeps carrier and address, so only mcoad's liveness can see
// it); with the helpers the other liveness sections share: how long the
// home address is unreachable after mcoa-ha is killed and started again
// (bench_harestart.go), and what the liveness probes of an idle path cost
// on the wire (bench_probes.go).

// benchIfaces are the MN's access interfaces, in priority order.
var benchIfaces = lab.MNIfaces

// bids returns the BID of each of the MN's interfaces.
func (b *bench) bids(ctx context.Context) (map[string]uint16, error) {
	is, err := b.mn.Client.Interfaces(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]uint16{}
	for _, i := range is {
		if i.BID != 0 {
			out[i.Name] = i.BID
		}
	}
	for _, n := range benchIfaces {
		if out[n] == 0 {
			return nil, fmt.Errorf("mcoad gives %s no BID: %+v", n, is)
		}
	}
	return out, nil
}

// tunnelRx is the MN's count of packets received through each interface's
// tunnel.
func (b *bench) tunnelRx(ctx context.Context, bids map[string]uint16) (map[string]float64, error) {
	m, err := b.mn.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, n := range benchIfaces {
		out[n] = m[fmt.Sprintf(`mcoad_tunnel_rx_packets_total{bid="%d"}`, bids[n])]
	}
	return out, nil
}

// ridesOn waits until the CN -> HoA stream arrives through want's tunnel
// alone: over 100 ms, at least 50 packets through it and at most 5
// through each other one.
func (b *bench) ridesOn(ctx context.Context, bids map[string]uint16, want string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last map[string]float64
	_, err := lab.Poll(wctx, 0, func(ctx context.Context) (bool, error) {
		a, err := b.tunnelRx(ctx, bids)
		if err != nil {
			return false, err
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return false, err
		}
		c, err := b.tunnelRx(ctx, bids)
		if err != nil {
			return false, err
		}
		last = map[string]float64{}
		for _, n := range benchIfaces {
			last[n] = c[n] - a[n]
		}
		if last[want] < 50 {
			return false, nil
		}
		for _, n := range benchIfaces {
			if n != want && last[n] > 5 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("CN -> HoA stream through %s alone (last 100 ms, packets per tunnel: %v): %w", want, last, err)
	}
	return nil
}

// waitPath waits until mcoad lists iface's home binding in state with
// liveness live.
func (b *bench) waitPath(ctx context.Context, iface, state, live string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var seen []string
	_, err := lab.Poll(wctx, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
		bs, err := b.mn.Client.Bindings(ctx)
		if err != nil {
			return false, err
		}
		seen = seen[:0]
		for _, x := range bs {
			if x.Role != control.RoleHA {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %s/%s", x.Interface, x.State, x.Liveness))
			if x.Interface == iface && x.State == state && x.Liveness == live {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s's binding %s and %s (bindings: %s): %w", iface, state, live, strings.Join(seen, ", "), err)
	}
	return nil
}

// allAlive waits until every interface's home binding is registered and
// its path alive.
func (b *bench) allAlive(ctx context.Context, timeout time.Duration) error {
	for _, n := range benchIfaces {
		if err := b.waitPath(ctx, n, "registered", "alive", timeout); err != nil {
			return err
		}
	}
	return nil
}

// blackholeFigure: per run, the probe stream's gap, the time from the
// fault to eth0's binding leaving the HA's cache, the time from clearing
// the fault to eth0 registered again and the stream's gap when it moves
// back to eth0.
type blackholeFigure struct {
	gap, detect, back, backGap stats
}

// blackhole black-holes ar1 (eth0's access router: eth0 keeps carrier,
// address and Router Advertisements) while the 1 ms CN -> HoA stream
// rides eth0, cuts times, and measures the stream's gap until mcoad's
// path liveness has withdrawn eth0's binding and the stream arrives
// through wlan0; then clears the fault and waits for eth0 to be alive,
// registered and carrying the stream again.
//
// mcoad is started again between runs: a path that dies again within a
// minute of coming back doubles its hold-down (flap damping, up to 64
// times hold_down), which one run a second after the other would turn
// into minutes of waiting, and the figure is the outage of one black
// hole. Before each black hole the stream has been riding eth0 for a
// second (and no BU went for as long: MAX_UPDATE_RATE).
func (b *bench) blackhole(ctx context.Context) (f blackholeFigure, err error) {
	b.logf("black hole on ar1 (eth0 keeps its carrier), %d runs, 1 ms probes CN -> HoA", b.o.cuts)
	bids, err := b.bids(ctx)
	if err != nil {
		return f, err
	}
	probe, err := b.probeHoA()
	if err != nil {
		return f, err
	}
	defer probe.Close()
	defer b.lab.Fault(lab.AR1, lab.Fault{}) // on an early return
	for i := range b.o.cuts {
		if i > 0 {
			if err := b.startMN(ctx, lab.MNConfig{}, len(benchIfaces)); err != nil {
				return f, fmt.Errorf("black hole %d: %w", i+1, err)
			}
			if bids, err = b.bids(ctx); err != nil {
				return f, err
			}
		}
		if err := b.allAlive(ctx, 15*time.Second); err != nil {
			return f, fmt.Errorf("black hole %d: %w", i+1, err)
		}
		if err := b.ridesOn(ctx, bids, "eth0", 15*time.Second); err != nil {
			return f, fmt.Errorf("black hole %d: %w", i+1, err)
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return f, err
		}
		t0 := time.Now()
		if err := b.lab.Fault(lab.AR1, lab.Fault{Kind: lab.FaultBlackhole}); err != nil {
			return f, err
		}
		ev, err := b.removedAfter(ctx, 10*time.Second, fmt.Sprintf("black hole %d: eth0's binding removed from the HA's cache", i+1), bids["eth0"], t0)
		if err != nil {
			return f, err
		}
		f.detect = append(f.detect, ev.Time.Sub(t0))
		if err := b.ridesOn(ctx, bids, "wlan0", 10*time.Second); err != nil {
			return f, fmt.Errorf("black hole %d: %w", i+1, err)
		}
		if err := b.waitPath(ctx, "eth0", "down", "dead", 5*time.Second); err != nil {
			return f, fmt.Errorf("black hole %d: %w", i+1, err)
		}
		g, _ := probe.Outage(t0, time.Second)
		f.gap = append(f.gap, g)

		t1 := time.Now()
		if err := b.lab.Fault(lab.AR1, lab.Fault{}); err != nil {
			return f, err
		}
		ev, err = b.registeredAfter(ctx, 15*time.Second, fmt.Sprintf("black hole %d cleared: eth0 registered again", i+1), bids["eth0"], t1)
		if err != nil {
			return f, err
		}
		f.back = append(f.back, ev.Time.Sub(t1))
		if err := b.waitPath(ctx, "eth0", "registered", "alive", 10*time.Second); err != nil {
			return f, fmt.Errorf("black hole %d cleared: %w", i+1, err)
		}
		if err := b.ridesOn(ctx, bids, "eth0", 10*time.Second); err != nil {
			return f, fmt.Errorf("black hole %d cleared: %w", i+1, err)
		}
		g, _ = probe.Outage(t1, time.Since(t1))
		f.backGap = append(f.backGap, g)
		b.logf("  black hole %d: gap %s, binding removed at the HA after %s; cleared: eth0 registered after %s, gap %s",
			i+1, fmtDur(f.gap[i]), fmtDur(f.detect[i]), fmtDur(f.back[i]), fmtDur(g))
	}
	// The next sections find mcoad as startMN leaves it.
	if err := b.startMN(ctx, lab.MNConfig{}, len(benchIfaces)); err != nil {
		return f, err
	}
	return f, nil
}
