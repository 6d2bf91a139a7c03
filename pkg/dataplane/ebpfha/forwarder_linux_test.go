package ebpfha

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

var (
	haAddr  = netip.MustParseAddr("2001:db8:20::2")
	coa1    = netip.MustParseAddr("2001:db8:20::101")
	coa2    = netip.MustParseAddr("2001:db8:20::102")
	hoa1    = netip.MustParseAddr("2001:db8:aaaa::100")
	hoa2    = netip.MustParseAddr("2001:db8:aaaa::200")
	hoa3    = netip.MustParseAddr("2001:db8:aaaa::300")
	mnp     = netip.MustParsePrefix("2001:db8:bbbb::/64")
	spoofer = netip.MustParseAddr("2001:db8:cccc::1")
)

// haLab is ha -- mn on one link: the forwarder in ha, the care-of
// addresses in mn (which has no tunnel: it only sends crafted ones).
func haLab(t *testing.T) (ha, mn *nstest.NS, f *Forwarder) {
	t.Helper()
	nstest.Require(t)
	pre := nstest.Prefix()
	ha, mn = nstest.New(t, pre+"ha"), nstest.New(t, pre+"mn")
	nstest.Veth(t, ha, "h0", mn, "m0")
	ha.Exec(t, "ip", "-6", "addr", "add", haAddr.String()+"/64", "dev", "h0", "nodad")
	for _, a := range []netip.Addr{coa1, coa2} {
		mn.Exec(t, "ip", "-6", "addr", "add", a.String()+"/64", "dev", "m0", "nodad")
	}
	err := ha.Do(func() (err error) {
		f, err = New(&dataplane.HAConfig{Address: haAddr})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ha, mn, f
}

// TestForwarder: routes for home addresses and mobile network prefixes
// with the encapsulation; packets to a home address go to its best
// binding (priority, then BID) and are counted; tunnel packets from a
// care-of address are counted on its binding, spoofed ones dropped; a
// home's routes go with its last binding (its counters too), and
// everything with Close.
func TestForwarder(t *testing.T) {
	ha, mn, f := haLab(t)
	ctx := context.Background()
	err := f.SetBindings(ctx, []dataplane.HABinding{
		{HoA: hoa1, BID: 1, CoA: coa1, Priority: 1},
		{HoA: hoa1, BID: 2, CoA: coa2, Priority: 5},
		{HoA: hoa2, BID: 1, CoA: coa1, Prefixes: []netip.Prefix{mnp}},
		{HoA: hoa3, BID: 7, CoA: coa1, Priority: 3},
		{HoA: hoa3, BID: 4, CoA: coa2, Priority: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	routes := ha.Exec(t, "ip", "-6", "route", "show", "dev", "mcoaha0")
	for _, d := range []string{hoa1.String(), hoa2.String(), mnp.String()} {
		if !routeWithEncap(routes, d) {
			t.Errorf("no route %s with the bpf encapsulation in %q", d, routes)
		}
	}

	// To hoa1: binding 2 has the higher priority. To hoa3: equal
	// priorities, the lower BID.
	for _, hoa := range []netip.Addr{hoa1, hoa3} {
		err = ha.Do(func() error {
			c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(hoa, 9)))
			if err != nil {
				return err
			}
			defer c.Close()
			for range 5 {
				if _, err := c.Write([]byte("to the home address")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st := f.Stats()
	tx := func(hoa netip.Addr, bid uint16) uint64 {
		return st.Bindings[dataplane.BindingKey{HoA: hoa, BID: bid}].TxPackets
	}
	if tx(hoa1, 2) != 5 || tx(hoa1, 1) != 0 {
		t.Errorf("tx packets to %s: BID 2 %d, BID 1 %d, want 5 and 0 (the higher priority)", hoa1, tx(hoa1, 2), tx(hoa1, 1))
	}
	if tx(hoa3, 4) != 5 || tx(hoa3, 7) != 0 {
		t.Errorf("tx packets to %s: BID 4 %d, BID 7 %d, want 5 and 0 (same priority, the lower BID)", hoa3, tx(hoa3, 4), tx(hoa3, 7))
	}

	// From coa1: hoa2's own packet, and one from an address that is no home.
	send := func(inner []byte) {
		t.Helper()
		err := mn.Do(func() error {
			c, err := net.ListenIP("ip6:41", &net.IPAddr{IP: coa1.AsSlice()})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.WriteToIP(inner, &net.IPAddr{IP: haAddr.AsSlice()})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send(pkttest.IP6(0, 0, 58, 64, hoa2, haAddr, pkttest.Echo(128, 1, 1, 8)))
	send(pkttest.IP6(0, 0, 58, 64, spoofer, haAddr, pkttest.Echo(128, 1, 2, 8)))
	deadline := time.Now().Add(2 * time.Second)
	for {
		st = f.Stats()
		if st.Bindings[dataplane.BindingKey{HoA: hoa2, BID: 1}].RxPackets >= 1 && st.Drops.Spoofed >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a tunnel packet from hoa2 and a spoofed one: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// hoa2 loses its binding: its routes go.
	if err := f.SetBindings(ctx, []dataplane.HABinding{{HoA: hoa1, BID: 1, CoA: coa1}}); err != nil {
		t.Fatal(err)
	}
	routes = ha.Exec(t, "ip", "-6", "route", "show", "dev", "mcoaha0")
	if !routeWithEncap(routes, hoa1.String()) || strings.Contains(routes, hoa2.String()) || strings.Contains(routes, "bbbb") {
		t.Errorf("routes after hoa2 went: %q, want %s only", routes, hoa1)
	}
	if got := f.Stats().Bindings; len(got) != 1 {
		t.Errorf("stats of %d bindings, want 1: %v", len(got), got)
	}
	// Back again, its counters start at zero, as the TUN forwarder's do.
	if err := f.SetBindings(ctx, []dataplane.HABinding{{HoA: hoa1, BID: 1, CoA: coa1}, {HoA: hoa2, BID: 1, CoA: coa1}}); err != nil {
		t.Fatal(err)
	}
	if c := f.Stats().Bindings[dataplane.BindingKey{HoA: hoa2, BID: 1}]; c != (dataplane.Counters{}) {
		t.Errorf("counters of a binding back again: %+v, want zero", c)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := ha.Try("ip", "link", "show", "mcoaha0"); err == nil {
		t.Error("the device outlived Close")
	}
	if out := ha.Exec(t, "ip", "-6", "route", "show"); strings.Contains(out, "encap bpf") {
		t.Errorf("routes after Close: %q", out)
	}
	if err := f.SetBindings(ctx, nil); err != dataplane.ErrClosed {
		t.Errorf("SetBindings after Close: %v, want ErrClosed", err)
	}
}

func routeWithEncap(routes, dst string) bool {
	for _, l := range strings.Split(routes, "\n") {
		if strings.HasPrefix(l, dst+" ") && strings.Contains(l, "encap bpf") {
			return true
		}
	}
	return false
}
