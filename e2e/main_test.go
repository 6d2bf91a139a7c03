package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/control"
)

// bins are the daemons under test, built once by TestMain.
var bins struct {
	mcoad, ha, ctl string
	err            error
}

func TestMain(m *testing.M) {
	os.Exit(func() int {
		// Build only when the tests can run: a plain `go test ./...` as
		// a user skips them without paying for three builds.
		if os.Geteuid() == 0 || nstest.Required() {
			dir, cleanup, err := binaries()
			bins.err = err
			if err == nil {
				defer cleanup()
				bins.mcoad = filepath.Join(dir, lab.MNBinary)
				bins.ha = filepath.Join(dir, lab.HABinary)
				bins.ctl = filepath.Join(dir, lab.CtlBinary)
			}
		}
		return m.Run()
	}())
}

// binaries returns a directory holding mcoad, mcoa-ha and mcoactl: MCOA_BIN
// if set, else a fresh `go build` of this tree.
func binaries() (dir string, cleanup func(), err error) {
	if d := os.Getenv("MCOA_BIN"); d != "" {
		return d, func() {}, nil
	}
	dir, err = os.MkdirTemp("", "mcoa-e2e-bin")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	gobin, err := exec.LookPath("go")
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("building the daemons: %w (or set MCOA_BIN)", err)
	}
	cmd := exec.Command(gobin, "build", "-o", dir+"/", "./cmd/mcoad", "./cmd/mcoa-ha", "./cmd/mcoactl")
	cmd.Dir = ".." // the module root: tests run in e2e/
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, cleanup, nil
}

// Priorities of lab.DefaultInterfaceRules, by interface.
var priority = lab.DefaultPriorities

// ifaces are the MN's three access interfaces.
var ifaces = lab.MNIfaces

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is one test's lab with mcoa-ha and mcoad running in it.
type env struct {
	t      *testing.T
	ctx    context.Context
	lab    *lab.Lab
	ha, mn *lab.Daemon
	mnCfg  lab.MNConfig
	coas   map[string]netip.Addr // each MN interface's SLAAC care-of address
	bids   map[string]uint16     // each MN interface's BID, once registered
	// prio is the priority each MN interface's bindings should carry:
	// priority's, unless a test changes it (NetworkManager's metered).
	prio map[string]uint8
}

type opts struct {
	ha      lab.HAConfig
	mn      lab.MNConfig
	noMN    bool          // do not start mcoad yet (env.startMN)
	tools   []string      // tools besides ip, radvd and ping
	vehicle bool          // the vehicle lab (lab.Config.Vehicle)
	timeout time.Duration // the whole test's; default 2 minutes
}

// setup builds a lab and starts the daemons in it; Cleanup tears it all
// down and shows the logs if the test failed.
func setup(t *testing.T, o opts) *env {
	t.Helper()
	nstest.Require(t, append([]string{"radvd", "ping"}, o.tools...)...)
	if bins.err != nil {
		t.Fatalf("building the daemons: %v", bins.err)
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	t.Cleanup(cancel)
	start := time.Now()
	l, err := lab.Up(ctx, &lab.Config{
		Prefix:  nstest.Prefix(),
		Dir:     t.TempDir(),
		Vehicle: o.vehicle,
		Logger:  slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.DumpLogs(tlog{t})
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	e := &env{t: t, ctx: ctx, lab: l, mnCfg: o.mn, bids: map[string]uint16{}, prio: maps.Clone(priority)}
	e.coas, err = l.CoAs(ctx)
	if err != nil || len(e.coas) != 3 {
		t.Fatalf("care-of addresses %v: %v", e.coas, err)
	}
	o.ha.Bin = bins.ha
	if e.ha, err = l.StartHA(ctx, &o.ha); err != nil {
		t.Fatal(err)
	}
	e.mnCfg.Bin = bins.mcoad
	if !o.noMN {
		e.startMN()
	}
	t.Logf("lab %s with daemons up in %v", l.Prefix, time.Since(start).Round(time.Millisecond))
	return e
}

func (e *env) startMN() {
	e.t.Helper()
	var err error
	if e.mn, err = e.lab.StartMN(e.ctx, &e.mnCfg); err != nil {
		e.t.Fatal(err)
	}
}

// waitFor polls check every 10ms until it returns nil, for at most d, and
// fails the test with check's last error otherwise.
func (e *env) waitFor(what string, d time.Duration, check func() error) time.Duration {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, d)
	defer cancel()
	var last error
	took, err := lab.Poll(ctx, 10*time.Millisecond, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err != nil {
		e.t.Fatalf("%s: not within %v: %v", what, d, last)
	}
	e.t.Logf("%s: %v", what, took.Round(time.Millisecond))
	return took
}

func (e *env) cache() ([]control.CacheEntry, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	return e.ha.Client.Cache(ctx)
}

func (e *env) mustCache() []control.CacheEntry {
	e.t.Helper()
	c, err := e.cache()
	if err != nil {
		e.t.Fatalf("HA cache: %v", err)
	}
	return c
}

func (e *env) interfaces() (map[string]control.Interface, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	is, err := e.mn.Client.Interfaces(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]control.Interface{}
	for _, i := range is {
		out[i.Name] = i
	}
	return out, nil
}

func (e *env) status(d *lab.Daemon) control.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	s, err := d.Client.Status(ctx)
	if err != nil {
		e.t.Fatalf("status of %s: %v", d.Node, err)
	}
	return s
}

func (e *env) metrics(d *lab.Daemon) map[string]float64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	m, err := d.Metrics(ctx)
	if err != nil {
		e.t.Fatalf("metrics of %s: %v", d.Node, err)
	}
	return m
}

// mcoactl runs the mcoactl binary against d's socket.
func (e *env) mcoactl(d *lab.Daemon, args ...string) []byte {
	e.t.Helper()
	out, err := exec.CommandContext(e.ctx, bins.ctl, append([]string{"-socket", d.Socket}, args...)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		e.t.Fatalf("mcoactl %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// learnBIDs records the BID mcoad gave each interface: they must be
// distinct, non-zero, and stay the same for the rest of the test.
func (e *env) learnBIDs() error {
	is, err := e.interfaces()
	if err != nil {
		return err
	}
	bids := map[string]uint16{}
	seen := map[uint16]string{}
	for _, n := range ifaces {
		i, ok := is[n]
		if !ok || i.BID == 0 {
			return fmt.Errorf("interface %s has no BID yet: %+v", n, i)
		}
		if o, dup := seen[i.BID]; dup {
			return fmt.Errorf("interfaces %s and %s share BID %d", o, n, i.BID)
		}
		seen[i.BID] = n
		bids[n] = i.BID
	}
	e.bids = bids
	return nil
}

// cacheIs checks that the HA's cache holds exactly one home registration
// for each of want, with that interface's BID, care-of address and
// priority (e.prio).
func (e *env) cacheIs(want ...string) error {
	c, err := e.cache()
	if err != nil {
		return err
	}
	return e.checkEntries(c, want...)
}

func (e *env) checkEntries(c []control.CacheEntry, want ...string) error {
	if len(e.bids) == 0 {
		if err := e.learnBIDs(); err != nil {
			return err
		}
	}
	if len(c) != len(want) {
		return fmt.Errorf("cache has %d entries, want %d (%s): %s", len(c), len(want), strings.Join(want, " "), fmtCache(c))
	}
	byBID := map[uint16]control.CacheEntry{}
	for _, x := range c {
		byBID[x.BID] = x
	}
	for _, n := range want {
		x, ok := byBID[e.bids[n]]
		if !ok {
			return fmt.Errorf("no entry for %s (BID %d): %s", n, e.bids[n], fmtCache(c))
		}
		if x.HoA != lab.HoA || x.CoA != e.coas[n] || x.Priority != e.prio[n] || !x.HomeRegistration || x.Lifetime == 0 {
			return fmt.Errorf("entry for %s is %+v, want HoA %s CoA %s priority %d, home registration", n, x, lab.HoA, e.coas[n], e.prio[n])
		}
	}
	return nil
}

func fmtCache(c []control.CacheEntry) string {
	if len(c) == 0 {
		return "(empty)"
	}
	var parts []string
	for _, x := range c {
		parts = append(parts, fmt.Sprintf("[hoa %s bid %d coa %s prio %d seq %d]", x.HoA, x.BID, x.CoA, x.Priority, x.Sequence))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// registered checks that mcoad lists exactly want as registered with the
// home agent, status 0, with their BIDs, care-of addresses and priorities
// (e.prio), and nothing else.
func (e *env) registered(want ...string) error {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	bs, err := e.mn.Client.Bindings(ctx)
	if err != nil {
		return err
	}
	var got []string
	for _, b := range bs {
		if b.State != "registered" || b.LastStatus != 0 || b.Role != control.RoleHA || b.Peer != lab.HAAddr {
			return fmt.Errorf("binding %+v", b)
		}
		if b.BID != e.bids[b.Interface] || b.CoA != e.coas[b.Interface] || b.Priority != e.prio[b.Interface] {
			return fmt.Errorf("binding %+v, want BID %d CoA %s priority %d", b, e.bids[b.Interface], e.coas[b.Interface], e.prio[b.Interface])
		}
		got = append(got, b.Interface)
	}
	sort.Strings(got)
	w := slices.Clone(want)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		return fmt.Errorf("registered bindings on %v, want %v", got, w)
	}
	return nil
}

// proxied reports whether the HA defends the home address on the home link.
func (e *env) proxied() bool {
	e.t.Helper()
	as, err := e.lab.ProxiedAddrs(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.Contains(as, lab.HoA)
}

// processedBUs returns the BUs mcoa-ha processed (reported on its event
// stream and not dropped) since mark (lab.Daemon.BUMark).
func (e *env) processedBUs(mark int) []control.BU {
	return lab.Processed(e.ha.BUsSince(mark))
}

// ifaceOf names the interface a care-of address belongs to.
func (e *env) ifaceOf(a netip.Addr) string {
	for n, c := range e.coas {
		if c == a {
			return n
		}
	}
	return a.String()
}

// decodeJSON parses out into v or fails the test.
func decodeJSON(t *testing.T, out []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
}
