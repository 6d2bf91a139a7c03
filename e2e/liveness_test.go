package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// Path liveness: failures no carrier reports. The router in front of eth0
// (ar1) stops forwarding while eth0 keeps its carrier, address and
// default route; random loss must not fail a path over; a home agent that
// lost its bindings gets them again.

// bindingsAre checks mcoad's list against the home agent bindings of up
// (registered, path alive) and down (withdrawn: state down, path dead).
func (e *env) bindingsAre(up []string, down ...string) error {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	bs, err := e.mn.Client.Bindings(ctx)
	if err != nil {
		return err
	}
	got := map[string]control.Binding{}
	for _, b := range bs {
		if b.Role == control.RoleHA {
			got[b.Interface] = b
		}
	}
	if len(got) != len(up)+len(down) {
		return fmt.Errorf("%d home bindings, want %v up and %v down: %+v", len(got), up, down, bs)
	}
	for _, n := range up {
		b, ok := got[n]
		if !ok || b.State != "registered" || b.Liveness != "alive" || b.BID != e.bids[n] || b.CoA != e.coas[n] {
			return fmt.Errorf("%s: %+v, want registered and alive with BID %d CoA %s", n, b, e.bids[n], e.coas[n])
		}
	}
	for _, n := range down {
		b, ok := got[n]
		if !ok || b.State != "down" || b.Liveness != "dead" || b.BID != e.bids[n] || b.CoA != e.coas[n] {
			return fmt.Errorf("%s: %+v, want down and dead with BID %d CoA %s", n, b, e.bids[n], e.coas[n])
		}
	}
	return nil
}

// watchBindings records every home binding event of mcoad until the test
// ends; seen reports the ones match accepts.
func (e *env) watchBindings() (seen func(match func(control.Binding) bool) []control.Binding) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	es, err := e.mn.Client.Events(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var mu sync.Mutex
	var all []control.Binding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := es.Next()
			if err != nil {
				return
			}
			if ev.Binding != nil && ev.Binding.Role == control.RoleHA {
				mu.Lock()
				all = append(all, *ev.Binding)
				mu.Unlock()
			}
		}
	}()
	e.t.Cleanup(func() { cancel(); es.Close(); <-done })
	return func(match func(control.Binding) bool) []control.Binding {
		mu.Lock()
		defer mu.Unlock()
		var out []control.Binding
		for _, b := range all {
			if match(b) {
				out = append(out, b)
			}
		}
		return out
	}
}

// streamOnEth0 starts the 1 ms CN -> home address probe stream and waits
// until mcoad has seen it arrive through eth0 (so that it is what goes
// quiet) with every path alive.
func (e *env) streamOnEth0() *lab.Stream {
	e.t.Helper()
	probe := e.startStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, probePort), time.Millisecond)
	e.probesFlow("probes arrive", probe)
	e.rxGrowsOn("probes come through eth0", "eth0", 100, "wlan0", "wwan0")
	e.waitFor("every path alive", registerTimeout, func() error { return e.bindingsAre(ifaces) })
	return probe
}

func (e *env) fault(node string, f lab.Fault) {
	e.t.Helper()
	if err := e.lab.Fault(node, f); err != nil {
		e.t.Fatal(err)
	}
}

// linkUp checks that eth0 kept its carrier and its care-of address.
func (e *env) linkUp(mnIface string) {
	e.t.Helper()
	out, err := e.lab.Exec(e.ctx, lab.MN, "ip", "-br", "link", "show", "dev", mnIface)
	if err != nil || !strings.Contains(string(out), "LOWER_UP") {
		e.t.Fatalf("%s lost its carrier: %s %v", mnIface, out, err)
	}
	coas, err := e.lab.CoAs(e.ctx)
	if err != nil || coas[mnIface] != e.coas[mnIface] {
		e.t.Fatalf("%s's care-of address %v, want %v still (%v)", mnIface, coas[mnIface], e.coas[mnIface], err)
	}
}

// TestBlackHole: ar1 stops forwarding with eth0's carrier up, while a 1 ms
// stream from the CN to the home address comes through eth0. mcoad finds
// eth0's path dead, withdraws its binding (the HA stops sending on it), the
// stream goes on through wlan0; when ar1 forwards again, eth0 is
// registered again after its hold-down and the stream comes back to it.
// Three black holes (one with -short); the outages are logged (make bench
// measures them).
func TestBlackHole(t *testing.T) {
	t.Parallel()
	forBackends(t, testBlackHole)
}

func testBlackHole(t *testing.T, backend string) {
	e := setupDataplaneWith(t, 0, backend)
	probe := e.streamOnEth0()
	holes := 3
	if testing.Short() {
		holes = 1
	}
	var gaps, back []time.Duration
	for i := range holes {
		time.Sleep(time.Second) // RFC 6275 MAX_UPDATE_RATE between the BUs
		cut := time.Now()
		e.fault(lab.AR1, lab.Fault{Kind: lab.FaultBlackhole})
		e.waitFor(fmt.Sprintf("hole %d: eth0 down and dead, the others registered", i+1), registerTimeout,
			func() error { return e.bindingsAre([]string{"wlan0", "wwan0"}, "eth0") })
		e.waitFor(fmt.Sprintf("hole %d: the HA holds no binding for eth0", i+1), registerTimeout,
			func() error { return e.cacheIs("wlan0", "wwan0") })
		e.probesFlow(fmt.Sprintf("hole %d: probes arrive again", i+1), probe)
		e.rxGrowsOn(fmt.Sprintf("hole %d: probes come through wlan0", i+1), "wlan0", 100, "eth0", "wwan0")
		d, lost := probe.Outage(cut, 2*time.Second)
		gaps = append(gaps, d)
		t.Logf("hole %d: outage %v, %d probes lost", i+1, d, lost)
		e.linkUp("eth0")
		is, err := e.interfaces()
		if err != nil || is["eth0"].Liveness != "dead" || is["eth0"].State != "coa" {
			t.Fatalf("mcoactl interfaces: eth0 %+v (%v), want a care-of address whose path is dead", is["eth0"], err)
		}

		clear := time.Now()
		e.fault(lab.AR1, lab.Fault{})
		e.waitFor(fmt.Sprintf("hole %d: eth0 registered and alive again", i+1), registerTimeout,
			func() error { return e.bindingsAre(ifaces) })
		back = append(back, time.Since(clear))
		e.waitFor(fmt.Sprintf("hole %d: the HA holds eth0 again", i+1), registerTimeout, func() error { return e.cacheIs(ifaces...) })
		e.rxGrowsOn(fmt.Sprintf("hole %d: probes come through eth0 again", i+1), "eth0", 100, "wlan0", "wwan0")
	}
	m := e.metrics(e.mn)
	if lost := m[fmt.Sprintf(`mcoad_path_probes_lost_total{bid="%d",interface="eth0"}`, e.bids["eth0"])]; lost < 3*float64(holes) {
		t.Errorf("eth0's path lost %v probes over %d black holes, want at least 3 each", lost, holes)
	}
	t.Logf("black hole on eth0's path (carrier up), 1ms CN -> HoA stream: outage p50 %v, max %v; all %v",
		percentile(gaps, 0.5), percentile(gaps, 1), gaps)
	t.Logf("back in use after the black hole cleared: %v (hold-down 1s)", back)
}

// TestRandomLossNoFailover: 5% random loss each way, for three minutes, on
// eth0's path (carrying a stream) and on wwan0's (idle, keepalives only):
// no path is found dead and no binding leaves. One minute with -short.
func TestRandomLossNoFailover(t *testing.T) {
	t.Parallel()
	d := 3 * time.Minute
	if testing.Short() {
		d = time.Minute
	}
	e := setupDataplaneFor(t, d)
	probe := e.startStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, probePort), time.Millisecond)
	e.probesFlow("probes arrive", probe)
	e.waitFor("every path alive", registerTimeout, func() error { return e.bindingsAre(ifaces) })
	seen := e.watchBindings()
	e.fault(lab.AR1, lab.Fault{Kind: lab.FaultLoss, Percent: 5})
	e.fault(lab.AR3, lab.Fault{Kind: lab.FaultLoss, Percent: 5})
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(5 * time.Second)
		if bad := seen(func(b control.Binding) bool { return b.State != "registered" || b.Liveness == "dead" }); len(bad) > 0 {
			t.Fatalf("after %v of 5%% loss: %+v", time.Since(start).Round(time.Second), bad)
		}
	}
	if err := e.bindingsAre(ifaces); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{lab.AR1, lab.AR3} {
		st, err := e.lab.FaultStatus(n)
		if err != nil || st.Dropped == 0 {
			t.Fatalf("%s dropped nothing (%+v, %v): the loss was not applied", n, st, err)
		}
	}
	m := e.metrics(e.mn)
	for _, n := range []string{"eth0", "wwan0"} {
		k := fmt.Sprintf(`{bid="%d",interface="%s"}`, e.bids[n], n)
		t.Logf("%s over %v of 5%% loss: %v probes, %v lost, loss now %v", n, d, m["mcoad_path_probes_total"+k],
			m["mcoad_path_probes_lost_total"+k], m["mcoad_path_loss_ratio"+k])
	}
	if m[fmt.Sprintf(`mcoad_path_probes_lost_total{bid="%d",interface="wwan0"}`, e.bids["wwan0"])] == 0 {
		t.Error("wwan0's keepalives lost none: the loss did not reach them")
	}
	t.Logf("stream through the loss: %d sent, %d received", probe.Sent(), probe.Got())
}

// TestHomeAgentLosesState: mcoa-ha is killed and started again with an
// empty state directory (a new machine): it knows no binding. mcoad sees
// every path answer while nothing comes through the tunnels, registers
// again at once, and the stream to the home address flows again.
func TestHomeAgentLosesState(t *testing.T) {
	t.Parallel()
	e := setupDataplane(t)
	probe := e.streamOnEth0()
	refreshes := func() float64 { return e.metrics(e.mn)["mcoad_home_refreshes_total"] }
	before := refreshes()

	if err := e.ha.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.ha.Proc().Done()
	e.emptyHAState()
	n := probe.Got()
	start := time.Now()
	if err := e.ha.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	took := e.waitFor("probes arrive again", 2*registerTimeout, func() error {
		if got := probe.Got() - n; got < 50 {
			return fmt.Errorf("%d probes since the start", got)
		}
		return nil
	})
	e.waitFor("the new home agent holds the three bindings", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	d, lost := probe.Outage(start.Add(-3*time.Second), time.Minute)
	t.Logf("home agent restarted without state: 50 probes arrived %v after its start; outage %v, %d probes lost", took, d, lost)
	if refreshes() <= before {
		t.Error("mcoad did not count a re-registration for a home agent that lost the bindings")
	}
	if err := e.bindingsAre(ifaces); err != nil {
		t.Fatal(err)
	}
}

// emptyHAState empties mcoa-ha's state directory (a home agent that lost
// its disk).
func (e *env) emptyHAState() {
	e.t.Helper()
	ents, err := os.ReadDir(e.ha.StateDir)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	for _, x := range ents {
		if err := os.RemoveAll(filepath.Join(e.ha.StateDir, x.Name())); err != nil {
			e.t.Fatal(err)
		}
	}
	e.t.Logf("emptied mcoa-ha's state directory %s (%d files)", e.ha.StateDir, len(ents))
}
