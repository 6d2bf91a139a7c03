package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mcoad/mcoad/internal/lab"
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

// run builds the lab, starts both daemons, measures the sections -only
// asks for and returns the markdown section.
func (b *bench) run(ctx context.Context) (string, error) {
	if err := b.setup(ctx); err != nil {
		return "", err
	}
	f, err := b.measure(ctx)
	if err != nil {
		return "", err
	}
	b.logf("done")
	return f.markdown(b.o), nil
}

// setup builds the lab with mcoa-ha and mcoad, three bindings registered,
// and follows both daemons' events.
func (b *bench) setup(ctx context.Context) error {
	var err error
	b.logf("building the lab")
	b.lab, err = lab.Up(ctx, &lab.Config{Prefix: b.o.prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if b.coas, err = b.lab.CoAs(ctx); err != nil {
		return err
	}
	if b.ha, err = b.lab.StartHA(ctx, &lab.HAConfig{Bin: b.bins[lab.HABinary], LogLevel: "info", Backend: benchBackend}); err != nil {
		return err
	}
	if err := b.startMN(ctx, lab.MNConfig{}, len(benchIfaces)); err != nil {
		return err
	}
	bids, err := b.bids(ctx)
	if err != nil {
		return err
	}
	b.bidEth = bids["eth0"]
	b.haEv, err = follow(ctx, b.ha.Client)
	return err
}

// benchBackend is both daemons' [dataplane] backend in the bench.
const benchBackend = "tun"

// benchFigures are what the sections measured; a section that did not run
// leaves its figure empty.
type benchFigures struct {
	rtt, reg, cutS, upS, gapM, gapS, gapV stats
	cutLen                                time.Duration
	dp                                    dataplaneFigures
	idle                                  []idleFigure
	idleFor                               time.Duration
	bulk                                  map[string]regFigure
	bh                                    blackholeFigure
	har                                   haRestartFigure
	mnr                                   restartFigure
	pc                                    probeCostFigure
}

// measure runs the sections -only asks for, in benchSections' order.
func (b *bench) measure(ctx context.Context) (*benchFigures, error) {
	f := &benchFigures{idleFor: b.o.idle}
	sections := map[string]func() error{
		"rtt":          func() (err error) { f.rtt, err = b.rtt(ctx); return },
		"dataplane":    func() (err error) { f.dp, err = b.dataplane(ctx); return },
		"idle":         func() (err error) { f.idle, err = b.idle(ctx); return },
		"registration": func() (err error) { f.reg, err = b.regLatency(ctx); return },
		"failover":     func() (err error) { f.cutS, f.upS, f.gapM, err = b.failover(ctx); return },
		// The liveness sections take the lab's mcoad as it is.
		"blackhole": func() (err error) { f.bh, err = b.blackhole(ctx); return },
		"harestart": func() (err error) { f.har, err = b.haRestart(ctx); return },
		"restart":   func() (err error) { f.mnr, err = b.mnRestart(ctx); return },
		"probes":    func() (err error) { f.pc, err = b.probeCost(ctx); return },
		"single":    func() (err error) { f.gapS, f.cutLen, err = b.singleCoA(ctx); return },
		"bulk":      func() (err error) { f.bulk, err = b.bulkVsIndividual(ctx); return },
		"vehicle":   func() (err error) { f.gapV, err = b.vehicleFailover(ctx); return },
	}
	for _, name := range benchSections {
		if name == "bulk" {
			// From here on mcoad restarts with other configurations.
			b.stopEvents(&b.mnEv)
		}
		if !b.o.want(name) {
			continue
		}
		if err := sections[name](); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// startMN (re)starts mcoad with cfg and waits until n bindings are
// registered.
func (b *bench) startMN(ctx context.Context, cfg lab.MNConfig, n int) error {
	if b.mn != nil {
		b.stopEvents(&b.mnEv)
		if err := b.mn.Stop(); err != nil {
			return err
		}
	}
	cfg.Bin = b.bins[lab.MNBinary]
	cfg.LogLevel = "info"
	cfg.Backend = benchBackend
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

// stopEvents closes *e's stream, if any, and forgets it.
func (b *bench) stopEvents(e **events) {
	if *e != nil {
		(*e).stream.Close()
		*e = nil
	}
}
