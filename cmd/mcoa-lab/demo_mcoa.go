package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// The MCoA demo, `mcoa-lab demo`: registration of three care-of
// addresses, flow policy, path liveness (demo_liveness.go), link loss and
// returning home.

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
			return d.register(ctx, &lab.MNConfig{Bin: bins[lab.MNBinary], Backend: backend, Extra: lab.VoicePolicy})
		}},
		{"flow policy: UDP to port 5001 over wlan0, the rest by priority (eth0)", d.flowPolicy},
		{"eth0's path dies upstream, its carrier up: found dead, its binding withdrawn", d.blackHole},
		{"eth0's path works again: registered again after its hold-down", d.clearHole},
		{"eth0 loses its carrier: its binding is removed through another care-of address", d.cut},
		{"eth0's carrier comes back: registered again", d.restore},
		{"returning home (return_home = \"all\") and leaving again", d.returnHome},
	})
}

// register starts mcoad with cfg and checks that its three care-of
// addresses are registered with the HA in one bulk BU.
func (d *demo) register(ctx context.Context, cfg *lab.MNConfig) error {
	mark := d.ha.BUMark()
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
	var bulk []control.BU
	for _, bu := range lab.Processed(d.ha.BUsSince(mark)) {
		if bu.Status == 0 {
			bulk = append(bulk, bu)
		}
	}
	if len(bulk) != 1 || !sameBIDs(bulk[0].BIDs, d.bids) {
		return fmt.Errorf("the HA accepted %d BUs (%+v), want one carrying the three BIDs %v", len(bulk), bulk, d.bids)
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

const (
	demoVoicePort = lab.VoicePort // lab.VoicePolicy's: UDP prefers wlan0, then eth0
	demoOtherPort = 5003          // no policy
	demoProbePort = 6000          // CN -> HoA probes in step 3
)

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
	mark := d.ha.BUMark()
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
	via, err := d.removalVia("HA", lab.Processed(d.ha.BUsSince(mark)))
	if err != nil {
		return err
	}
	d.printf("   binding %d (eth0) removed from the HA's cache %v after the carrier loss,\n", d.bids["eth0"], ms(took))
	d.printf("   by a BU sent from %s\n", via)
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
