package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
)

// TestRestartGap: mcoad restarted keeping its bindings (what `systemctl
// restart` and an upgrade's try-restart do; the lab's mcoad runs without
// systemd, so deregister_on_stop = false takes the same path) while a 1 ms
// UDP stream from the CN to the home address runs: the stream flows again
// after the restart, the home agent never loses a binding (no
// de-registration BU), and the new process's BUs are all accepted. The
// gap is logged (`mcoa-lab bench -only restart` measures it), not
// asserted.
func TestRestartGap(t *testing.T) {
	t.Parallel()
	forBackends(t, testRestartGap)
}

func testRestartGap(t *testing.T, backend string) {
	e := setupDataplaneWith(t, 0, backend)
	// Keep the bindings on stop: the running mcoad read its file at
	// start, so it is stopped (de-registering) and started again on the
	// changed file.
	text, err := os.ReadFile(e.mn.Config)
	if err != nil {
		t.Fatal(err)
	}
	keep := strings.Replace(string(text), "deregister_on_stop = true", "deregister_on_stop = false", 1)
	if keep == string(text) {
		t.Fatalf("no deregister_on_stop = true in %s", e.mn.Config)
	}
	if err := os.WriteFile(e.mn.Config, []byte(keep), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.mn.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitFor("three bindings registered again", registerTimeout, func() error {
		if err := e.cacheIs(ifaces...); err != nil {
			return err
		}
		if err := e.registered(ifaces...); err != nil {
			return err
		}
		// The data plane follows the registrations (the stream's
		// receiver binds the home address).
		if out, err := e.lab.Exec(e.ctx, lab.MN, "ip", "-6", "addr", "show", "to", lab.HoA.String()+"/128"); err != nil || !strings.Contains(string(out), lab.HoA.String()) {
			return fmt.Errorf("no home address yet (%v)", err)
		}
		return nil
	})

	probe := e.startStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, 6100), time.Millisecond)
	flows := func(what string) {
		t.Helper()
		n := probe.Got()
		e.waitFor(what, 10*time.Second, func() error {
			if got := probe.Got() - n; got < 200 {
				return fmt.Errorf("%d probes arrived", got)
			}
			return nil
		})
	}
	flows("the CN's probes reach the home address")

	// Every change of the home agent's cache from now on.
	evs, err := e.ha.Client.Events(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var removed atomic.Int64
	go func() {
		for {
			ev, err := evs.Next()
			if err != nil {
				return
			}
			if ev.Kind == control.EventCache && ev.Removed {
				removed.Add(1)
				t.Logf("the home agent's cache lost %+v", ev.Cache)
			}
		}
	}()
	t.Cleanup(func() { evs.Close() })
	seqBefore := map[uint16]uint16{}
	for _, x := range e.mustCache() {
		seqBefore[x.BID] = x.Sequence
	}
	mark := e.ha.BUMark()

	t0 := time.Now()
	if err := e.mn.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.mn.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	flows("the probes flow again after the restart")
	gap, lost := probe.Outage(t0, 10*time.Second)
	t.Logf("restart keeping the bindings: probe gap %v, %d probes lost", gap.Round(100*time.Microsecond), lost)

	// The new process registered again (sequence numbers moved on), and
	// nothing in between removed a binding.
	e.waitFor("the new process's registrations", registerTimeout, func() error {
		for _, x := range e.mustCache() {
			if d := x.Sequence - seqBefore[x.BID]; d == 0 || d >= 1<<15 {
				return fmt.Errorf("BID %d: sequence %d, not after %d yet", x.BID, x.Sequence, seqBefore[x.BID])
			}
		}
		return e.registered(ifaces...)
	})
	time.Sleep(300 * time.Millisecond) // the event stream catches up with the cache
	if n := removed.Load(); n != 0 {
		t.Errorf("the home agent's cache lost %d bindings across a restart that keeps them", n)
	}
	for _, bu := range e.processedBUs(mark) {
		if bu.Status != 0 {
			t.Errorf("a BU of the restart was answered with status %d: %+v", bu.Status, bu)
		}
	}

	keptThenRemoved(t, e, flows)
}

// keptTunnels are the tunnels leftovers lists after a stop that kept the
// data plane: the devices, or with ebpf the encap routes of the BIDs'
// tables (the maps and links are pinned).
func keptTunnels(e *env) []string {
	var out []string
	for _, n := range ifaces {
		if e.mnCfg.Backend == "ebpf" {
			out = append(out, fmt.Sprintf("route table %d", int(config.DefaultTableBase)+int(e.bids[n])))
		} else {
			out = append(out, fmt.Sprintf("link mcoab%d", e.bids[n]))
		}
	}
	return out
}

// keptThenRemoved: a stop that keeps the bindings keeps the data plane
// (devices, rules, table, home address) and says so in state_dir; `mcoad
// -cleanup` leaves it alone once after a restart, then removes everything;
// a process that adopted a kept data plane removes it all on a normal stop.
func keptThenRemoved(t *testing.T, e *env, flows func(string)) {
	t.Helper()
	text, err := os.ReadFile(e.mn.Config)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^state_dir = "(.*)"$`).FindSubmatch(text)
	if m == nil {
		t.Fatalf("no state_dir in %s", e.mn.Config)
	}
	marker := filepath.Join(string(m[1]), "dataplane-kept.json")
	hasAll := func(what string, left []string) {
		t.Helper()
		for _, want := range append(keptTunnels(e), "link mcoa0", "address "+lab.HoA.String(), "table ip6 mcoad") {
			if !slices.Contains(left, want) {
				t.Fatalf("%s: %q is gone; left: %q", what, want, left)
			}
		}
		if !slices.ContainsFunc(left, func(l string) bool { return strings.HasPrefix(l, "rule ") }) {
			t.Fatalf("%s: no ip rule left: %q", what, left)
		}
	}
	cleanup := func() {
		t.Helper()
		if out, err := e.lab.Exec(e.ctx, lab.MN, e.mn.Bin, "-cleanup", "-config", e.mn.Config); err != nil {
			t.Fatalf("mcoad -cleanup: %v\n%s", err, out)
		}
	}

	if err := e.mn.Stop(); err != nil {
		t.Fatal(err)
	}
	hasAll("stopped keeping the bindings", e.leftovers())
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	// As systemd's restart would have written it: ExecStopPost's cleanup
	// leaves it alone once, and the next one removes everything.
	restart := strings.Replace(string(b), `"reason": "deregister_on_stop"`, `"reason": "restart"`, 1)
	if restart == string(b) {
		t.Fatalf("marker %s:\n%s", marker, b)
	}
	if err := os.WriteFile(marker, []byte(restart), 0o600); err != nil {
		t.Fatal(err)
	}
	cleanup()
	hasAll("mcoad -cleanup after a restart", e.leftovers())
	cleanup()
	if left := e.leftovers(); len(left) != 0 {
		t.Fatalf("left after the second mcoad -cleanup: %q", left)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("marker left after the cleanup: %v", err)
	}

	// Start afresh, restart keeping the data plane onto a configuration
	// that de-registers on stop, and stop: nothing is left.
	if err := e.mn.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	flows("the probes flow after a fresh start")
	dereg := strings.Replace(string(text), "deregister_on_stop = false", "deregister_on_stop = true", 1)
	if err := os.WriteFile(e.mn.Config, []byte(dereg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.mn.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	flows("the probes flow through the adopted data plane")
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("marker left after adopting: %v", err)
	}
	if err := e.mn.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) != 0 {
		t.Fatalf("a normal stop left: %q", left)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a normal stop wrote the marker: %v", err)
	}
}
