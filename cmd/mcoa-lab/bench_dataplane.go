package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// dataplaneFigures is the userspace data plane against the kernel alone in
// the same lab: TCP throughput home address <-> CN through the MN's and the
// HA's TUN backends versus a care-of address talking to the CN directly,
// and the round trip the tunnel adds.
type dataplaneFigures struct {
	dirs []tcpFigure

	rttDirect, rttTunnel, rttToHA, rttHACN stats
	// The same every 0.5 ms: on this kind of VM, waking an idle CPU costs
	// more than the path itself, and a tunnel wakes four threads.
	busyDirect, busyTunnel, busyToHA, busyHACN stats
}

type tcpFigure struct {
	name                      string
	tunnel, direct, segmented lab.IperfResult
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// rtt is the round trip MN <-> HA from eth0's care-of address.
func (b *bench) rtt(ctx context.Context) (stats, error) {
	b.logf("MN-HA round trip")
	return b.pingStats(ctx, lab.MN, "-I", b.coas["eth0"].String(), lab.HAAddr.String())
}

// pingStats pings from node, 50 echoes 10 ms apart, and returns the round
// trips of the answers (at least 40).
func (b *bench) pingStats(ctx context.Context, node string, args ...string) (stats, error) {
	return b.pingEvery(ctx, 10*time.Millisecond, 50, node, args...)
}

// pingEvery pings n times, every interval, and returns the round trips of
// the answers (at least 80%).
func (b *bench) pingEvery(ctx context.Context, interval time.Duration, n int, node string, args ...string) (stats, error) {
	iv := strconv.FormatFloat(interval.Seconds(), 'f', -1, 64)
	out, err := b.lab.Exec(ctx, node, "ping", append([]string{"-6", "-n", "-c", strconv.Itoa(n), "-i", iv}, args...)...)
	if err != nil {
		return nil, err
	}
	var s stats
	for _, m := range pingTime.FindAllStringSubmatch(string(out), -1) {
		f, _ := strconv.ParseFloat(m[1], 64)
		s = append(s, time.Duration(f*float64(time.Millisecond)))
	}
	if len(s) < n*4/5 {
		return nil, fmt.Errorf("ping %s: %d answers of %d:\n%s", strings.Join(args, " "), len(s), n, out)
	}
	return s, nil
}

// dataplane measures with mcoad's three bindings registered, eth0's the
// best: the home address's traffic goes through eth0's tunnel. The direct
// path is pinned to eth0 too (a rule for eth0's CoA), so both cross the
// same access link.
func (b *bench) dataplane(ctx context.Context) (_ dataplaneFigures, err error) {
	var f dataplaneFigures
	coa := b.coas["eth0"].String()
	undo, err := b.pinDirect(ctx, coa)
	defer func() { err = errors.Join(err, undo()) }()
	if err != nil {
		return f, err
	}
	if err := b.roundTrips(ctx, &f, coa); err != nil {
		return f, err
	}
	stop, err := b.lab.StartIperfServer(ctx, lab.CN, lab.CNAddr)
	if err != nil {
		return f, err
	}
	defer stop()
	for _, dir := range []struct {
		name string
		args []string
	}{{"MN → CN", nil}, {"CN → MN", []string{"-R"}}} {
		b.logf("data plane: TCP %s", dir.name)
		t, err := b.tcp(ctx, coa, dir.name, dir.args)
		if err != nil {
			return f, err
		}
		f.dirs = append(f.dirs, t)
	}
	return f, nil
}

// pinDirect routes what leaves from coa to the CN over eth0 (table 900);
// undo removes the route and the rule again.
func (b *bench) pinDirect(ctx context.Context, coa string) (undo func() error, err error) {
	var undos [][]string
	undo = func() error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			if _, err := b.lab.Exec(context.Background(), lab.MN, "ip", undos[i]...); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	router := lab.Accesses[0].RouterAddr.String()
	for _, c := range [][2][]string{
		{{"-6", "route", "add", lab.CNPrefix.String(), "via", router, "dev", "eth0", "table", "900"}, {"-6", "route", "del", lab.CNPrefix.String(), "table", "900"}},
		{{"-6", "rule", "add", "from", coa, "lookup", "900", "pref", "90"}, {"-6", "rule", "del", "pref", "90"}},
	} {
		if _, err := b.lab.Exec(ctx, lab.MN, "ip", c[0]...); err != nil {
			return undo, err
		}
		undos = append(undos, c[1])
	}
	return undo, nil
}

// roundTrips pings direct, through the tunnel and along the triangle,
// every 10 ms and every 0.5 ms.
func (b *bench) roundTrips(ctx context.Context, f *dataplaneFigures, coa string) error {
	b.logf("data plane: round trips")
	paths := []struct {
		every, busy *stats
		node        string
		args        []string
	}{
		{&f.rttDirect, &f.busyDirect, lab.MN, []string{"-I", coa, lab.CNAddr.String()}},
		{&f.rttTunnel, &f.busyTunnel, lab.MN, []string{"-I", lab.HoA.String(), lab.CNAddr.String()}},
		{&f.rttToHA, &f.busyToHA, lab.MN, []string{"-I", coa, lab.HAAddr.String()}},
		{&f.rttHACN, &f.busyHACN, lab.HA, []string{lab.CNAddr.String()}},
	}
	var err error
	for _, p := range paths {
		if *p.every, err = b.pingStats(ctx, p.node, p.args...); err != nil {
			return err
		}
	}
	for _, p := range paths {
		if *p.busy, err = b.pingEvery(ctx, 500*time.Microsecond, 400, p.node, p.args...); err != nil {
			return err
		}
	}
	return nil
}

// tcp runs iperf3 from eth0's care-of address, from the home address and
// from the care-of address with segmentation offloads off, in one
// direction (args: iperf3's, "-R" for CN -> MN).
func (b *bench) tcp(ctx context.Context, coa, name string, args []string) (tcpFigure, error) {
	secs := strconv.Itoa(int(b.o.iperf / time.Second))
	run := func(src string) (lab.IperfResult, error) {
		return b.lab.Iperf(ctx, lab.MN, append([]string{"-c", lab.CNAddr.String(), "-B", src, "-t", secs}, args...)...)
	}
	t := tcpFigure{name: name}
	var err error
	if t.direct, err = run(coa); err != nil {
		return t, err
	}
	if t.tunnel, err = run(lab.HoA.String()); err != nil {
		return t, err
	}
	// The lab's veths pass 64 KiB TSO packets whole through every
	// hop of the direct path, which no real access link does; the
	// tunnel's outer packets are real segments. The direct path
	// with TSO and GSO off at both ends forwards segments too.
	if err := b.segmentation(false); err != nil {
		return t, err
	}
	t.segmented, err = run(coa)
	return t, errors.Join(err, b.segmentation(true))
}

func (b *bench) segmentation(on bool) error {
	return errors.Join(b.lab.SetSegmentation(lab.MN, "eth0", on), b.lab.SetSegmentation(lab.CN, lab.Uplink, on))
}

func gbit(r lab.IperfResult) string { return fmt.Sprintf("%.2f Gbit/s", r.BitsPerSecond/1e9) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// markdown writes the data plane section.
func (f *dataplaneFigures) markdown(md *strings.Builder, secs time.Duration) {
	fmt.Fprintf(md, "Data plane (userspace TUN backend on mcoad and mcoa-ha; home address traffic through eth0's tunnel, the\n")
	fmt.Fprintf(md, "direct path from eth0's CoA over the same access link; iperf3 %v per run, TCP, one stream):\n\n", secs)
	fmt.Fprintf(md, "| figure | value | compared with | that | ratio | target |\n|---|---|---|---|---|---|\n")
	for _, t := range f.dirs {
		fmt.Fprintf(md, "| TCP %s, home address through the tunnels (%d retransmits) | %s | direct, TSO/GSO on (%d retransmits) | %s | %s | ≥ 0.3 |\n",
			t.name, t.tunnel.Retransmits, gbit(t.tunnel), t.direct.Retransmits, gbit(t.direct), ratio(t.tunnel.BitsPerSecond, t.direct.BitsPerSecond))
		fmt.Fprintf(md, "| the same | %s | direct, TSO/GSO off at both ends (segments, as the tunnel's outer packets) | %s | %s | |\n",
			gbit(t.tunnel), gbit(t.segmented), ratio(t.tunnel.BitsPerSecond, t.segmented.BitsPerSecond))
	}
	rttRows(md, "every 10 ms", f.rttDirect, f.rttTunnel, f.rttToHA, f.rttHACN)
	rttRows(md, "every 0.5 ms", f.busyDirect, f.busyTunnel, f.busyToHA, f.busyHACN)
	fmt.Fprintf(md, "\n")
}

func rttRows(md *strings.Builder, rate string, direct, tunnel, toHA, haCN stats) {
	d, tun := direct.pct(50), tunnel.pct(50)
	tri := toHA.pct(50) + haCN.pct(50)
	fmt.Fprintf(md, "| round trip p50 home address ↔ CN through the tunnel, pings %s (p99 %s) | %s | direct CoA ↔ CN | %s | +%s | < +100 µs |\n",
		rate, us(tunnel.pct(99)), us(tun), us(d), us(tun-d))
	fmt.Fprintf(md, "| the same | %s | the triangle MN → HA → CN routed by the kernel alone (CoA ↔ HA %s + HA ↔ CN %s) | %s | +%s | |\n",
		us(tun), us(toHA.pct(50)), us(haCN.pct(50)), us(tri), us(tun-tri))
}
