package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// demoHolePort: the black hole step's CN -> HoA probes (not step 3's port:
// the home agent remembers on which BID that flow last went).
const demoHolePort = 6002

// The demo's path liveness steps: ar1 stops forwarding while eth0 keeps its
// carrier and address (a failure no carrier reports), then forwards again.

// pathIs checks the MN's home binding on iface: its state and its path's
// liveness.
func (d *demo) pathIs(ctx context.Context, iface, state, live string) (control.Binding, error) {
	bs, err := d.mn.Client.Bindings(ctx)
	if err != nil {
		return control.Binding{}, err
	}
	for _, b := range bs {
		if b.Role == control.RoleHA && b.Interface == iface {
			if b.State != state || b.Liveness != live {
				return b, fmt.Errorf("%s's binding is %s with its path %s, want %s and %s", iface, b.State, b.Liveness, state, live)
			}
			return b, nil
		}
	}
	return control.Binding{}, fmt.Errorf("no binding for %s", iface)
}

func (d *demo) blackHole(ctx context.Context) error {
	var probe *lab.Stream
	if d.dp {
		// The home agent sends a peer's new flows on the BID the mobile
		// node last used towards that peer: step 3 left that on wlan0.
		// A ping from the home address (eth0 by priority) sets it back.
		if out, err := d.lab.Exec(ctx, lab.MN, "ping", "-6", "-n", "-c", "1", "-W", "2", "-I", lab.HoA.String(), lab.CNAddr.String()); err != nil {
			return fmt.Errorf("ping HoA -> CN: %v\n%s", err, out)
		}
		var err error
		if probe, err = d.lab.StartStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, demoHolePort), time.Millisecond); err != nil {
			return err
		}
		defer probe.Close()
		if _, err := d.ridesOn(ctx, "CN -> HoA probes through eth0", "rx", "eth0", 100); err != nil {
			return err
		}
		d.printf("   the CN sends a UDP probe to %s every millisecond; they arrive through eth0's tunnel\n", lab.HoA)
	}
	holeAt := time.Now()
	if err := d.lab.Fault(lab.AR1, lab.Fault{Kind: lab.FaultBlackhole}); err != nil {
		return err
	}
	d.printf("   ar1 drops everything it forwards (mcoa-lab fault ar1 blackhole): eth0 keeps its carrier,\n")
	d.printf("   its address and its default route; only traffic says the path is gone\n")
	took, err := within(ctx, 10*time.Second, "eth0's path dead and its binding withdrawn", func(ctx context.Context) error {
		if _, err := d.pathIs(ctx, "eth0", "down", "dead"); err != nil {
			return err
		}
		return d.checkCache(ctx, "wlan0", "wwan0")
	})
	if err != nil {
		return err
	}
	d.printf("   eth0's path found dead and its binding %d removed from the HA's cache %v after the black hole\n", d.bids["eth0"], ms(took))
	d.printf("   (silence on a busy tunnel, then 3 ICMPv6 echo probes from eth0's care-of address unanswered)\n")
	d.tables(ctx)
	d.mcoactl(ctx, "MN  mcoactl interfaces", d.mn, "interfaces")
	if out, err := d.lab.Exec(ctx, lab.MN, "ip", "-br", "link", "show", "dev", "eth0"); err != nil {
		return err
	} else {
		d.printf("   mn$ ip -br link show dev eth0: %s", out)
	}
	if !d.dp {
		return nil
	}
	delta, err := d.ridesOn(ctx, "CN -> HoA probes through another interface", "rx", "wlan0", 100)
	if err != nil {
		return err
	}
	gap, lost := probe.Outage(holeAt, 2*time.Second)
	if gap == 0 {
		return errors.New("no outage measured around the black hole")
	}
	d.printf("   probes keep arriving, now through wlan0 (packets per tunnel since: %s);\n", fmtCounts(delta))
	d.printf("   %d lost over the black hole (a %v gap, against minutes without path liveness)\n", lost, ms(gap))
	d.printf("   ok: the dead path is out of use; the home address stays reachable\n")
	return nil
}

func (d *demo) clearHole(ctx context.Context) error {
	if err := d.lab.Fault(lab.AR1, lab.Fault{}); err != nil {
		return err
	}
	d.printf("   ar1 forwards again (mcoa-lab fault ar1 clear); eth0's path is still probed\n")
	took, err := within(ctx, 15*time.Second, "eth0 registered and alive again", func(ctx context.Context) error {
		if _, err := d.pathIs(ctx, "eth0", "registered", "alive"); err != nil {
			return err
		}
		return d.checkCache(ctx, demoIfaces...)
	})
	if err != nil {
		return err
	}
	d.printf("   eth0 answered every probe for its hold-down (1s) and is registered again %v after\n", ms(took))
	if _, err := within(ctx, 5*time.Second, "MN lists three registered bindings", func(ctx context.Context) error {
		return d.mnRegistered(ctx, 3)
	}); err != nil {
		return err
	}
	d.tables(ctx)
	d.printf("   ok: three bindings again\n")
	return nil
}
