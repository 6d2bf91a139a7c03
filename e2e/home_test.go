package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// homeTimeout bounds a move to or from the home link: the MN learns the
// link from a Router Advertisement (solicited when the carrier comes up),
// configures an address by SLAAC and then signals.
const homeTimeout = 15 * time.Second

// TestReturnHomeAll: section 3.3's first choice, Figures 4 and 6. eth0 is
// plugged into the home link and the MN returns home: it de-registers every
// binding, the HA's cache empties and the HA stops proxying neighbour
// advertisements for the home address. A second interface on the home link
// (Figure 6) changes nothing. Back on foreign links, all three register
// again and the HA defends the home address again.
func TestReturnHomeAll(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{mn: lab.MNConfig{ReturnHome: "all"}})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	if !e.proxied() {
		t.Fatalf("the HA does not defend %s before returning home", lab.HoA)
	}

	// Figure 4.
	if err := e.lab.AttachHome("eth0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("Figure 4: every binding de-registered", homeTimeout, func() error { return e.cacheIs() })
	e.waitFor("Figure 4: proxy neighbour advertisement stopped", homeTimeout, func() error {
		if e.proxied() {
			return fmt.Errorf("the HA still proxies %s", lab.HoA)
		}
		return nil
	})
	e.waitFor("Figure 4: MN at home with no bindings", homeTimeout, func() error {
		s := e.status(e.mn)
		if !s.AtHome || s.Counts.Bindings != 0 {
			return fmt.Errorf("MN status: at home %v, %d bindings", s.AtHome, s.Counts.Bindings)
		}
		return nil
	})

	// Figure 6: a second interface on the home link.
	if err := e.lab.AttachHome("wlan0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lab.WaitAddrIn(e.ctx, "wlan0", lab.HomePrefix); err != nil {
		t.Fatal(err)
	}
	// Give the MN time to react to the second attachment, then check
	// nothing came back.
	time.Sleep(500 * time.Millisecond)
	if err := e.cacheIs(); err != nil {
		t.Errorf("Figure 6: %v", err)
	}
	if e.proxied() {
		t.Errorf("Figure 6: the HA proxies %s again", lab.HoA)
	}
	if s := e.status(e.mn); !s.AtHome {
		t.Errorf("Figure 6: MN not at home")
	}

	// Leaving home: every interface back on its foreign link.
	for _, n := range []string{"wlan0", "eth0"} {
		if err := e.lab.LeaveHome(e.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor("away again: three bindings in the HA's cache", homeTimeout, func() error { return e.cacheIs(ifaces...) })
	e.waitFor("away again: MN registered, not at home", homeTimeout, func() error {
		if s := e.status(e.mn); s.AtHome {
			return fmt.Errorf("MN still at home")
		}
		return e.registered(ifaces...)
	})
	if !e.proxied() {
		t.Errorf("away again: the HA does not defend %s", lab.HoA)
	}
}

// TestReturnHomeKeepForeign: section 3.3's second choice, Figure 5. eth0 is
// plugged into the home link but the MN keeps using its foreign links: only
// eth0's binding is de-registered (with its BID, from another care-of
// address), and the HA keeps defending the home address since bindings
// remain.
func TestReturnHomeKeepForeign(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{mn: lab.MNConfig{ReturnHome: "keep-foreign"}})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })

	mark := e.ha.BUMark()
	if err := e.lab.AttachHome("eth0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("Figure 5: only eth0's binding de-registered", homeTimeout, func() error { return e.cacheIs("wlan0", "wwan0") })
	if !e.proxied() {
		t.Errorf("Figure 5: the HA stopped defending %s while bindings remain", lab.HoA)
	}
	for _, bu := range e.processedBUs(mark) {
		if n := e.ifaceOf(bu.Src); n != "wlan0" && n != "wwan0" {
			t.Errorf("Figure 5: BU from %s (%+v), want it from a foreign care-of address", bu.Src, bu)
		}
	}
	e.waitFor("Figure 5: MN keeps wlan0 and wwan0 registered", registerTimeout, func() error {
		return e.registered("wlan0", "wwan0")
	})
	// Stable: nothing else goes away.
	time.Sleep(500 * time.Millisecond)
	if err := e.cacheIs("wlan0", "wwan0"); err != nil {
		t.Errorf("Figure 5, later: %v", err)
	}
	if !e.proxied() {
		t.Errorf("Figure 5, later: the HA stopped defending %s", lab.HoA)
	}

	if err := e.lab.LeaveHome(e.ctx, "eth0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("eth0 back on its foreign link and registered", homeTimeout, func() error { return e.cacheIs(ifaces...) })
}
