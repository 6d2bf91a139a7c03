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
	host, err := l.WaitHostAddr(ctx)
	if err != nil {
		return err
	}
	d.printf("  lab %s up in %v; the host's address by SLAAC: %s\n", l.Prefix, ms(time.Since(t)), host)
	if d.ha, err = l.StartHA(ctx, &lab.HAConfig{Bin: bins[lab.HABinary], Backend: "tun", Vehicle: true}); err != nil {
		return err
	}
	if d.mn, err = l.StartMN(ctx, &lab.MNConfig{Bin: bins[lab.MNBinary], Backend: "tun", Vehicle: true}); err != nil {
		return err
	}
	d.printf("  mcoa-ha may route %s to the HoA's mobile router; mcoad runs with [mobile_router] ingress = [%q]\n",
		lab.MobileNetPrefix, lab.Ingress)

	d.printf("\n== Step 1/4: registration with the R flag and a Mobile Network Prefix option\n")
	took, err := within(ctx, 15*time.Second, "three bindings carrying the prefix", func(ctx context.Context) error {
		return d.prefixRoutes(ctx, 3)
	})
	if err != nil {
		return err
	}
	d.printf("  registered and routed in %v\n", ms(took))
	is, err := d.mn.Client.Interfaces(ctx)
	if err != nil {
		return err
	}
	d.bids = map[string]uint16{}
	for _, i := range is {
		d.bids[i.Name] = i.BID
	}
	d.tables(ctx)
	if out, err := exec.CommandContext(ctx, d.ctl, "-socket", d.mn.Socket, "status").CombinedOutput(); err == nil {
		d.printf("  $ mcoactl status\n%s", indent(string(out)))
	}
	if out, err := l.Exec(ctx, lab.HA, "ip", "-6", "route", "show", lab.MobileNetPrefix.String()); err == nil {
		d.printf("  ha$ ip -6 route show %s\n%s", lab.MobileNetPrefix, indent(string(out)))
	}

	d.printf("\n== Step 2/4: the host pings the CN and opens a TCP stream to it, through the tunnels\n")
	if err := l.Ping(ctx, lab.Host, lab.CNAddr); err != nil {
		return err
	}
	d.printf("  host$ ping %s: answered\n", lab.CNAddr)
	tcp, err := l.StartTCP(lab.Host, lab.CN, netip.AddrPortFrom(lab.CNAddr, 5010))
	if err != nil {
		return err
	}
	defer tcp.Close()
	probe, err := l.StartStream(lab.CN, lab.Host, netip.AddrPortFrom(host, 6010), time.Millisecond)
	if err != nil {
		return err
	}
	defer probe.Close()
	time.Sleep(500 * time.Millisecond)
	d.printf("  TCP host -> CN: %d kB so far; UDP probes CN -> host every 1 ms: %d of %d arrived\n",
		tcp.Read()>>10, probe.Got(), probe.Sent())
	counts, err := d.ridesOn(ctx, "the host's TCP stream on eth0", "tx", "eth0", 50)
	if err != nil {
		return err
	}
	d.printf("  packets the MN sent through each uplink's tunnel since: %s (the best, eth0, carries them)\n", fmtCounts(counts))

	d.printf("\n== Step 3/4: eth0 loses its carrier: the host's flows move to wlan0\n")
	read := tcp.Read()
	cut := time.Now()
	if err := l.CutLink("eth0"); err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "the HA routes the prefix through two bindings", func(ctx context.Context) error {
		return d.prefixRoutes(ctx, 2)
	}); err != nil {
		return err
	}
	time.Sleep(time.Second)
	gap, lost := probe.Outage(cut, time.Second)
	if tcp.Read() <= read || tcp.Err() != nil {
		return fmt.Errorf("the host's TCP stream stopped after the cut (%v)", tcp.Err())
	}
	d.printf("  the probes to the host stopped for %v (%d lost); the TCP stream goes on (%d kB since the cut)\n",
		ms(gap), lost, (tcp.Read()-read)>>10)
	d.tables(ctx)

	d.printf("\n== Step 4/4: eth0 comes back; mcoad stops and the HA's route for the network goes\n")
	if err := l.RestoreLink("eth0"); err != nil {
		return err
	}
	if _, err := within(ctx, 15*time.Second, "three bindings again", func(ctx context.Context) error {
		return d.prefixRoutes(ctx, 3)
	}); err != nil {
		return err
	}
	d.printf("  eth0 registered again, the prefix with it\n")
	tcp.Close()
	probe.Close()
	if err := d.mn.Stop(); err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "the prefix route removed", func(ctx context.Context) error {
		out, err := l.Exec(ctx, lab.HA, "ip", "-6", "route", "show", lab.MobileNetPrefix.String())
		if err != nil || strings.TrimSpace(string(out)) != "" {
			return fmt.Errorf("ha still routes it: %q %v", out, err)
		}
		return nil
	}); err != nil {
		return err
	}
	d.printf("  de-registered: ha$ ip -6 route show %s is empty\n", lab.MobileNetPrefix)
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
