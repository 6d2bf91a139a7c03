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
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// demoPriority is the priority lab.DefaultInterfaceRules give each
// interface.
var demoPriority = map[string]uint8{"eth0": 30, "wlan0": 20, "wwan0": 10}

var demoIfaces = []string{"eth0", "wlan0", "wwan0"}

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

func (d *demo) run(ctx context.Context, prefix string, bins map[string]string, backend string) error {
	d.printf("mcoa-lab demo: Multiple Care-of Addresses registration (draft-ietf-monami6-multiplecoa-00)\n\n")
	d.printf("Building the lab: a mobile node (mn) with eth0, wlan0 and wwan0 on three access\n")
	d.printf("routers (ar1..ar3) sending Router Advertisements, a core router, the home agent (ha)\n")
	d.printf("on the home link %s and a correspondent (cn).\n", lab.HomePrefix)
	t := time.Now()
	l, err := lab.Up(ctx, &lab.Config{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	d.lab = l
	d.coas, err = l.CoAs(ctx)
	if err != nil {
		return err
	}
	d.printf("  lab %s up in %v; care-of addresses by SLAAC:\n", l.Prefix, ms(time.Since(t)))
	for _, n := range demoIfaces {
		a, _ := lab.AccessOf(n)
		d.printf("    %-6s %-24s (via %s, priority %d)\n", n, d.coas[n], a.Router, demoPriority[n])
	}
	d.dp = backend == "tun"
	if d.ha, err = l.StartHA(ctx, &lab.HAConfig{Bin: bins[lab.HABinary], Backend: backend}); err != nil {
		return err
	}
	d.printf("  mcoa-ha running in %s (pid %d, [dataplane] backend %q), control socket %s\n", l.NS(lab.HA), d.ha.Proc().Pid, backend, d.ha.Socket)

	return d.runSteps(ctx, []demoStep{
		{"registration of three care-of addresses in one bulk Binding Update", func(ctx context.Context) error {
			return d.register(ctx, &lab.MNConfig{Bin: bins[lab.MNBinary], Backend: backend, Extra: demoPolicy})
		}},
		{"flow policy: UDP to port 5001 over wlan0, the rest by priority (eth0)", d.flowPolicy},
		{"eth0's path dies upstream, its carrier up: found dead, its binding withdrawn", d.blackHole},
		{"eth0's path works again: registered again after its hold-down", d.clearHole},
		{"eth0 loses its carrier: its binding is removed through another care-of address", d.cut},
		{"eth0's carrier comes back: registered again", d.restore},
		{"returning home (return_home = \"all\") and leaving again", d.returnHome},
	})
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

// checkCache checks that the HA's cache holds exactly the bindings of
// want, each with its interface's BID, care-of address and priority.
func (d *demo) checkCache(ctx context.Context, want ...string) error {
	c, err := d.ha.Client.Cache(ctx)
	if err != nil {
		return err
	}
	if len(c) != len(want) {
		return fmt.Errorf("HA cache has %d bindings, want %d (%s)", len(c), len(want), strings.Join(want, ", "))
	}
	for _, n := range want {
		i := slices.IndexFunc(c, func(x control.CacheEntry) bool { return x.BID == d.bids[n] })
		if i < 0 {
			return fmt.Errorf("HA cache has no binding for %s (BID %d)", n, d.bids[n])
		}
		x := c[i]
		if x.HoA != lab.HoA || x.CoA != d.coas[n] || x.Priority != demoPriority[n] || !x.HomeRegistration {
			return fmt.Errorf("HA binding BID %d is %s -> %s priority %d; want %s -> %s priority %d",
				x.BID, x.HoA, x.CoA, x.Priority, lab.HoA, d.coas[n], demoPriority[n])
		}
	}
	return nil
}

func (d *demo) proxied(ctx context.Context) (bool, error) {
	as, err := d.lab.ProxiedAddrs(ctx)
	return slices.Contains(as, lab.HoA), err
}

// register starts mcoad with cfg and checks that its three care-of
// addresses are registered with the HA in one bulk BU.
func (d *demo) register(ctx context.Context, cfg *lab.MNConfig) error {
	off := d.ha.LogOffset()
	t := time.Now()
	d.mnUp = t
	var err error
	d.mn, err = d.lab.StartMN(ctx, cfg)
	if err != nil {
		return err
	}
	d.printf("   mcoad started in %s (pid %d, bulk registration, [dataplane] backend %q)\n", d.lab.NS(lab.MN), d.mn.Proc().Pid, cfg.Backend)
	// The BIDs mcoad gave the interfaces.
	_, err = within(ctx, 5*time.Second, "BIDs", func(ctx context.Context) error {
		is, err := d.mn.Client.Interfaces(ctx)
		if err != nil {
			return err
		}
		d.bids = map[string]uint16{}
		for _, i := range is {
			if i.BID != 0 {
				d.bids[i.Name] = i.BID
			}
		}
		for _, n := range demoIfaces {
			if d.bids[n] == 0 {
				return fmt.Errorf("%s has no BID", n)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "three bindings in the HA's cache", func(ctx context.Context) error {
		return d.checkCache(ctx, demoIfaces...)
	}); err != nil {
		return err
	}
	took := time.Since(t)
	var bulk []lab.LoggedBU
	for _, bu := range lab.ParseLoggedBUs(d.ha.LogSince(off)) {
		if bu.Status == 0 {
			bulk = append(bulk, bu)
		}
	}
	if len(bulk) != 1 || bulk[0].BIDs != 3 {
		return fmt.Errorf("the HA accepted %d BUs (%+v), want one carrying three BIDs", len(bulk), bulk)
	}
	d.printf("   registered %v after mcoad started: one BU from %s carrying BIDs %d, %d, %d; BA status 0\n",
		ms(took), bulk[0].Src, d.bids["eth0"], d.bids["wlan0"], d.bids["wwan0"])
	// Accepted by a home agent that requires authentication: signed.
	if st, err := d.ha.Client.Status(ctx); err != nil || st.Auth != "required" {
		return fmt.Errorf("the HA does not require authentication (auth %q, %v)", st.Auth, err)
	}
	d.printf("   the BUs carry the RFC 4285 MN-HA authentication option (SPI %d, a key made for this run), which the HA requires\n", lab.MNHASPI)
	if _, err := within(ctx, 5*time.Second, "MN lists three registered bindings", func(ctx context.Context) error {
		return d.mnRegistered(ctx, 3)
	}); err != nil {
		return err
	}
	d.tables(ctx)
	if ok, err := d.proxied(ctx); err != nil || !ok {
		return fmt.Errorf("the HA does not defend %s on the home link (%v)", lab.HoA, err)
	}
	d.printf("   ok: HA cache holds BIDs %d/%d/%d with the interfaces' care-of addresses and priorities 30/20/10;\n",
		d.bids["eth0"], d.bids["wlan0"], d.bids["wwan0"])
	d.printf("       the HA defends %s on the home link (proxy neighbour advertisements)\n", lab.HoA)
	return nil
}

// mnRegistered checks that the MN lists exactly n bindings with the HA,
// all registered.
func (d *demo) mnRegistered(ctx context.Context, n int) error {
	return d.mnRegisteredAs(ctx, control.RoleHA, n)
}

// mnRegisteredAs checks that the MN lists exactly n bindings of role
// (control.RoleHA or control.RoleCN), all registered.
func (d *demo) mnRegisteredAs(ctx context.Context, role string, n int) error {
	bs, err := d.mn.Client.Bindings(ctx)
	if err != nil {
		return err
	}
	all, reg := 0, 0
	for _, b := range bs {
		if b.Role != role {
			continue
		}
		all++
		if b.State == "registered" && b.LastStatus == 0 {
			reg++
		}
	}
	if reg != n || all != n {
		return fmt.Errorf("MN has %d %s bindings, %d registered; want %d registered", all, role, reg, n)
	}
	return nil
}

// demoPolicy is mcoad's [[policy]] of step 2: UDP to port 5001 (voice,
// say) prefers wlan0, then eth0. Other traffic follows the interfaces'
// priorities: eth0.
const demoPolicy = `
[[policy]]
name = "voice"
protocol = "udp"
dst_port = 5001
prefer = ["wlan*", "eth*"]
`

const (
	demoVoicePort = 5001 // the policy's port
	demoOtherPort = 5003 // no policy
	demoProbePort = 6000 // CN -> HoA probes in step 3
)

// tunnelCounts is the MN's count of packets sent (tx) or received (rx)
// through each interface's tunnel (mcoactl metrics).
func (d *demo) tunnelCounts(ctx context.Context, dir string) (map[string]float64, error) {
	m, err := d.mn.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, n := range demoIfaces {
		out[n] = m[fmt.Sprintf(`mcoad_tunnel_%s_packets_total{bid="%d"}`, dir, d.bids[n])]
	}
	return out, nil
}

// ridesOn waits until want's tunnel carried at least n more packets in
// direction dir than at base while every other one carried fewer than a
// tenth of that; it returns the counts since base.
func (d *demo) ridesOn(ctx context.Context, what, dir, want string, n float64) (map[string]float64, error) {
	base, err := d.tunnelCounts(ctx, dir)
	if err != nil {
		return nil, err
	}
	delta := map[string]float64{}
	_, err = within(ctx, 10*time.Second, what, func(ctx context.Context) error {
		now, err := d.tunnelCounts(ctx, dir)
		if err != nil {
			return err
		}
		for _, i := range demoIfaces {
			delta[i] = now[i] - base[i]
		}
		if delta[want] < n {
			return fmt.Errorf("%s's tunnel carried %v packets, want %v (per interface: %v)", want, delta[want], n, delta)
		}
		for _, o := range demoIfaces {
			if o != want && delta[o] > n/10 {
				return fmt.Errorf("%s's tunnel carried %v packets, want few (per interface: %v)", o, delta[o], delta)
			}
		}
		return nil
	})
	return delta, err
}

func fmtCounts(c map[string]float64) string {
	var parts []string
	for _, n := range demoIfaces {
		parts = append(parts, fmt.Sprintf("%s %4.0f", n, c[n]))
	}
	return strings.Join(parts, ", ")
}

// flowPolicy sends two UDP flows from the home address to the CN, one
// after the other, and shows with the tunnels' packet counters that the
// one to the policy's port rides wlan0 and the other eth0.
func (d *demo) flowPolicy(ctx context.Context) error {
	if !d.dp {
		d.printf("   skipped: the demo runs without a data plane (-dataplane none)\n")
		return nil
	}
	ps, err := d.mn.Client.Policies(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(ps, func(q control.Policy) bool { return q.Name == "voice" }) {
		return fmt.Errorf("policy \"voice\" not listed by mcoad: %+v", ps)
	}
	d.printf("   mcoad's [[policy]] \"voice\": udp dst_port %d prefer [\"wlan*\", \"eth*\"] (mcoactl policy list shows it)\n", demoVoicePort)
	for _, f := range []struct {
		port int
		want string
		why  string
	}{
		{demoVoicePort, "wlan0", "the policy"},
		{demoOtherPort, "eth0", "no policy: the best priority"},
	} {
		s, err := d.lab.StartStream(lab.MN, lab.CN, netip.AddrPortFrom(lab.CNAddr, uint16(f.port)), 2*time.Millisecond)
		if err != nil {
			return err
		}
		delta, err := d.ridesOn(ctx, fmt.Sprintf("UDP to port %d over %s", f.port, f.want), "tx", f.want, 100)
		s.Close()
		if err != nil {
			return err
		}
		if s.Local != lab.HoA {
			return fmt.Errorf("the flow to port %d left from %s, not the home address %s", f.port, s.Local, lab.HoA)
		}
		if s.Got() == 0 {
			return fmt.Errorf("none of the %d datagrams to port %d arrived at the CN", s.Sent(), f.port)
		}
		d.printf("   UDP %s -> [%s]:%d, %d sent, %d arrived; packets per tunnel: %s  (%s)\n",
			s.Local, lab.CNAddr, f.port, s.Sent(), s.Got(), fmtCounts(delta), f.why)
	}
	d.printf("   ok: the flow to port %d rides wlan0, the one to port %d eth0, both from the home address\n", demoVoicePort, demoOtherPort)
	return nil
}

func (d *demo) cut(ctx context.Context) error {
	var probe *lab.Stream
	if d.dp {
		var err error
		probe, err = d.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, demoProbePort), time.Millisecond)
		if err != nil {
			return err
		}
		defer probe.Close()
		if _, err := d.ridesOn(ctx, "CN -> HoA probes through eth0", "rx", "eth0", 100); err != nil {
			return err
		}
		d.printf("   the CN sends a UDP probe to %s every millisecond; they arrive through eth0's tunnel\n", lab.HoA)
	}
	off := d.ha.LogOffset()
	cutAt := time.Now()
	if err := d.lab.CutLink("eth0"); err != nil {
		return err
	}
	took, err := within(ctx, 10*time.Second, "eth0's binding removed", func(ctx context.Context) error {
		return d.checkCache(ctx, "wlan0", "wwan0")
	})
	if err != nil {
		return err
	}
	bus := lab.ParseLoggedBUs(d.ha.LogSince(off))
	if len(bus) == 0 {
		return errors.New("the HA logged no BU for the removal")
	}
	var via []string
	for _, bu := range bus {
		if bu.Src == d.coas["eth0"] {
			return fmt.Errorf("a BU came from eth0's care-of address %s, which has no carrier", bu.Src)
		}
		via = append(via, fmt.Sprintf("%s (%s)", bu.Src, d.ifaceOf(bu.Src)))
	}
	d.printf("   binding %d (eth0) removed from the HA's cache %v after the carrier loss,\n", d.bids["eth0"], ms(took))
	d.printf("   by a BU sent from %s\n", strings.Join(via, ", "))
	if _, err := within(ctx, 5*time.Second, "MN lists two registered bindings", func(ctx context.Context) error {
		return d.mnRegistered(ctx, 2)
	}); err != nil {
		return err
	}
	d.tables(ctx)
	if !d.dp {
		d.printf("   ok: wlan0 and wwan0 stay registered\n")
		return nil
	}
	delta, err := d.ridesOn(ctx, "CN -> HoA probes through another interface", "rx", "wlan0", 100)
	if err != nil {
		return err
	}
	gap, lost := probe.Outage(cutAt, 2*time.Second)
	d.printf("   probes keep arriving, now through wlan0 (packets per tunnel since: %s);\n", fmtCounts(delta))
	d.printf("   %d lost over the cut (a %v gap); %d sent, %d arrived in all\n", lost, ms(gap), probe.Sent(), probe.Got())
	if out, err := d.lab.Exec(ctx, lab.CN, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", lab.HoA.String()); err != nil {
		return fmt.Errorf("ping CN -> HoA without eth0: %v\n%s", err, out)
	} else if m := regexp.MustCompile(`\d+ packets transmitted, \d+ received[^\n]*`).Find(out); m != nil {
		d.printf("   cn$ ping -c 3 %s: %s\n", lab.HoA, m)
	}
	d.printf("   ok: wlan0 and wwan0 stay registered; the home address stays reachable through them\n")
	return nil
}

func (d *demo) ifaceOf(a netip.Addr) string {
	for n, c := range d.coas {
		if c == a {
			return n
		}
	}
	return "?"
}

func (d *demo) restore(ctx context.Context) error {
	if _, err := d.relink(ctx); err != nil {
		return err
	}
	d.tables(ctx)
	d.printf("   ok: three bindings again\n")
	return nil
}

// relink gives eth0 its carrier back after a second and waits until it is
// registered with the HA again; it returns when the carrier came back.
func (d *demo) relink(ctx context.Context) (time.Time, error) {
	// A second without carrier, as a cable pulled and plugged back: a
	// link that flaps within milliseconds also makes the access router
	// miss the MN's first neighbour solicitation, which costs 1 s.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	back := time.Now()
	if err := d.lab.RestoreLink("eth0"); err != nil {
		return back, err
	}
	took, err := within(ctx, 10*time.Second, "eth0 registered again", func(ctx context.Context) error {
		return d.checkCache(ctx, demoIfaces...)
	})
	if err != nil {
		return back, err
	}
	d.printf("   eth0 registered again %v after its carrier came back (same BID %d, same care-of address)\n", ms(took), d.bids["eth0"])
	_, err = within(ctx, 5*time.Second, "MN lists three registered bindings", func(ctx context.Context) error {
		return d.mnRegistered(ctx, 3)
	})
	return back, err
}

func (d *demo) returnHome(ctx context.Context) error {
	d.printf("   eth0 is plugged into the home link: with return_home = \"all\" the MN returns home,\n")
	d.printf("   de-registers every binding (lifetime 0, no BID) and the HA stops defending its home address\n")
	if err := d.lab.AttachHome("eth0"); err != nil {
		return err
	}
	took, err := within(ctx, 15*time.Second, "back home: every binding de-registered", func(ctx context.Context) error {
		if err := d.checkCache(ctx); err != nil {
			return err
		}
		if ok, err := d.proxied(ctx); err != nil || ok {
			return fmt.Errorf("the HA still proxies %s (%v)", lab.HoA, err)
		}
		st, err := d.mn.Client.Status(ctx)
		if err != nil {
			return err
		}
		if !st.AtHome || st.Counts.Bindings != 0 {
			return fmt.Errorf("MN: at home %v, %d bindings", st.AtHome, st.Counts.Bindings)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.printf("   at home %v after the move (learning the home link from a Router Advertisement included)\n", ms(took))
	d.tables(ctx)
	d.printf("   HA  ip -6 neigh show proxy dev %s: (none)\n", lab.HomeIface)
	d.printf("   ok: HA cache empty, proxy neighbour advertisement stopped, MN status at home\n")

	d.printf("\n   eth0 goes back to its access router\n")
	if err := d.lab.LeaveHome(ctx, "eth0"); err != nil {
		return err
	}
	took, err = within(ctx, 15*time.Second, "away again: three bindings registered", func(ctx context.Context) error {
		if err := d.checkCache(ctx, demoIfaces...); err != nil {
			return err
		}
		if ok, err := d.proxied(ctx); err != nil || !ok {
			return fmt.Errorf("the HA does not proxy %s (%v)", lab.HoA, err)
		}
		st, err := d.mn.Client.Status(ctx)
		if err != nil {
			return err
		}
		if st.AtHome {
			return errors.New("MN still at home")
		}
		return d.mnRegistered(ctx, 3)
	})
	if err != nil {
		return err
	}
	d.printf("   away from home again: three bindings registered %v after the move\n", ms(took))
	d.tables(ctx)
	as, _ := d.lab.ProxiedAddrs(ctx)
	sort.Slice(as, func(i, j int) bool { return as[i].Less(as[j]) })
	d.printf("   HA  ip -6 neigh show proxy dev %s: %v\n", lab.HomeIface, as)
	d.printf("   ok: registered again, the HA defends the home address again\n")
	return nil
}
