package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// setupVehicle is the vehicle lab: mcoad as the NEMO mobile router of
// lab.MobileNetPrefix on lan0 with a host behind it, mcoa-ha allowing it
// that prefix, both with the userspace data plane, every uplink
// registered.
func setupVehicle(t *testing.T, nemoMode string) (*env, netip.Addr) {
	t.Helper()
	e := setup(t, opts{vehicle: true,
		ha: lab.HAConfig{Vehicle: true, Backend: "tun"},
		mn: lab.MNConfig{Vehicle: true, Backend: "tun", NEMOMode: nemoMode}})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	e.waitFor("three bindings registered on the MN", registerTimeout, func() error { return e.registered(ifaces...) })
	host, err := e.lab.WaitHostAddr(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return e, host
}

// prefixRoutedVia checks that the HA's cache carries the mobile network
// on exactly the bindings of want, and that the HA routes it into its
// tunnel device (or, with want empty, no longer routes it).
func (e *env) prefixRoutedVia(want ...string) error {
	c, err := e.cache()
	if err != nil {
		return err
	}
	if err := e.checkEntries(c, want...); err != nil {
		return err
	}
	for _, x := range c {
		if !slices.Equal(x.Prefixes, []netip.Prefix{lab.MobileNetPrefix}) {
			return fmt.Errorf("cache entry bid %d carries prefixes %v, want %s", x.BID, x.Prefixes, lab.MobileNetPrefix)
		}
	}
	out, err := e.lab.Exec(e.ctx, lab.HA, "ip", "-6", "route", "show", lab.MobileNetPrefix.String())
	if err != nil {
		return err
	}
	routed := strings.Contains(string(out), "dev mcoaha0")
	if routed != (len(want) > 0) {
		return fmt.Errorf("ha: ip -6 route show %s: %q with %d bindings", lab.MobileNetPrefix, out, len(want))
	}
	return nil
}

// TestVehicle: a host behind the mobile router reaches the CN through
// the tunnels (ping, a TCP stream, a 1 ms UDP probe stream from the CN),
// its flows survive the loss of the uplink they use, and the HA's route
// for the mobile network follows the bindings: 3 cuts, 1 with -short,
// MCOA_FAILOVER_CUTS=N for more. The outage figures are logged, as
// TestFailover logs the home address's.
func TestVehicle(t *testing.T) {
	t.Parallel()
	cuts := failoverCuts(3, 1)
	e, host := setupVehicle(t, "explicit")
	e.waitFor("the mobile network routed by the HA", registerTimeout, func() error { return e.prefixRoutedVia(ifaces...) })
	// Explicit mode: every BU carries the mobile network prefix.
	for _, bu := range e.processedBUs(0) {
		if bu.Prefixes != 1 || bu.Status != 0 {
			t.Errorf("BU to the HA with %d prefix options, answered %d; want 1, accepted", bu.Prefixes, bu.Status)
		}
	}

	st := e.status(e.mn)
	if r := st.MobileRouter; r == nil || !r.Enabled || r.Mode != "explicit" || !r.Forwarding ||
		!slices.Equal(r.Prefixes, []netip.Prefix{lab.MobileNetPrefix}) || !slices.Equal(r.Ingress, []string{lab.Ingress}) || r.LastStatus != 0 {
		t.Errorf("status mobile_router = %+v", st.MobileRouter)
	}
	if out := string(e.mcoactl(e.mn, "status")); !strings.Contains(out, "mobile networks:") || !strings.Contains(out, lab.MobileNetPrefix.String()) {
		t.Errorf("mcoactl status:\n%s", out)
	}
	// lan0 is never a care-of interface, and the uplinks stay hosts.
	is, err := e.interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if i, ok := is[lab.Ingress]; !ok || i.State != "excluded" || i.BID != 0 {
		t.Errorf("interface %s: %+v, want excluded", lab.Ingress, i)
	}
	e.sysctlsAre(lab.MN, map[string]string{"all.forwarding": "1", "lan0.forwarding": "1", "eth0.forwarding": "0", "eth0.accept_ra": "2"})

	if err := e.lab.Ping(e.ctx, lab.Host, lab.CNAddr); err != nil {
		t.Fatal(err)
	}
	tcp := e.startTCP(lab.Host, lab.CN, netip.AddrPortFrom(lab.CNAddr, 5011))
	if tcp.Local != host {
		t.Errorf("the host's TCP flow leaves from %s, want its SLAAC address %s", tcp.Local, host)
	}
	probe := e.startStream(lab.CN, lab.Host, netip.AddrPortFrom(host, probePort), time.Millisecond)
	e.waitFor("probes arrive", 5*time.Second, func() error {
		if probe.Got() < 200 {
			return fmt.Errorf("%d probes arrived", probe.Got())
		}
		return nil
	})
	e.rxGrowsOn("the host's probes come through eth0", "eth0", 100, "wlan0", "wwan0")
	e.growsOn("the host's TCP flow leaves through eth0", "eth0", 50, "wlan0", "wwan0")

	var down []time.Duration
	for i := 0; i < cuts; i++ {
		down = append(down, e.cutEth0(i, probe, func() {
			e.waitFor(fmt.Sprintf("cut %d: the HA routes the mobile network via wlan0 and wwan0", i+1), registerTimeout,
				func() error { return e.prefixRoutedVia("wlan0", "wwan0") })
		}))
		e.rxGrowsOn(fmt.Sprintf("cut %d: the probes come through wlan0", i+1), "wlan0", 100, "eth0", "wwan0")
		written := tcp.Read()
		e.waitFor(fmt.Sprintf("cut %d: the TCP flow goes on", i+1), 10*time.Second, func() error {
			if err := tcp.Err(); err != nil {
				return fmt.Errorf("TCP flow failed: %w", err)
			}
			if tcp.Read() < written+64<<10 {
				return fmt.Errorf("%d bytes since the cut", tcp.Read()-written)
			}
			return nil
		})
		if err := e.lab.RestoreLink("eth0"); err != nil {
			t.Fatal(err)
		}
		e.waitFor(fmt.Sprintf("cut %d: eth0 registered again", i+1), 3*registerTimeout, func() error { return e.registered(ifaces...) })
		e.waitFor(fmt.Sprintf("cut %d: the mobile network routed via all three again", i+1), registerTimeout,
			func() error { return e.prefixRoutedVia(ifaces...) })
	}
	probe.Close()
	tcp.Close()
	if err := tcp.Err(); err != nil {
		t.Errorf("the host's TCP flow: %v", err)
	}
	t.Logf("vehicle fail-over outage of a 1ms CN -> host stream over %d carrier cuts of eth0: p50 %v, max %v; all %v",
		cuts, percentile(down, 0.5), percentile(down, 1), down)
	t.Logf("probes: %d sent, %d received; TCP: %d bytes", probe.Sent(), probe.Got(), tcp.Read())

	// Stopping the mobile router de-registers: the HA's route goes with the
	// last binding, and mcoad puts the forwarding settings back.
	if err := e.mn.Stop(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the mobile network no longer routed by the HA", registerTimeout, func() error { return e.prefixRoutedVia() })
	e.sysctlsAre("mn after stop", stoppedRouter)
	if _, err := e.lab.Exec(e.ctx, lab.MN, "nft", "list", "table", "ip6", "mcoad"); err == nil {
		t.Error("mn after stop: nftables table mcoad still there")
	}
}

// stoppedRouter are the MN's IPv6 settings once mcoad no longer forwards:
// as the lab made them.
var stoppedRouter = map[string]string{"all.forwarding": "0", "lan0.forwarding": "1", "eth0.forwarding": "0"}

// sysctlsAre checks net.ipv6.conf settings in the mn node.
func (e *env) sysctlsAre(what string, want map[string]string) {
	e.t.Helper()
	for key, v := range want {
		out, err := e.lab.Exec(e.ctx, lab.MN, "sysctl", "-n", "net.ipv6.conf."+key)
		if got := strings.TrimSpace(string(out)); err != nil || got != v {
			e.t.Errorf("%s: net.ipv6.conf.%s = %q (%v), want %s", what, key, got, err, v)
		}
	}
}

// TestVehicleImplicit: in implicit mode (RFC 3963 6.1.2) the mobile
// router's BUs carry no Mobile Network Prefix option; the HA registers
// the prefixes its configuration gives the home address, routes them to
// the mobile router, and the host behind it reaches the CN.
func TestVehicleImplicit(t *testing.T) {
	t.Parallel()
	e, host := setupVehicle(t, "implicit")
	e.waitFor("the mobile network routed by the HA", registerTimeout, func() error { return e.prefixRoutedVia(ifaces...) })
	if r := e.status(e.mn).MobileRouter; r == nil || r.Mode != "implicit" || r.LastStatus != 0 {
		t.Errorf("status mobile_router = %+v", r)
	}
	if err := e.lab.Ping(e.ctx, lab.Host, lab.CNAddr); err != nil {
		t.Fatal(err)
	}
	probe := e.startStream(lab.CN, lab.Host, netip.AddrPortFrom(host, probePort), time.Millisecond)
	e.waitFor("probes reach the host", 5*time.Second, func() error {
		if probe.Got() < 100 {
			return fmt.Errorf("%d probes arrived", probe.Got())
		}
		return nil
	})
	probe.Close()
	// The mobile router's BUs carried no prefix, and the HA accepted them.
	bus := e.processedBUs(0)
	if len(bus) == 0 {
		t.Fatal("the HA logged no BU")
	}
	for _, bu := range bus {
		if bu.Prefixes != 0 || bu.Status != 0 {
			t.Errorf("BU to the HA with %d prefix options, answered %d; want none, accepted", bu.Prefixes, bu.Status)
		}
	}

	// Killed as a mobile router, forwarding stays on; mcoad -cleanup puts
	// the settings back from its state file before it removes the
	// forward chain that confined it.
	if err := e.mn.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.mn.Proc().Done()
	e.sysctlsAre("mn, mcoad killed", map[string]string{"all.forwarding": "1"})
	if out, err := e.lab.Exec(e.ctx, lab.MN, bins.mcoad, "-cleanup", "-config", e.mn.Config); err != nil {
		t.Fatalf("mcoad -cleanup: %v\n%s", err, out)
	}
	e.sysctlsAre("mn after mcoad -cleanup", stoppedRouter)
}
