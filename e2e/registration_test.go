package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// registerTimeout bounds a registration: with no loss it takes
// milliseconds, but one lost BU costs the 1 s retransmission timer, and a
// loaded 2-core machine runs several labs at once.
const registerTimeout = 10 * time.Second

// TestFigure3: the draft's Figure 3, a mobile node with three interfaces on
// three foreign links registers all three care-of addresses with its home
// agent in one bulk Binding Update; the HA's cache holds three bindings with
// the interfaces' BIDs, care-of addresses and priorities, and `mcoactl
// bindings --json` on the MN shows them registered.
func TestFigure3(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error {
		return e.cacheIs(ifaces...)
	})
	e.waitFor("three bindings registered on the MN", registerTimeout, func() error {
		return e.registered(ifaces...)
	})

	var bs []control.Binding
	decodeJSON(t, e.mcoactl(e.mn, "--json", "bindings"), &bs)
	if len(bs) != 3 {
		t.Fatalf("mcoactl bindings --json: %d bindings, want 3: %+v", len(bs), bs)
	}
	for _, b := range bs {
		n := b.Interface
		if b.BID != e.bids[n] || b.CoA != e.coas[n] || b.Priority != priority[n] || b.State != "registered" ||
			b.LastStatus != 0 || b.Role != control.RoleHA || b.Peer != lab.HAAddr || b.Lifetime == 0 || b.ExpiresIn <= 0 {
			t.Errorf("mcoactl bindings --json: %+v; want BID %d CoA %s priority %d registered with %s", b, e.bids[n], e.coas[n], priority[n], lab.HAAddr)
		}
	}
	var cache []control.CacheEntry
	decodeJSON(t, e.mcoactl(e.ha, "--json", "cache"), &cache)
	if err := e.checkEntries(cache, ifaces...); err != nil {
		t.Errorf("mcoactl cache --json: %v", err)
	}
	if !e.proxied() {
		t.Errorf("the HA does not defend %s on the home link", lab.HoA)
	}
	if s := e.status(e.mn); s.Mode != "bulk" || s.AtHome || s.Counts.Registered != 3 {
		t.Errorf("MN status %+v, want bulk mode, away from home, 3 registered", s)
	}
}

// TestRegistrationModes: bulk registration sends one BU carrying the three
// BIDs; individual registration one BU per BID, each from its own care-of
// address (draft 5.2, 5.3); an HA with bulk registration off answers the
// bulk BU with 146 and the MN falls back to individual registration.
func TestRegistrationModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string
		noBulk   bool
		wantMode string
	}{
		{"bulk", "bulk", false, "bulk"},
		{"individual", "individual", false, "individual"},
		{"fallback", "bulk", true, "individual"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, opts{ha: lab.HAConfig{NoBulk: tc.noBulk}, mn: lab.MNConfig{Registration: tc.mode}, noMN: true})
			mark := e.ha.BUMark()
			e.startMN()
			e.waitFor("three bindings in the HA's cache", registerTimeout, func() error {
				return e.cacheIs(ifaces...)
			})
			e.waitFor("three bindings registered on the MN", registerTimeout, func() error {
				return e.registered(ifaces...)
			})
			if s := e.status(e.mn); s.Mode != tc.wantMode {
				t.Errorf("MN registration mode %q, want %q", s.Mode, tc.wantMode)
			}
			bus := e.processedBUs(mark)
			m := e.metrics(e.ha)
			rejected146 := m[`mcoa_ha_bu_rejected_total{status="146"}`]
			t.Logf("BUs seen by the HA: %+v; metrics: received %v accepted %v rejected(146) %v",
				bus, m["mcoa_ha_bu_received_total"], m["mcoa_ha_bu_accepted_total"], rejected146)

			var accepted []control.BU
			var refused []control.BU
			for _, bu := range bus {
				switch {
				case bu.HoA != lab.HoA:
					t.Errorf("BU for home address %v, want %s", bu.HoA, lab.HoA)
				case bu.Status == 0:
					accepted = append(accepted, bu)
				case bu.Status == 146:
					refused = append(refused, bu)
				default:
					t.Errorf("BU answered with status %d: %+v", bu.Status, bu)
				}
			}
			switch tc.wantMode {
			case "bulk":
				if len(accepted) != 1 || len(accepted[0].BIDs) != 3 {
					t.Errorf("accepted BUs %+v, want one carrying 3 BIDs", accepted)
				}
			case "individual":
				// One BU per binding, each sent from its own care-of
				// address with its single BID.
				from := map[string]int{}
				for _, bu := range accepted {
					if len(bu.BIDs) != 1 {
						t.Errorf("individual BU with %d BIDs: %+v", len(bu.BIDs), bu)
					}
					from[e.ifaceOf(bu.Src)]++
				}
				if fmt.Sprint(from) != "map[eth0:1 wlan0:1 wwan0:1]" {
					t.Errorf("individual BUs from %v, want one from each interface's care-of address", from)
				}
			}
			if tc.noBulk {
				if len(refused) == 0 || len(refused[0].BIDs) != 3 || rejected146 < 1 {
					t.Errorf("want the bulk BU refused with 146 first; refused %+v, metric %v", refused, rejected146)
				}
			} else if len(refused) > 0 || rejected146 != 0 {
				t.Errorf("BUs refused with 146: %+v", refused)
			}
			if got := m["mcoa_ha_bu_accepted_total"]; int(got) != len(accepted) {
				t.Errorf("HA counted %v accepted BUs, its events %d", got, len(accepted))
			}
		})
	}
}

// TestLinkLoss: eth0 loses carrier; its binding is removed through one of
// the other care-of addresses (draft 5.6: the lost link cannot carry the
// BU), the other two stay; the carrier comes back and eth0 is registered
// again with the same BID.
func TestLinkLoss(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	for round := 1; round <= 2; round++ {
		mark := e.ha.BUMark()
		if err := e.lab.CutLink("eth0"); err != nil {
			t.Fatal(err)
		}
		e.waitFor(fmt.Sprintf("round %d: eth0's binding removed", round), registerTimeout, func() error {
			return e.cacheIs("wlan0", "wwan0")
		})
		bus := e.processedBUs(mark)
		if len(bus) == 0 {
			t.Fatalf("round %d: the HA logged no BU for the removal", round)
		}
		for _, bu := range bus {
			if bu.Src == e.coas["eth0"] {
				t.Errorf("round %d: BU from eth0's care-of address %s while it has no carrier: %+v", round, bu.Src, bu)
			}
			if n := e.ifaceOf(bu.Src); n != "wlan0" && n != "wwan0" {
				t.Errorf("round %d: removal BU from %s, want another care-of address of the MN", round, bu.Src)
			}
			if bu.Status != 0 {
				t.Errorf("round %d: removal BU answered %d", round, bu.Status)
			}
		}
		e.waitFor(fmt.Sprintf("round %d: MN lists wlan0 and wwan0 registered", round), registerTimeout, func() error {
			return e.registered("wlan0", "wwan0")
		})

		if err := e.lab.RestoreLink("eth0"); err != nil {
			t.Fatal(err)
		}
		e.waitFor(fmt.Sprintf("round %d: eth0 registered again", round), registerTimeout, func() error {
			return e.cacheIs(ifaces...)
		})
		e.waitFor(fmt.Sprintf("round %d: MN lists all three registered", round), registerTimeout, func() error {
			return e.registered(ifaces...)
		})
	}
	if !e.proxied() {
		t.Errorf("the HA stopped defending %s", lab.HoA)
	}
}
