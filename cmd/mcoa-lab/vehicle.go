package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// runVehicle is `mcoa-lab demo -vehicle`: a host behind mcoad as NEMO
// mobile router reaches the CN through the MCoA tunnels, and keeps its
// flows when an uplink goes; the HA's route for the mobile network follows
// the bindings.
func (d *demo) runVehicle(ctx context.Context, prefix string, bins map[string]string) error {
	d.printf("mcoa-lab demo -vehicle: mcoad as NEMO mobile router (RFC 3963) with multiple care-of addresses\n\n")
	d.printf("Building the vehicle lab: the lab of `mcoa-lab demo` plus a host behind the MN's %s on the\n", lab.Ingress)
	d.printf("mobile network %s, which radvd on the MN advertises.\n", lab.MobileNetPrefix)
	t := time.Now()
	l, err := lab.Up(ctx, &lab.Config{Prefix: prefix, Vehicle: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	d.lab, d.dp = l, true
	v := &vehicle{demo: d}
	if v.host, err = l.WaitHostAddr(ctx); err != nil {
		return err
	}
	d.printf("  lab %s up in %v; the host's address by SLAAC: %s\n", l.Prefix, ms(time.Since(t)), v.host)
	if d.ha, err = l.StartHA(ctx, &lab.HAConfig{Bin: bins[lab.HABinary], Backend: "tun", Vehicle: true}); err != nil {
		return err
	}
	if d.mn, err = l.StartMN(ctx, &lab.MNConfig{Bin: bins[lab.MNBinary], Backend: "tun", Vehicle: true}); err != nil {
		return err
	}
	d.printf("  mcoa-ha may route %s to the HoA's mobile router; mcoad runs with [mobile_router] ingress = [%q]\n",
		lab.MobileNetPrefix, lab.Ingress)
	defer v.close()
	return d.runSteps(ctx, []demoStep{
		{"registration with the R flag and a Mobile Network Prefix option", v.register},
		{"the host pings the CN and opens a TCP stream to it, through the tunnels", v.flows},
		{"eth0 loses its carrier: the host's flows move to wlan0", v.cut},
		{"eth0 comes back; mcoad stops and the HA's route for the network goes", v.deregister},
	})
}

// vehicle is the state the steps of `demo -vehicle` share: the host's
// address and its flows.
type vehicle struct {
	*demo
	host  netip.Addr
	tcp   *lab.TCPFlow // host -> CN
	probe *lab.Stream  // CN -> host
}

func (v *vehicle) close() {
	if v.tcp != nil {
		v.tcp.Close()
	}
	if v.probe != nil {
		v.probe.Close()
	}
}

func (v *vehicle) register(ctx context.Context) error {
	took, err := within(ctx, 15*time.Second, "three bindings carrying the prefix", func(ctx context.Context) error {
		return v.prefixRoutes(ctx, 3)
	})
	if err != nil {
		return err
	}
	v.printf("  registered and routed in %v\n", ms(took))
	is, err := v.mn.Client.Interfaces(ctx)
	if err != nil {
		return err
	}
	v.bids = map[string]uint16{}
	for _, i := range is {
		v.bids[i.Name] = i.BID
	}
	v.tables(ctx)
	if out, err := exec.CommandContext(ctx, v.ctl, "-socket", v.mn.Socket, "status").CombinedOutput(); err == nil {
		v.printf("  $ mcoactl status\n%s", indent(string(out)))
	}
	if out, err := v.lab.Exec(ctx, lab.HA, "ip", "-6", "route", "show", lab.MobileNetPrefix.String()); err == nil {
		v.printf("  ha$ ip -6 route show %s\n%s", lab.MobileNetPrefix, indent(string(out)))
	}
	return nil
}

func (v *vehicle) flows(ctx context.Context) error {
	if err := v.lab.Ping(ctx, lab.Host, lab.CNAddr); err != nil {
		return err
	}
	v.printf("  host$ ping %s: answered\n", lab.CNAddr)
	var err error
	if v.tcp, err = v.lab.StartTCP(lab.Host, lab.CN, netip.AddrPortFrom(lab.CNAddr, 5010)); err != nil {
		return err
	}
	if v.probe, err = v.lab.StartStream(lab.CN, lab.Host, netip.AddrPortFrom(v.host, 6010), time.Millisecond); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	v.printf("  TCP host -> CN: %d kB so far; UDP probes CN -> host every 1 ms: %d of %d arrived\n",
		v.tcp.Read()>>10, v.probe.Got(), v.probe.Sent())
	counts, err := v.ridesOn(ctx, "the host's TCP stream on eth0", "tx", "eth0", 50)
	if err != nil {
		return err
	}
	v.printf("  packets the MN sent through each uplink's tunnel since: %s (the best, eth0, carries them)\n", fmtCounts(counts))
	return nil
}

func (v *vehicle) cut(ctx context.Context) error {
	read := v.tcp.Read()
	cut := time.Now()
	if err := v.lab.CutLink("eth0"); err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "the HA routes the prefix through two bindings", func(ctx context.Context) error {
		return v.prefixRoutes(ctx, 2)
	}); err != nil {
		return err
	}
	time.Sleep(time.Second)
	gap, lost := v.probe.Outage(cut, time.Second)
	if v.tcp.Read() <= read || v.tcp.Err() != nil {
		return fmt.Errorf("the host's TCP stream stopped after the cut (%v)", v.tcp.Err())
	}
	v.printf("  the probes to the host stopped for %v (%d lost); the TCP stream goes on (%d kB since the cut)\n",
		ms(gap), lost, (v.tcp.Read()-read)>>10)
	v.tables(ctx)
	return nil
}

func (v *vehicle) deregister(ctx context.Context) error {
	if err := v.lab.RestoreLink("eth0"); err != nil {
		return err
	}
	if _, err := within(ctx, 15*time.Second, "three bindings again", func(ctx context.Context) error {
		return v.prefixRoutes(ctx, 3)
	}); err != nil {
		return err
	}
	v.printf("  eth0 registered again, the prefix with it\n")
	v.close()
	if err := v.mn.Stop(); err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "the prefix route removed", func(ctx context.Context) error {
		out, err := v.lab.Exec(ctx, lab.HA, "ip", "-6", "route", "show", lab.MobileNetPrefix.String())
		if err != nil || strings.TrimSpace(string(out)) != "" {
			return fmt.Errorf("ha still routes it: %q %v", out, err)
		}
		return nil
	}); err != nil {
		return err
	}
	v.printf("  de-registered: ha$ ip -6 route show %s is empty\n", lab.MobileNetPrefix)
	return nil
}

// prefixRoutes checks that the HA's cache has n home registrations, each
// carrying the mobile network, and routes the prefix into its tunnel.
func (d *demo) prefixRoutes(ctx context.Context, n int) error {
	c, err := d.ha.Client.Cache(ctx)
	if err != nil {
		return err
	}
	if len(c) != n {
		return fmt.Errorf("%d cache entries, want %d", len(c), n)
	}
	for _, e := range c {
		if len(e.Prefixes) != 1 || e.Prefixes[0] != lab.MobileNetPrefix {
			return fmt.Errorf("bid %d carries %v", e.BID, e.Prefixes)
		}
	}
	out, err := d.lab.Exec(ctx, lab.HA, "ip", "-6", "route", "show", lab.MobileNetPrefix.String())
	if err != nil || !strings.Contains(string(out), "mcoaha0") {
		return fmt.Errorf("ha does not route %s: %q %v", lab.MobileNetPrefix, out, err)
	}
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}
