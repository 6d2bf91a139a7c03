package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// demoPriority is the priority lab.DefaultInterfaceRules give each
// interface.
var demoPriority = lab.DefaultPriorities

var demoIfaces = lab.MNIfaces

// demo is one run of `mcoa-lab demo`.
type demo struct {
	out    io.Writer
	ctl    string // mcoactl binary
	lab    *lab.Lab
	ha, mn *lab.Daemon
	cn     *lab.Daemon // the correspondent's mcoa-ha (demo -ro), else nil
	coas   map[string]netip.Addr
	bids   map[string]uint16
	start  time.Time
	mnUp   time.Time // when register started mcoad
	dp     bool      // the data plane runs: flows are checked
}

// demoFlags are `mcoa-lab demo`'s options.
type demoFlags struct {
	prefix, backend string
	vehicle, ro     bool
}

// parseDemoFlags parses demo's arguments and checks they go together.
func parseDemoFlags(args []string, errOut io.Writer) (demoFlags, error) {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&f.prefix, "prefix", "", "namespace name prefix (default: mcoa + 6 random hex digits + -)")
	fs.StringVar(&f.backend, "dataplane", "tun", `both daemons' [dataplane] backend ("none": signaling only, no flow checks)`)
	fs.BoolVar(&f.vehicle, "vehicle", false, "the vehicle demo: a host behind mcoad as NEMO mobile router (needs -dataplane tun)")
	fs.BoolVar(&f.ro, "ro", false, "the route optimisation demo: a correspondent node with one binding per BID (needs -dataplane tun)")
	if err := fs.Parse(args); err != nil {
		return f, exitError(2) // the flag package said why
	}
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case f.vehicle && f.ro:
		return f, errors.New("-vehicle and -ro are two demos: choose one")
	case f.vehicle && f.backend != "tun":
		return f, errors.New("-vehicle needs -dataplane tun")
	case f.ro && f.backend != "tun":
		return f, errors.New("-ro needs -dataplane tun")
	}
	return f, nil
}

func cmdDemo(ctx context.Context, stateFile string, args []string) error {
	f, err := parseDemoFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	d := &demo{out: os.Stdout, start: time.Now()}
	bins := map[string]string{}
	for _, b := range []string{lab.MNBinary, lab.HABinary, lab.CtlBinary} {
		p, err := lab.FindBinary(b)
		if err != nil {
			return err
		}
		bins[b] = p
	}
	d.ctl = bins[lab.CtlBinary]
	switch {
	case f.vehicle:
		err = d.runVehicle(ctx, f.prefix, bins)
	case f.ro:
		err = d.runRO(ctx, f.prefix, bins)
	default:
		err = d.run(ctx, f.prefix, bins, f.backend)
	}
	interrupted := ctx.Err() != nil
	switch {
	case interrupted:
		fmt.Fprintf(d.out, "\ninterrupted after %v\n", d.since())
	case err != nil:
		fmt.Fprintf(d.out, "\nFAILED after %v: %v\n", d.since(), err)
		if d.lab != nil {
			fmt.Fprintf(os.Stderr, "\n--- daemon logs (%s) ---\n", d.lab.Dir)
			d.lab.DumpLogs(os.Stderr)
		}
	}
	if d.lab != nil {
		fmt.Fprintf(d.out, "tearing down lab %s ... ", d.lab.Prefix)
		t := time.Now()
		if derr := d.lab.Down(); derr != nil {
			fmt.Fprintf(d.out, "error: %v\n", derr)
			err = errors.Join(err, derr)
		} else {
			fmt.Fprintf(d.out, "done in %v\n", ms(time.Since(t)))
		}
	}
	switch {
	case interrupted:
		return exitError(130)
	case err != nil:
		return exitError(1)
	}
	fmt.Fprintf(d.out, "\ndemo passed: every step did what it says (%v in all)\n", d.since())
	return nil
}

func (d *demo) since() time.Duration { return time.Since(d.start).Round(10 * time.Millisecond) }

func ms(t time.Duration) string {
	switch {
	case t < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(t.Microseconds())/1000)
	case t < 10*time.Second:
		return fmt.Sprintf("%d ms", t.Milliseconds())
	}
	return t.Round(100 * time.Millisecond).String()
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// within runs a step's wait with its own timeout.
func within(parent context.Context, d time.Duration, what string, cond func(context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(parent, d)
	defer cancel()
	var last error
	took, err := lab.Poll(ctx, 2*time.Millisecond, func(ctx context.Context) (bool, error) {
		err := cond(ctx)
		// A check cut short by the deadline says less than the one before.
		if err == nil || ctx.Err() == nil || last == nil {
			last = err
		}
		return err == nil, nil
	})
	if perr := parent.Err(); perr != nil {
		return took, perr
	}
	if err != nil {
		if last == nil {
			last = err
		}
		return took, fmt.Errorf("%s: not within %v: %w", what, d, last)
	}
	return took, nil
}

// demoStep is one numbered step of a demo; run checks what title claims.
type demoStep struct {
	title string
	run   func(context.Context) error
}

// runSteps runs steps in order and stops at the first that fails.
func (d *demo) runSteps(ctx context.Context, steps []demoStep) error {
	for i, s := range steps {
		d.printf("\n== Step %d/%d: %s\n", i+1, len(steps), s.title)
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, s.title, err)
		}
	}
	return nil
}

// tables prints the MN's Binding Update List and the HA's binding cache
// (and the CN's, when one runs) with mcoactl, as a user would see them.
func (d *demo) tables(ctx context.Context) {
	d.mcoactl(ctx, "MN  mcoactl bindings", d.mn, "bindings")
	d.mcoactl(ctx, "HA  mcoactl cache", d.ha, "cache")
	if d.cn != nil {
		d.mcoactl(ctx, "CN  mcoactl cache", d.cn, "cache")
	}
}

// mcoactl prints what `mcoactl args...` says to daemon dm, indented under
// title.
func (d *demo) mcoactl(ctx context.Context, title string, dm *lab.Daemon, args ...string) {
	d.printf("   %s:\n", title)
	out, err := exec.CommandContext(ctx, d.ctl, append([]string{"-socket", dm.Socket}, args...)...).CombinedOutput()
	text := strings.TrimRight(string(out), "\n")
	if err != nil {
		text += fmt.Sprintf(" (mcoactl: %v)", err)
	}
	for _, line := range strings.Split(text, "\n") {
		d.printf("     %s\n", line)
	}
}

// removalVia names the care-of addresses the BUs that removed eth0's
// binding at who (the HA or the CN) came from, with their interfaces;
// none may be eth0's, which has no carrier.
func (d *demo) removalVia(who string, bus []control.BU) (string, error) {
	if len(bus) == 0 {
		return "", fmt.Errorf("the %s reported no BU for the removal", who)
	}
	var via []string
	for _, bu := range bus {
		if bu.Src == d.coas["eth0"] {
			return "", fmt.Errorf("a BU came from eth0's care-of address %s, which has no carrier", bu.Src)
		}
		via = append(via, fmt.Sprintf("%s (%s)", bu.Src, d.ifaceOf(bu.Src)))
	}
	return strings.Join(via, ", "), nil
}

// sameBIDs reports whether bids are the BIDs of want's interfaces, each
// once, in any order.
func sameBIDs(bids []uint16, want map[string]uint16) bool {
	if len(bids) != len(want) {
		return false
	}
	for _, b := range want {
		if !slices.Contains(bids, b) {
			return false
		}
	}
	return true
}

func (d *demo) ifaceOf(a netip.Addr) string {
	for n, c := range d.coas {
		if c == a {
			return n
		}
	}
	return "?"
}
