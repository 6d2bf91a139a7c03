package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// The fail-over sections: eth0 loses its carrier (its access router's end
// of the link goes down) while the CN sends a 1 ms probe stream, with
// MCoA, in single-CoA mode and in the vehicle lab.

// failover cuts eth0's carrier (its access router's end goes down) and
// measures until the HA's cache loses the binding, then restores it a
// second later and measures until mcoad has the BA that registers it again.
func (b *bench) failover(ctx context.Context) (cut, up, gap stats, err error) {
	b.logf("fail-over, %d carrier cuts, 1 ms probes CN -> HoA", b.o.cuts)
	h, link, err := b.ar1Downlink()
	if err != nil {
		return nil, nil, nil, err
	}
	defer h.Close()
	// The binding is back on the SLAAC address after regLatency removed
	// its addresses; wait for that to settle.
	if b.o.want("registration") {
		if _, err := b.mnEv.wait(ctx, 10*time.Second, "eth0 back on its SLAAC address", func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && ev.Binding.CoA == b.coas["eth0"] && ev.Binding.State == "registered"
		}); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return nil, nil, nil, err
	}
	probe, err := b.probeHoA()
	if err != nil {
		return nil, nil, nil, err
	}
	defer probe.Close()
	if err := b.probesFlow(ctx, probe); err != nil {
		return nil, nil, nil, err
	}
	for i := range b.o.cuts {
		t0 := time.Now()
		if err := h.LinkSetDown(link); err != nil {
			return nil, nil, nil, err
		}
		ev, err := b.removedAfter(ctx, 10*time.Second, "removal from the HA's cache", b.bidEth, t0)
		if err != nil {
			return nil, nil, nil, err
		}
		cut = append(cut, ev.Time.Sub(t0))
		if err := b.probesFlow(ctx, probe); err != nil {
			return nil, nil, nil, fmt.Errorf("cut %d: %w", i+1, err)
		}
		g, _ := probe.Outage(t0, time.Second)
		gap = append(gap, g)
		if err := sleepCtx(ctx, time.Second); err != nil {
			return nil, nil, nil, err
		}
		t0 = time.Now()
		if err := h.LinkSetUp(link); err != nil {
			return nil, nil, nil, err
		}
		ev, err = b.registeredAfter(ctx, 10*time.Second, "registration after the carrier came back", b.bidEth, t0)
		if err != nil {
			return nil, nil, nil, err
		}
		up = append(up, ev.Time.Sub(t0))
		if err := sleepCtx(ctx, 700*time.Millisecond); err != nil {
			return nil, nil, nil, err
		}
	}
	return cut, up, gap, nil
}

const benchProbePort = 6000

// probeHoA starts the 1 ms probe stream from the CN to the home address.
func (b *bench) probeHoA() (*lab.Stream, error) {
	return b.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, benchProbePort), time.Millisecond)
}

// probesFlow waits until 100 more probes arrived.
func (b *bench) probesFlow(ctx context.Context, probe *lab.Stream) error {
	n := probe.Got()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := lab.Poll(wctx, 5*time.Millisecond, func(context.Context) (bool, error) {
		return probe.Got() >= n+100, nil
	})
	if err != nil {
		return fmt.Errorf("CN -> HoA probes: %d arrived in 5s: %w", probe.Got()-n, err)
	}
	return nil
}

// singleCoA restarts mcoad with only eth0 usable (wlan0 and wwan0
// excluded): one care-of address, as without MCoA. Cutting eth0's carrier
// then leaves no path: the probes stop until the carrier returns (held
// down as long as a cut of failover lasts) and eth0 is registered again.
// It returns the gaps and how long the carrier was down.
func (b *bench) singleCoA(ctx context.Context) (gap stats, down time.Duration, err error) {
	b.logf("single-CoA mode, %d carrier cuts, 1 ms probes CN -> HoA", b.o.cuts)
	cfg := lab.MNConfig{
		StateDir: filepath.Join(b.lab.Dir, "state-single"),
		Interfaces: []lab.InterfaceRule{
			{Match: "eth*", Priority: 30},
			{Match: "wlan*", Exclude: true},
			{Match: "wwan*", Exclude: true},
		},
	}
	if err := b.startMN(ctx, cfg, 1); err != nil {
		return nil, 0, err
	}
	h, link, err := b.ar1Downlink()
	if err != nil {
		return nil, 0, err
	}
	defer h.Close()
	probe, err := b.probeHoA()
	if err != nil {
		return nil, 0, err
	}
	defer probe.Close()
	if err := b.probesFlow(ctx, probe); err != nil {
		return nil, 0, err
	}
	const hold = time.Second
	for i := range b.o.cuts {
		t0 := time.Now()
		if err := h.LinkSetDown(link); err != nil {
			return nil, 0, err
		}
		if err := sleepCtx(ctx, hold); err != nil {
			return nil, 0, err
		}
		if err := h.LinkSetUp(link); err != nil {
			return nil, 0, err
		}
		if err := b.probesFlow(ctx, probe); err != nil {
			return nil, 0, fmt.Errorf("single-CoA cut %d: %w", i+1, err)
		}
		g, _ := probe.Outage(t0, hold+time.Second)
		gap = append(gap, g)
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, 0, err
		}
	}
	return gap, hold, nil
}

// vehicleFailover replaces the lab with the vehicle lab (a host behind
// mcoad as NEMO mobile router) and measures, as failover does for the
// home address, the gap in a 1 ms probe stream from the CN to the host
// each time eth0's carrier goes.
func (b *bench) vehicleFailover(ctx context.Context) (gap stats, err error) {
	b.logf("vehicle fail-over, %d carrier cuts, 1 ms probes CN -> host", b.o.cuts)
	host, err := b.vehicleLab(ctx)
	if err != nil {
		return nil, err
	}
	h, link, err := b.ar1Downlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	probe, err := b.lab.StartStream(lab.CN, lab.Host, netip.AddrPortFrom(host, benchProbePort), time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	if err := b.probesFlow(ctx, probe); err != nil {
		return nil, err
	}
	bids, err := b.bids(ctx)
	if err != nil {
		return nil, err
	}
	for i := range b.o.cuts {
		t0 := time.Now()
		if err := h.LinkSetDown(link); err != nil {
			return nil, err
		}
		if err := b.probesFlow(ctx, probe); err != nil {
			return nil, fmt.Errorf("vehicle cut %d: %w", i+1, err)
		}
		g, _ := probe.Outage(t0, time.Second)
		gap = append(gap, g)
		if err := sleepCtx(ctx, time.Second); err != nil {
			return nil, err
		}
		t0 = time.Now()
		if err := h.LinkSetUp(link); err != nil {
			return nil, err
		}
		if _, err := b.registeredAfter(ctx, 10*time.Second, "vehicle: registration after the carrier came back", bids["eth0"], t0); err != nil {
			return nil, err
		}
		if err := sleepCtx(ctx, 700*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return gap, nil
}

// vehicleLab tears the lab down and builds the vehicle lab in its place,
// with mcoa-ha and mcoad as mobile router, three bindings registered with
// the mobile network; it returns the host's address.
func (b *bench) vehicleLab(ctx context.Context) (netip.Addr, error) {
	b.stopEvents(&b.mnEv)
	b.stopEvents(&b.haEv)
	prefix := b.lab.Prefix
	if err := b.lab.Down(); err != nil {
		return netip.Addr{}, err
	}
	b.lab, b.mn, b.ha = nil, nil, nil
	var err error
	if b.lab, err = lab.Up(ctx, &lab.Config{Prefix: prefix, Vehicle: true, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return netip.Addr{}, err
	}
	host, err := b.lab.WaitHostAddr(ctx)
	if err != nil {
		return host, err
	}
	if b.ha, err = b.lab.StartHA(ctx, &lab.HAConfig{Bin: b.bins[lab.HABinary], LogLevel: "info", Backend: benchBackend, Vehicle: true}); err != nil {
		return host, err
	}
	if err := b.startMN(ctx, lab.MNConfig{Vehicle: true}, len(benchIfaces)); err != nil {
		return host, err
	}
	// The HA routes the mobile network once the registrations carry it.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = lab.Poll(wctx, 5*time.Millisecond, func(ctx context.Context) (bool, error) {
		c, err := b.ha.Client.Cache(ctx)
		return err == nil && len(c) == len(benchIfaces) && len(c[0].Prefixes) == 1, err
	})
	if err != nil {
		return host, fmt.Errorf("mobile network not registered: %w", err)
	}
	return host, nil
}

// ar1Downlink is a netlink handle in ar1 and ar1's end of eth0's link:
// setting it down cuts eth0's carrier.
func (b *bench) ar1Downlink() (*netlink.Handle, netlink.Link, error) {
	h, err := b.nlHandle(lab.AR1)
	if err != nil {
		return nil, nil, err
	}
	link, err := h.LinkByName(lab.RouterDownlink)
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return h, link, nil
}
