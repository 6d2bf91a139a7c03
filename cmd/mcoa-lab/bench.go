package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// `mcoa-lab bench`: the lab's performance figures, each next to what it
// compares against, as a markdown section for bench/results.md.

type benchOpts struct {
	cycles, cuts, runs int
	idle, iperf        time.Duration
	prefix             string
	haRuns             int
	haDown, probeWin   time.Duration
	only               map[string]bool // sections to run; nil: all
}

// benchSections are the sections of the bench, in the order they run
// (-only takes their names); benchGroups name several at once.
var benchSections = []string{"rtt", "dataplane", "idle", "registration", "failover", "blackhole", "harestart", "restart", "probes", "single", "bulk", "vehicle"}

var benchGroups = map[string][]string{
	"liveness": {"blackhole", "harestart", "probes"},
	"all":      benchSections,
}

// parseOnly reads -only: section and group names separated by commas.
func parseOnly(v string) (map[string]bool, error) {
	if v == "" {
		return nil, nil
	}
	out := map[string]bool{}
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		switch {
		case benchGroups[n] != nil:
			for _, x := range benchGroups[n] {
				out[x] = true
			}
		case slices.Contains(benchSections, n):
			out[n] = true
		default:
			return nil, fmt.Errorf("bench: -only %q: unknown section %q (sections: %s; groups: liveness, all)", v, n, strings.Join(benchSections, ", "))
		}
	}
	return out, nil
}

// want reports whether section runs.
func (o *benchOpts) want(section string) bool { return o.only == nil || o.only[section] }

func cmdBench(ctx context.Context, stateFile string, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	md := fs.String("md", "", "also write the markdown section to FILE")
	var o benchOpts
	fs.IntVar(&o.cycles, "cycles", 50, "registration latency samples (new care-of addresses)")
	fs.IntVar(&o.cuts, "cuts", 20, "fail-over samples (carrier cuts)")
	fs.IntVar(&o.runs, "runs", 5, "registrations per bulk/individual configuration")
	fs.DurationVar(&o.idle, "idle", 60*time.Second, "idle run for memory and CPU")
	fs.DurationVar(&o.iperf, "iperf", 5*time.Second, "length of each iperf3 run of the data plane figures")
	fs.StringVar(&o.prefix, "prefix", "", "namespace name prefix (default: mcoa + 6 random hex digits + -)")
	fs.IntVar(&o.haRuns, "ha-restarts", 5, "home agent restarts (SIGKILL, start again)")
	fs.DurationVar(&o.haDown, "ha-down", time.Second, "how long mcoa-ha stays killed before it is started again")
	fs.DurationVar(&o.probeWin, "probe-window", 30*time.Second, "how long the probe traffic of an idle path is counted")
	only := fs.String("only", "", "run only these sections, comma-separated: "+strings.Join(benchSections, ", ")+
		"; or liveness (blackhole, harestart, probes); default all")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if o.cycles < 1 || o.cuts < 1 || o.runs < 1 || o.haRuns < 1 || o.iperf < time.Second || o.probeWin < time.Second {
		return fmt.Errorf("bench: -cycles, -cuts, -runs and -ha-restarts must be at least 1, -iperf and -probe-window at least 1s")
	}
	var err error
	if o.only, err = parseOnly(*only); err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	if err := lab.CheckTools("ip", "radvd", "ping", "tshark", "iperf3"); err != nil {
		return err
	}
	if o.want("probes") {
		if err := lab.CheckTools("nft"); err != nil {
			return err
		}
	}
	bins := map[string]string{}
	for _, b := range []string{lab.MNBinary, lab.HABinary} {
		p, err := lab.FindBinary(b)
		if err != nil {
			return err
		}
		bins[b] = p
	}
	b := &bench{o: o, bins: bins, log: os.Stderr, start: time.Now()}
	text, err := b.run(ctx)
	if b.lab != nil {
		if err != nil {
			fmt.Fprintf(os.Stderr, "\n--- daemon logs (%s) ---\n", b.lab.Dir)
			b.lab.DumpLogs(os.Stderr)
		}
		if derr := b.lab.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	if err != nil {
		return err
	}
	fmt.Print(text)
	if *md != "" {
		if err := os.WriteFile(*md, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	o      benchOpts
	bins   map[string]string
	log    io.Writer
	start  time.Time
	lab    *lab.Lab
	ha, mn *lab.Daemon
	coas   map[string]netip.Addr
	bidEth uint16
	mnEv   *events
	haEv   *events
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[bench %6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// stats are samples of one figure.
type stats []time.Duration

func (s stats) pct(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(math.Ceil(p/100*float64(len(c)))) - 1
	return c[max(0, min(i, len(c)-1))]
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.3f ms", float64(d.Nanoseconds())/1e6)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d.Nanoseconds())/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d.Nanoseconds())/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// events follows a daemon's GET /v1/events on a goroutine.
type events struct {
	ch     chan control.Event
	stream *control.EventStream
}

func follow(ctx context.Context, c *control.Client) (*events, error) {
	s, err := c.Events(ctx)
	if err != nil {
		return nil, err
	}
	e := &events{ch: make(chan control.Event, 1024), stream: s}
	go func() {
		defer close(e.ch)
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			e.ch <- ev
		}
	}()
	return e, nil
}

// wait returns the first event that matches, skipping the others.
func (e *events) wait(ctx context.Context, timeout time.Duration, what string, match func(control.Event) bool) (control.Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-e.ch:
			if !ok {
				return ev, fmt.Errorf("%s: event stream ended", what)
			}
			if match(ev) {
				return ev, nil
			}
		case <-t.C:
			return control.Event{}, fmt.Errorf("%s: no event within %v", what, timeout)
		case <-ctx.Done():
			return control.Event{}, ctx.Err()
		}
	}
}

// nlHandle is a netlink handle inside one of the lab's nodes, so that link
// and address changes cost microseconds instead of an ip(8) fork.
func (b *bench) nlHandle(node string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(b.lab.NS(node))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *bench) run(ctx context.Context) (string, error) {
	var err error
	b.logf("building the lab")
	b.lab, err = lab.Up(ctx, &lab.Config{Prefix: b.o.prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	if b.coas, err = b.lab.CoAs(ctx); err != nil {
		return "", err
	}
	if b.ha, err = b.lab.StartHA(ctx, &lab.HAConfig{Bin: b.bins[lab.HABinary], LogLevel: "info", Backend: "tun"}); err != nil {
		return "", err
	}
	if err := b.startMN(ctx, lab.MNConfig{}, 3); err != nil {
		return "", err
	}
	is, err := b.mn.Client.Interfaces(ctx)
	if err != nil {
		return "", err
	}
	for _, i := range is {
		if i.Name == "eth0" {
			b.bidEth = i.BID
		}
	}
	if b.haEv, err = follow(ctx, b.ha.Client); err != nil {
		return "", err
	}

	var md strings.Builder
	cpu := cpuModel()
	fmt.Fprintf(&md, "## Lab figures (`mcoa-lab bench`)\n\n")
	fmt.Fprintf(&md, "The lab of `make lab` (network namespaces joined by veth pairs, radvd on every link) with mcoa-ha and mcoad\n")
	fmt.Fprintf(&md, "(bulk registration, one BID per interface, `[dataplane] backend = \"tun\"` on both), on %s, %d cores.\n", cpu, runtime.NumCPU())
	fmt.Fprintf(&md, "Percentiles are nearest-rank over the n samples (with n < 100, p99 is the maximum).\n\n")

	var (
		rtt, reg, cutS, upS, gapM, gapS, gapV stats
		cutLen                                time.Duration
		dp                                    dataplaneFigures
		idle                                  []idleFigure
		bulk                                  map[string]regFigure
		bh                                    blackholeFigure
		har                                   haRestartFigure
		mnr                                   restartFigure
		pc                                    probeCostFigure
	)
	if b.o.want("rtt") {
		if rtt, err = b.rtt(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("dataplane") {
		if dp, err = b.dataplane(ctx); err != nil { // bench_dataplane.go
			return "", err
		}
	}
	if b.o.want("idle") {
		if idle, err = b.idle(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("registration") {
		if reg, err = b.regLatency(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("failover") {
		if cutS, upS, gapM, err = b.failover(ctx); err != nil {
			return "", err
		}
	}
	// bench_liveness.go: with the lab's mcoad as it is.
	if b.o.want("blackhole") {
		if bh, err = b.blackhole(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("harestart") {
		if har, err = b.haRestart(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("restart") {
		if mnr, err = b.mnRestart(ctx); err != nil { // bench_restart.go
			return "", err
		}
	}
	if b.o.want("probes") {
		if pc, err = b.probeCost(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("single") {
		if gapS, cutLen, err = b.singleCoA(ctx); err != nil {
			return "", err
		}
	}
	b.mnEv.stream.Close()
	if b.o.want("bulk") {
		if bulk, err = b.bulkVsIndividual(ctx); err != nil {
			return "", err
		}
	}
	if b.o.want("vehicle") {
		if gapV, err = b.vehicleFailover(ctx); err != nil {
			return "", err
		}
	}

	rtt50 := float64(rtt.pct(50))
	// p50ratio is a's p50 over b's, "-" without samples of either.
	p50ratio := func(a, b stats) string {
		if len(a) == 0 || len(b) == 0 {
			return "-"
		}
		return ratio(float64(a.pct(50)), float64(b.pct(50)))
	}
	fmt.Fprintf(&md, "| figure | p50 | p99 | n | compared with | ratio (p50) |\n|---|---|---|---|---|---|\n")
	if len(rtt) > 0 {
		fmt.Fprintf(&md, "| MN↔HA round trip (ping from eth0's CoA to the HA) | %s | %s | %d | the physical floor of any registration | 1.00× |\n",
			fmtDur(rtt.pct(50)), fmtDur(rtt.pct(99)), len(rtt))
	}
	if len(reg) > 0 {
		fmt.Fprintf(&md, "| registration latency: new CoA (kernel address event) → BA accepted by mcoad | %s | %s | %d | MN↔HA RTT | %s |\n",
			fmtDur(reg.pct(50)), fmtDur(reg.pct(99)), len(reg), ratio(float64(reg.pct(50)), rtt50))
	}
	if len(upS) > 0 {
		fmt.Fprintf(&md, "| registration latency: carrier back → BA accepted by mcoad | %s | %s | %d | MN↔HA RTT | %s |\n",
			fmtDur(upS.pct(50)), fmtDur(upS.pct(99)), len(upS), ratio(float64(upS.pct(50)), rtt50))
		fmt.Fprintf(&md, "| fail-over, signaling: carrier lost → binding removed from the HA's cache (BU via another CoA) | %s | %s | %d | MN↔HA RTT | %s |\n",
			fmtDur(cutS.pct(50)), fmtDur(cutS.pct(99)), len(cutS), ratio(float64(cutS.pct(50)), rtt50))
		fmt.Fprintf(&md, "| fail-over, data: gap in a 1 ms UDP probe stream CN → home address while the active interface (eth0) loses its carrier, MCoA | %s | %s | %d | single-CoA mode (below) | %s |\n",
			fmtDur(gapM.pct(50)), fmtDur(gapM.pct(99)), len(gapM), p50ratio(gapS, gapM))
	}
	if len(bh.gap) > 0 {
		fmt.Fprintf(&md, "| fail-over, black hole: the same gap when eth0's path dies beyond its access router (ar1 drops all it forwards; carrier, address and RAs stay), found by mcoad's path liveness | %s | %s | %d | "+
			"target p50 < 300 ms, p99 < 1 s; the carrier-loss gap above; mwan3 (OpenWrt multi-WAN) fails over in about 15 s by default, BFD detects in 3 × 50 ms = 150 ms | %s of 300 ms (p99: %s of 1 s); %s the carrier-loss gap; %s mwan3's 15 s |\n",
			fmtDur(bh.gap.pct(50)), fmtDur(bh.gap.pct(99)), len(bh.gap), ratio(float64(bh.gap.pct(50)), float64(300*time.Millisecond)),
			ratio(float64(bh.gap.pct(99)), float64(time.Second)), p50ratio(bh.gap, gapM), ratio(float64(bh.gap.pct(50)), float64(15*time.Second)))
		fmt.Fprintf(&md, "| fail-over, black hole, signaling: fault in force → eth0's binding removed from the HA's cache (BU via another CoA) | %s | %s | %d | BFD's 150 ms detection | %s |\n",
			fmtDur(bh.detect.pct(50)), fmtDur(bh.detect.pct(99)), len(bh.detect), ratio(float64(bh.detect.pct(50)), float64(150*time.Millisecond)))
		fmt.Fprintf(&md, "| black hole cleared → eth0 registered again (path answers, then the 1 s hold-down) | %s | %s | %d | the 1 s hold-down | %s |\n",
			fmtDur(bh.back.pct(50)), fmtDur(bh.back.pct(99)), len(bh.back), ratio(float64(bh.back.pct(50)), float64(time.Second)))
		fmt.Fprintf(&md, "| black hole cleared: gap in the probe stream as it moves back from wlan0 to eth0 | %s | %s | %d | the black hole's gap | %s |\n",
			fmtDur(bh.backGap.pct(50)), fmtDur(bh.backGap.pct(99)), len(bh.backGap), ratio(float64(bh.backGap.pct(50)), float64(bh.gap.pct(50))))
	}
	if len(gapS) > 0 {
		fmt.Fprintf(&md, "| the same gap, single-CoA mode (only eth0 registered: wlan0 and wwan0 `exclude = true`; no fail-over, outage until the carrier returns %s later and eth0 is registered again) | %s | %s | %d | MCoA gap | %s |\n",
			fmtDur(cutLen), fmtDur(gapS.pct(50)), fmtDur(gapS.pct(99)), len(gapS), p50ratio(gapS, gapM))
	}
	if len(gapV) > 0 {
		fmt.Fprintf(&md, "| fail-over, vehicle: gap in a 1 ms UDP probe stream CN → a host behind mcoad as NEMO mobile router (`mcoa-lab up -vehicle`) while eth0 loses its carrier | %s | %s | %d | home address gap (MCoA) | %s |\n",
			fmtDur(gapV.pct(50)), fmtDur(gapV.pct(99)), len(gapV), p50ratio(gapV, gapM))
	}
	if len(har.reach) > 0 {
		fmt.Fprintf(&md, "| home agent restart: mcoa-ha killed (SIGKILL) with three bindings, started again %s later → the 1 ms probe stream CN → home address arrives again, from the new process's start (p99 column: max; binding cache restored from `home_agent.state_dir`; mcoad sent %.0f BUs over the %d restarts) | %s | %s | %d | target 1 s | %s |\n",
			fmtDur(har.down), har.mnBUs, len(har.reach), fmtDur(har.reach.pct(50)), fmtDur(har.reach.pct(100)), len(har.reach), ratio(float64(har.reach.pct(50)), float64(time.Second)))
		fmt.Fprintf(&md, "| home agent restart: the new mcoa-ha's start → its control socket answers | %s | %s | %d | the home address reachable again | %s |\n",
			fmtDur(har.answer.pct(50)), fmtDur(har.answer.pct(100)), len(har.answer), ratio(float64(har.answer.pct(50)), float64(har.reach.pct(50))))
	}
	mnr.markdown(&md)
	fmt.Fprintf(&md, "\n")
	if pc.echoPkts > 0 {
		pc.markdown(&md)
	}

	if b.o.want("dataplane") {
		dp.markdown(&md, b.o.iperf)
	}
	if bulk != nil {
		fmt.Fprintf(&md, "Bulk versus individual registration (`POST /v1/register` re-registers every binding; time until mcoad has\n")
		fmt.Fprintf(&md, "accepted the BA of each; bytes are whole Ethernet frames of BUs and BAs captured on the HA's core link;\n")
		fmt.Fprintf(&md, "8 CoAs: `bid_mode = \"coa\"` with extra addresses on the three links). Individual registration is paced\n")
		fmt.Fprintf(&md, "by RFC 6275's MAX_UPDATE_RATE (3 BUs per second per peer):\n\n")
		fmt.Fprintf(&md, "| CoAs | bulk time p50 | individual time p50 | time ratio | bulk bytes | individual bytes | bytes ratio | BUs+BAs bulk / individual | n |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, n := range []int{3, 8} {
			bk, in := bulk[fmt.Sprintf("bulk%d", n)], bulk[fmt.Sprintf("individual%d", n)]
			fmt.Fprintf(&md, "| %d | %s | %s | %s | %d | %d | %s | %d / %d | %d |\n", n,
				fmtDur(bk.times.pct(50)), fmtDur(in.times.pct(50)), ratio(float64(in.times.pct(50)), float64(bk.times.pct(50))),
				bk.bytes, in.bytes, ratio(float64(in.bytes), float64(bk.bytes)), bk.packets, in.packets, len(bk.times))
		}
		fmt.Fprintf(&md, "\n")
	}
	if idle != nil {
		fmt.Fprintf(&md, "Idle cost over %v with three bindings registered (radvd's Router Advertisements keep arriving):\n\n", b.o.idle)
		fmt.Fprintf(&md, "| daemon | resident memory (VmRSS) | compared with | ratio | CPU time | share of one core |\n|---|---|---|---|---|---|\n")
		for _, d := range idle {
			fmt.Fprintf(&md, "| %s | %.1f MB | 30 MB (issue 4's ceiling for mcoad) | %s | %.2f s | %.3f%% |\n",
				d.name, float64(d.rssKB)/1024, ratio(float64(d.rssKB)/1024, 30), d.cpu.Seconds(), 100*d.cpu.Seconds()/b.o.idle.Seconds())
		}
		fmt.Fprintf(&md, "\n")
	}
	b.logf("done")
	return md.String(), nil
}

// startMN (re)starts mcoad with cfg and waits until n bindings are
// registered.
func (b *bench) startMN(ctx context.Context, cfg lab.MNConfig, n int) error {
	if b.mn != nil {
		if b.mnEv != nil {
			b.mnEv.stream.Close()
		}
		if err := b.mn.Stop(); err != nil {
			return err
		}
	}
	cfg.Bin = b.bins[lab.MNBinary]
	cfg.LogLevel = "info"
	cfg.Backend = "tun"
	var err error
	if b.mn, err = b.lab.StartMN(ctx, &cfg); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = lab.Poll(wctx, 5*time.Millisecond, func(ctx context.Context) (bool, error) {
		c, err := b.ha.Client.Cache(ctx)
		if err != nil {
			return false, err
		}
		bs, err := b.mn.Client.Bindings(ctx)
		if err != nil {
			return false, err
		}
		reg := 0
		for _, x := range bs {
			if x.State == "registered" {
				reg++
			}
		}
		return len(c) == n && reg == n && len(bs) == n, nil
	})
	if err != nil {
		return fmt.Errorf("mcoad (%s, bid_mode %s): %d bindings not registered: %w", cfg.Registration, cfg.BIDMode, n, err)
	}
	b.mnEv, err = follow(ctx, b.mn.Client)
	return err
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

func (b *bench) rtt(ctx context.Context) (stats, error) {
	b.logf("MN-HA round trip")
	return b.pingStats(ctx, lab.MN, "-I", b.coas["eth0"].String(), lab.HAAddr.String())
}

type idleFigure struct {
	name  string
	rssKB int64
	cpu   time.Duration
}

// procCPU returns a process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	const clkTck = 100                       // USER_HZ on every Linux ABI
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(v, &kb)
			return kb, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

func (b *bench) idle(ctx context.Context) ([]idleFigure, error) {
	b.logf("idle run of %v", b.o.idle)
	ds := []*lab.Daemon{b.mn, b.ha}
	before := make([]time.Duration, len(ds))
	for i, d := range ds {
		c, err := procCPU(d.Proc().Pid)
		if err != nil {
			return nil, err
		}
		before[i] = c
	}
	if err := sleepCtx(ctx, b.o.idle); err != nil {
		return nil, err
	}
	var out []idleFigure
	for i, d := range ds {
		pid := d.Proc().Pid
		c, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		rss, err := procRSS(pid)
		if err != nil {
			return nil, err
		}
		out = append(out, idleFigure{name: filepath.Base(d.Bin), rssKB: rss, cpu: c - before[i]})
	}
	return out, nil
}

// regLatency adds a fresh address to eth0 each cycle: with one BID per
// interface mcoad moves eth0's binding to the newest address, and the
// sample is the time from the kernel's address event to the BA that
// registers it. Cycles are spaced so that MAX_UPDATE_RATE never delays a
// BU.
func (b *bench) regLatency(ctx context.Context) (stats, error) {
	b.logf("registration latency, %d new care-of addresses", b.o.cycles)
	h, err := b.nlHandle(lab.MN)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return nil, err
	}
	var added []*netlink.Addr
	defer func() {
		for _, a := range added {
			h.AddrDel(link, a)
		}
	}()
	var s stats
	for i := range b.o.cycles {
		addr := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte((0x1000 + i) >> 8), 15: byte(0x1000 + i)})
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		t0 := time.Now()
		if err := h.AddrAdd(link, a); err != nil {
			return nil, fmt.Errorf("add %s: %w", addr, err)
		}
		added = append(added, a)
		ev, err := b.mnEv.wait(ctx, 10*time.Second, "registration of "+addr.String(), func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed &&
				ev.Binding.CoA == addr && ev.Binding.State == "registered"
		})
		if err != nil {
			return nil, err
		}
		s = append(s, ev.Time.Sub(t0))
		if err := sleepCtx(ctx, 450*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// failover cuts eth0's carrier (its access router's end goes down) and
// measures until the HA's cache loses the binding, then restores it a
// second later and measures until mcoad has the BA that registers it again.
func (b *bench) failover(ctx context.Context) (cut, up, gap stats, err error) {
	b.logf("fail-over, %d carrier cuts, 1 ms probes CN -> HoA", b.o.cuts)
	h, err := b.nlHandle(lab.AR1)
	if err != nil {
		return nil, nil, nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(lab.RouterDownlink)
	if err != nil {
		return nil, nil, nil, err
	}
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
	probe, err := b.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, benchProbePort), time.Millisecond)
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
		ev, err := b.haEv.wait(ctx, 10*time.Second, "removal from the HA's cache", func(ev control.Event) bool {
			return ev.Kind == control.EventCache && ev.Removed && ev.Cache != nil && ev.Cache.BID == b.bidEth
		})
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
		ev, err = b.mnEv.wait(ctx, 10*time.Second, "registration after the carrier came back", func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed &&
				ev.Binding.BID == b.bidEth && ev.Binding.State == "registered" && ev.Time.After(t0)
		})
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
	h, err := b.nlHandle(lab.AR1)
	if err != nil {
		return nil, 0, err
	}
	defer h.Close()
	link, err := h.LinkByName(lab.RouterDownlink)
	if err != nil {
		return nil, 0, err
	}
	probe, err := b.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, benchProbePort), time.Millisecond)
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

type regFigure struct {
	times   stats
	bytes   int // per registration
	packets int // per registration
}

// bulkVsIndividual registers 3 and 8 bindings, in bulk and individually,
// runs times each, capturing what goes over the HA's core link.
func (b *bench) bulkVsIndividual(ctx context.Context) (map[string]regFigure, error) {
	out := map[string]regFigure{}
	h, err := b.nlHandle(lab.MN)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	for _, n := range []int{3, 8} {
		if n == 8 {
			// Five more care-of addresses: 3 on eth0, 3 on wlan0, 2 on wwan0.
			extra := map[string][]int{"eth0": {0x21, 0x22}, "wlan0": {0x21, 0x22}, "wwan0": {0x21}}
			for ifn, hosts := range extra {
				link, err := h.LinkByName(ifn)
				if err != nil {
					return nil, err
				}
				acc, _ := lab.AccessOf(ifn)
				for _, host := range hosts {
					a := acc.Prefix.Addr().As16()
					a[15] = byte(host)
					na := &netlink.Addr{IPNet: &net.IPNet{IP: a[:], Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
					if err := h.AddrAdd(link, na); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, mode := range []string{"bulk", "individual"} {
			key := fmt.Sprintf("%s%d", mode, n)
			b.logf("%s registration of %d care-of addresses, %d runs", mode, n, b.o.runs)
			cfg := lab.MNConfig{Registration: mode, StateDir: filepath.Join(b.lab.Dir, "state-"+key)}
			if n == 8 {
				cfg.BIDMode = "coa"
			}
			if err := b.startMN(ctx, cfg, n); err != nil {
				return nil, err
			}
			f, err := b.registerRuns(ctx, n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			out[key] = f
		}
	}
	return out, nil
}

func (b *bench) registerRuns(ctx context.Context, n int) (regFigure, error) {
	var f regFigure
	bs, err := b.mn.Client.Bindings(ctx)
	if err != nil {
		return f, err
	}
	bids := map[uint16]bool{}
	for _, x := range bs {
		bids[x.BID] = true
	}
	// Quiet first: MAX_UPDATE_RATE counts the last second's BUs.
	if err := sleepCtx(ctx, 1100*time.Millisecond); err != nil {
		return f, err
	}
	capFile := filepath.Join(b.lab.Dir, fmt.Sprintf("bench-%d-%d.pcapng", n, time.Now().UnixNano()))
	tshark, err := b.lab.Start(lab.HA, "tshark", "-n", "-i", lab.Uplink, "-f", "ip6 proto 60 or ip6 proto 43 or ip6 proto 135", "-w", capFile)
	if err != nil {
		return f, err
	}
	defer tshark.Stop()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = lab.Poll(wctx, 20*time.Millisecond, func(context.Context) (bool, error) {
		if !tshark.Running() {
			return false, fmt.Errorf("tshark exited: %s", tshark.Tail(1000))
		}
		st, err := os.Stat(capFile)
		return err == nil && st.Size() > 0 && strings.Contains(tshark.Tail(4000), "Capturing on"), nil
	})
	cancel()
	if err != nil {
		return f, fmt.Errorf("tshark: %w", err)
	}
	for range b.o.runs {
		t0 := time.Now()
		if err := b.mn.Client.Register(ctx); err != nil {
			return f, err
		}
		seen := map[uint16]bool{}
		var last time.Time
		for len(seen) < len(bids) {
			ev, err := b.mnEv.wait(ctx, 15*time.Second, "re-registration", func(ev control.Event) bool {
				return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed &&
					ev.Binding.State == "registered" && ev.Time.After(t0) && bids[ev.Binding.BID]
			})
			if err != nil {
				return f, err
			}
			seen[ev.Binding.BID] = true
			last = ev.Time
		}
		f.times = append(f.times, last.Sub(t0))
		if err := sleepCtx(ctx, 1100*time.Millisecond); err != nil {
			return f, err
		}
	}
	// SIGINT to tshark alone: it has dumpcap write out what it captured.
	syscall.Kill(tshark.Pid, syscall.SIGINT)
	select {
	case <-tshark.Done():
	case <-time.After(10 * time.Second):
	}
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-r", capFile, "-Y", "mipv6", "-T", "fields", "-e", "frame.len", "-e", "mip6.mhtype").Output()
	if err != nil {
		return f, fmt.Errorf("tshark -r: %w", err)
	}
	total, pkts := 0, 0
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		fs := strings.Fields(string(line))
		if len(fs) != 2 || (fs[1] != "5" && fs[1] != "6") {
			continue
		}
		l, _ := strconv.Atoi(fs[0])
		total += l
		pkts++
	}
	if pkts == 0 {
		return f, errors.New("no BU or BA captured")
	}
	f.bytes = total / b.o.runs
	f.packets = pkts / b.o.runs
	return f, nil
}

func cpuModel() string {
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					return strings.TrimSpace(v)
				}
			}
		}
	}
	return "an unknown CPU"
}

// vehicleFailover replaces the lab with the vehicle lab (a host behind
// mcoad as NEMO mobile router) and measures, as failover does for the
// home address, the gap in a 1 ms probe stream from the CN to the host
// each time eth0's carrier goes.
func (b *bench) vehicleFailover(ctx context.Context) (gap stats, err error) {
	b.logf("vehicle fail-over, %d carrier cuts, 1 ms probes CN -> host", b.o.cuts)
	if b.mnEv != nil {
		b.mnEv.stream.Close()
	}
	if b.haEv != nil {
		b.haEv.stream.Close()
	}
	prefix := b.lab.Prefix
	if err := b.lab.Down(); err != nil {
		return nil, err
	}
	b.lab, b.mn, b.ha, b.mnEv, b.haEv = nil, nil, nil, nil, nil
	if b.lab, err = lab.Up(ctx, &lab.Config{Prefix: prefix, Vehicle: true, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return nil, err
	}
	host, err := b.lab.WaitHostAddr(ctx)
	if err != nil {
		return nil, err
	}
	if b.ha, err = b.lab.StartHA(ctx, &lab.HAConfig{Bin: b.bins[lab.HABinary], LogLevel: "info", Backend: "tun", Vehicle: true}); err != nil {
		return nil, err
	}
	if err := b.startMN(ctx, lab.MNConfig{Vehicle: true}, 3); err != nil {
		return nil, err
	}
	h, err := b.nlHandle(lab.AR1)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(lab.RouterDownlink)
	if err != nil {
		return nil, err
	}
	// The HA routes the mobile network once the registrations carry it.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = lab.Poll(wctx, 5*time.Millisecond, func(ctx context.Context) (bool, error) {
		c, err := b.ha.Client.Cache(ctx)
		return err == nil && len(c) == 3 && len(c[0].Prefixes) == 1, err
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("mobile network not registered: %w", err)
	}
	probe, err := b.lab.StartStream(lab.CN, lab.Host, netip.AddrPortFrom(host, benchProbePort), time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	if err := b.probesFlow(ctx, probe); err != nil {
		return nil, err
	}
	bidEth := uint16(0)
	is, err := b.mn.Client.Interfaces(ctx)
	if err != nil {
		return nil, err
	}
	for _, i := range is {
		if i.Name == "eth0" {
			bidEth = i.BID
		}
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
		if _, err := b.mnEv.wait(ctx, 10*time.Second, "vehicle: registration after the carrier came back", func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed &&
				ev.Binding.BID == bidEth && ev.Binding.State == "registered" && ev.Time.After(t0)
		}); err != nil {
			return nil, err
		}
		if err := sleepCtx(ctx, 700*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return gap, nil
}
