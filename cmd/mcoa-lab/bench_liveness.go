package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// The path liveness figures of `mcoa-lab bench`: the gap a black hole on
// the active path costs the 1 ms probe stream (the path dies upstream,
// its link keeps carrier and address, so only mcoad's liveness can see
// it), how long the home address is unreachable after mcoa-ha is killed
// and started again, and what the liveness probes of an idle path cost
// on the wire.

// benchIfaces are the MN's access interfaces, in priority order.
var benchIfaces = []string{"eth0", "wlan0", "wwan0"}

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
	probe, err := b.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, benchProbePort), time.Millisecond)
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
		ev, err := b.haEv.wait(ctx, 10*time.Second, fmt.Sprintf("black hole %d: eth0's binding removed from the HA's cache", i+1), func(ev control.Event) bool {
			return ev.Kind == control.EventCache && ev.Removed && ev.Cache != nil && ev.Cache.BID == bids["eth0"] && ev.Time.After(t0)
		})
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
		ev, err = b.mnEv.wait(ctx, 15*time.Second, fmt.Sprintf("black hole %d cleared: eth0 registered again", i+1), func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed && ev.Binding.Role == control.RoleHA &&
				ev.Binding.BID == bids["eth0"] && ev.Binding.State == "registered" && ev.Time.After(t1)
		})
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

// haStateFile is where mcoa-ha keeps its binding cache in its state
// directory.
const haStateFile = "bindings.json"

// haRestartFigure: per run, the time from the new mcoa-ha's start to its
// control socket answering and to the first probe of the 1 ms CN -> HoA
// stream arriving at the MN again; and the BUs mcoad sent over all runs
// (0: the restored cache was enough, mcoad never had to register again).
type haRestartFigure struct {
	answer, reach stats
	down          time.Duration // kill to start
	mnBUs         float64
}

// sumMetric adds up every series of the metric name.
func sumMetric(m map[string]float64, name string) float64 {
	var v float64
	for k, x := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			v += x
		}
	}
	return v
}

// haRestart kills mcoa-ha (SIGKILL) while the 1 ms CN -> HoA stream rides
// eth0, starts it again b.o.haDown later and measures from the new
// process's start until the stream arrives again.
func (b *bench) haRestart(ctx context.Context) (f haRestartFigure, err error) {
	f.down = b.o.haDown
	b.logf("mcoa-ha killed and started again, %d runs, %v apart, 1 ms probes CN -> HoA", b.o.haRuns, b.o.haDown)
	dir := b.ha.StateDir
	bids, err := b.bids(ctx)
	if err != nil {
		return f, err
	}
	probe, err := b.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, benchProbePort), time.Millisecond)
	if err != nil {
		return f, err
	}
	defer probe.Close()
	for i := range b.o.haRuns {
		if err := b.allAlive(ctx, 20*time.Second); err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		if err := b.ridesOn(ctx, bids, "eth0", 15*time.Second); err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := lab.Poll(wctx, 20*time.Millisecond, func(context.Context) (bool, error) {
			t, err := os.ReadFile(filepath.Join(dir, haStateFile))
			return err == nil && strings.Count(string(t), `"bid"`) == len(benchIfaces), nil
		})
		cancel()
		if err != nil {
			return f, fmt.Errorf("restart %d: %d bindings not in %s: %w", i+1, len(benchIfaces), filepath.Join(dir, haStateFile), err)
		}
		m0, err := b.mn.Metrics(ctx)
		if err != nil {
			return f, err
		}
		if b.haEv != nil {
			b.haEv.stream.Close()
			b.haEv = nil
		}
		old := b.ha.Proc()
		if err := b.ha.Signal(syscall.SIGKILL); err != nil {
			return f, err
		}
		select {
		case <-old.Done():
		case <-time.After(5 * time.Second):
			return f, errors.New("mcoa-ha survived SIGKILL")
		}
		if err := sleepCtx(ctx, b.o.haDown); err != nil {
			return f, err
		}
		// The first probe to arrive after the start, seen within 0.2 ms.
		n0 := probe.Got()
		var first atomic.Int64
		stop := make(chan struct{})
		go func() {
			for first.Load() == 0 {
				if probe.Got() > n0 {
					first.Store(time.Now().UnixNano())
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond):
				}
			}
		}()
		start := time.Now()
		err = b.ha.Start(ctx)
		answer := time.Since(start)
		if err != nil {
			close(stop)
			return f, err
		}
		wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		_, err = lab.Poll(wctx, time.Millisecond, func(context.Context) (bool, error) { return first.Load() != 0, nil })
		cancel()
		close(stop)
		if err != nil {
			return f, fmt.Errorf("restart %d: no probe reached the home address within 30s of mcoa-ha's start: %w", i+1, err)
		}
		reach := time.Unix(0, first.Load()).Sub(start)
		f.answer = append(f.answer, answer)
		f.reach = append(f.reach, reach)
		if b.haEv, err = follow(ctx, b.ha.Client); err != nil {
			return f, err
		}
		if err := b.allAlive(ctx, 20*time.Second); err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		m1, err := b.mn.Metrics(ctx)
		if err != nil {
			return f, err
		}
		bus := sumMetric(m1, "mcoad_bu_sent_total") - sumMetric(m0, "mcoad_bu_sent_total")
		f.mnBUs += bus
		b.logf("  restart %d: control socket after %s, home address reached after %s; mcoad sent %.0f BUs",
			i+1, fmtDur(answer), fmtDur(reach), bus)
		if err := sleepCtx(ctx, time.Second); err != nil {
			return f, err
		}
	}
	return f, nil
}

// countTable is the nftables table probeCost counts in.
const countTable = "mcoa_lab_count"

// probeCostFigure: what crossed ar3's forward path between wwan0's
// care-of address and the HA in window, wwan0 carrying no traffic.
type probeCostFigure struct {
	iface               string
	window              time.Duration
	echoPkts, echoBytes uint64 // echo requests and replies (IPv6 packets)
	allPkts, allBytes   uint64 // anything from or to the care-of address
	probes              float64
}

// probeCost counts, with an nftables table of its own in ar3's forward
// path, the ICMPv6 echo requests from wwan0's care-of address to the HA
// and their replies (mcoad's keepalive probes of an idle path) over
// b.o.probeWin, with no traffic on wwan0.
func (b *bench) probeCost(ctx context.Context) (f probeCostFigure, err error) {
	f.iface, f.window = "wwan0", b.o.probeWin
	b.logf("liveness probe traffic on idle %s for %v (nftables counters in ar3)", f.iface, f.window)
	if err := b.allAlive(ctx, 15*time.Second); err != nil {
		return f, err
	}
	coa := b.coas[f.iface]
	bids, err := b.bids(ctx)
	if err != nil {
		return f, err
	}
	script := fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority %[2]d; policy accept;
		ip6 saddr %[3]s ip6 daddr %[4]s icmpv6 type echo-request counter comment "echo"
		ip6 saddr %[4]s ip6 daddr %[3]s icmpv6 type echo-reply counter comment "echo"
		ip6 saddr %[3]s counter comment "all"
		ip6 daddr %[3]s counter comment "all"
	}
}
`, countTable, lab.FaultPriority-100, coa, lab.HAAddr)
	path := filepath.Join(b.lab.Dir, "bench-count.nft")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return f, err
	}
	if out, err := b.lab.Exec(ctx, lab.AR3, "nft", "-f", path); err != nil {
		return f, fmt.Errorf("nft: %w: %s", err, out)
	}
	defer b.lab.Exec(context.Background(), lab.AR3, "nft", "delete", "table", "inet", countTable)
	m0, err := b.mn.Metrics(ctx)
	if err != nil {
		return f, err
	}
	series := fmt.Sprintf(`mcoad_path_probes_total{bid="%d",interface="%s"}`, bids[f.iface], f.iface)
	if _, ok := m0[series]; !ok {
		return f, fmt.Errorf("mcoad has no metric %s", series)
	}
	if err := sleepCtx(ctx, f.window); err != nil {
		return f, err
	}
	m1, err := b.mn.Metrics(ctx)
	if err != nil {
		return f, err
	}
	out, err := b.lab.Output(ctx, lab.AR3, "nft", "-j", "list", "table", "inet", countTable)
	if err != nil {
		return f, fmt.Errorf("nft: %w: %s", err, out)
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Comment string            `json:"comment"`
				Expr    []json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return f, fmt.Errorf("nft -j: %w", err)
	}
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			var c struct {
				Counter *struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				} `json:"counter"`
			}
			if json.Unmarshal(e, &c) != nil || c.Counter == nil {
				continue
			}
			switch o.Rule.Comment {
			case "echo":
				f.echoPkts += c.Counter.Packets
				f.echoBytes += c.Counter.Bytes
			case "all":
				f.allPkts += c.Counter.Packets
				f.allBytes += c.Counter.Bytes
			}
		}
	}
	f.probes = m1[series] - m0[series]
	b.logf("  %s: %d echo packets, %d bytes; %d packets, %d bytes from or to %s in all; mcoad sent %.0f probes",
		f.iface, f.echoPkts, f.echoBytes, f.allPkts, f.allBytes, coa, f.probes)
	if f.echoPkts == 0 {
		return f, fmt.Errorf("no probe of %s crossed ar3 in %v", f.iface, f.window)
	}
	return f, nil
}

// markdown writes the probe traffic table.
func (f probeCostFigure) markdown(w io.Writer) {
	s := f.window.Seconds()
	fmt.Fprintf(w, "Path liveness probes on one idle path (%s through ar3, no traffic on it; nftables counters in ar3's forward path over %v:\n", f.iface, f.window)
	fmt.Fprintf(w, "ICMPv6 echo requests from its care-of address to the HA and their replies, 48-byte IPv6 packets, 62-byte Ethernet frames;\n")
	fmt.Fprintf(w, "mcoad's default keepalive of an idle path is one echo a second on an unmetered link, one in 30 s on a metered one).\n")
	fmt.Fprintf(w, "The metered case needs NetworkManager to mark the link and is not measured.\n\n")
	fmt.Fprintf(w, "| path | probes sent by mcoad | echo packets/s (both ways) | bytes/s (IPv6) | bytes/s (Ethernet frames) | all packets/s from or to the CoA | compared with |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| %s, unmetered, idle | %.2f/s | %.2f | %.1f | %.1f | %.2f | BFD at 3 × 50 ms: 20 packets/s each way, 72-byte IPv6 packets, about 2.9 kB/s both ways |\n\n",
		f.iface, f.probes/s, float64(f.echoPkts)/s, float64(f.echoBytes)/s, float64(f.echoBytes+14*f.echoPkts)/s, float64(f.allPkts)/s)
}
