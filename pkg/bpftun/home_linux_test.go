package bpftun

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

var (
	coa2   = netip.MustParseAddr("2001:db8:4::200")
	mnp    = netip.MustParsePrefix("2001:db8:bbbb::/48")
	hoa2   = netip.MustParseAddr("2001:db8:aaaa::200")
	mnHost = netip.MustParseAddr("2001:db8:bbbb::5")
)

func loadedHome(t *testing.T, addr netip.Addr) *Home {
	t.Helper()
	nstest.Require(t)
	h, err := LoadHome(addr)
	if err != nil {
		t.Fatalf("LoadHome: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// udp is a UDP header and payload (checksum left zero: no one checks it here).
func udp(sport, dport uint16, payload string) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

// TestHomeDecap: the home agent decapsulates only what a registered
// care-of address sends from its own home address or mobile network.
func TestHomeDecap(t *testing.T) {
	h := loadedHome(t, ha)
	if err := h.SetHome(1, []netip.Prefix{netip.PrefixFrom(hoa, 128), mnp}, []Binding{{CoA: coa, BID: 1}, {CoA: coa2, BID: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := h.SetHome(2, []netip.Prefix{netip.PrefixFrom(hoa2, 128)}, []Binding{{CoA: cn, BID: 9}}); err != nil {
		t.Fatal(err)
	}
	fromHoA := ip6(hoa, cn, nhUDP, udp(5000, 7000, "hi"))
	fromMNP := ip6(mnHost, cn, nhUDP, udp(5001, 7000, "hi"))
	tests := []progCase{
		{name: "home address through its care-of address", frame: ether(0x86dd, ip6(coa, ha, 41, fromHoA)), want: ether(0x86dd, fromHoA)},
		{name: "second binding", frame: ether(0x86dd, ip6(coa2, ha, 41, fromHoA)), want: ether(0x86dd, fromHoA)},
		{name: "mobile network", frame: ether(0x86dd, ip6(coa, ha, 41, fromMNP)), want: ether(0x86dd, fromMNP)},
		{name: "another home's care-of address", frame: ether(0x86dd, ip6(cn, ha, 41, fromHoA)), ret: tcActShot, drop: DropSpoofed},
		{name: "unknown care-of address", frame: ether(0x86dd, ip6(spoofer, ha, 41, fromHoA)), ret: tcActShot, drop: DropSpoofed},
		{name: "inner source not a home", frame: ether(0x86dd, ip6(coa, ha, 41, ip6(spoofer, cn, nhUDP, udp(1, 2, "x")))), ret: tcActShot, drop: DropSpoofed},
		{name: "not to the home agent", frame: ether(0x86dd, ip6(coa, cn, 41, fromHoA)), ret: tcPass},
		{name: "truncated", frame: ether(0x86dd, ip6(coa, ha, 41, fromHoA[:30])), ret: tcActShot, drop: DropMalformed},
	}
	runCases(t, h.Decap(), h, tests)
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := st[HomeBID{1, 1}], st[HomeBID{1, 2}]
	if b1.RxPackets != 2 || b1.RxBytes != uint64(len(fromHoA)+len(fromMNP)) || b2.RxPackets != 1 {
		t.Errorf("counters: BID 1 %+v, BID 2 %+v; want 2 and 1 packets", b1, b2)
	}

	// A binding removed may no longer send.
	if err := h.SetHome(1, []netip.Prefix{netip.PrefixFrom(hoa, 128)}, []Binding{{CoA: coa, BID: 1}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{ip6(coa2, ha, 41, fromHoA), ip6(coa, ha, 41, fromMNP)} {
		if ret, _ := run(t, h.Decap(), ether(0x86dd, f)); ret != tcActShot {
			t.Errorf("after the binding and prefix went: returned %d, want shot", ret)
		}
	}
	if err := h.DeleteHome(1); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, h.Decap(), ether(0x86dd, ip6(coa, ha, 41, fromHoA))); ret != tcActShot {
		t.Errorf("after DeleteHome: returned %d, want shot", ret)
	}
}

// TestHomeEncapPicksBinding sends through the home agent's route (LWT
// xmit, rerouted after the push) and reads the outer destination: the best
// binding, unless the flow or its peer last came in on another.
func TestHomeEncapPicksBinding(t *testing.T) {
	nstest.Require(t)
	pre := nstest.Prefix()
	hans, mn := nstest.New(t, pre+"h"), nstest.New(t, pre+"m")
	nstest.Veth(t, hans, "vh", mn, "vm")
	haAddr := netip.MustParseAddr("2001:db8:c0::ff")
	c1, c2 := netip.MustParseAddr("2001:db8:c0::1"), netip.MustParseAddr("2001:db8:c0::2")
	hans.Exec(t, "ip", "-6", "addr", "add", haAddr.String()+"/64", "dev", "vh", "nodad")
	mn.Exec(t, "ip", "-6", "addr", "add", c1.String()+"/64", "dev", "vm", "nodad")
	mn.Exec(t, "ip", "-6", "addr", "add", c2.String()+"/64", "dev", "vm", "nodad")

	h := loadedHome(t, haAddr)
	if err := h.SetHome(4, []netip.Prefix{netip.PrefixFrom(hoa, 128)}, []Binding{{CoA: c1, BID: 1}, {CoA: c2, BID: 2}}); err != nil {
		t.Fatal(err)
	}
	homeRoute(t, hans, h, netip.PrefixFrom(hoa, 128), "vh")
	capture := packetSocket(t, mn, "vm")
	app := udpListen(t, hans, netip.AddrPortFrom(haAddr, 7000))
	other := udpListen(t, hans, netip.AddrPortFrom(haAddr, 7001))
	outerDst := func(c *net.UDPConn, hport uint16) netip.Addr {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(hoa, hport)); err != nil {
			t.Fatal(err)
		}
		p := nextTunnelPacket(t, capture)
		if s := netip.AddrFrom16([16]byte(p[8:24])); s != haAddr {
			t.Errorf("outer source %v, want the home agent %v", s, haAddr)
		}
		return netip.AddrFrom16([16]byte(p[24:40]))
	}
	if got := outerDst(app, 5000); got != c1 {
		t.Errorf("a new flow went to %v, want the best binding %v", got, c1)
	}
	// The mobile node sends flow 5000<->7000 on BID 2: the home agent
	// answers it there, and other flows with that peer too.
	learn := ether(0x86dd, ip6(c2, haAddr, 41, ip6(hoa, haAddr, nhUDP, udp(5000, 7000, "up"))))
	if ret, _ := run(t, h.Decap(), learn); ret != tcActOK {
		t.Fatalf("decap of the mobile node's packet returned %d", ret)
	}
	if got := outerDst(app, 5000); got != c2 {
		t.Errorf("the flow went to %v, want %v where it came from", got, c2)
	}
	if got := outerDst(other, 5999); got != c2 {
		t.Errorf("another flow with the same peer went to %v, want %v (the peer's)", got, c2)
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st[HomeBID{4, 1}].TxPackets != 1 || st[HomeBID{4, 2}].TxPackets != 2 {
		t.Errorf("counters %+v: want 1 packet on BID 1 and 2 on BID 2", st)
	}
	if err := h.DeleteHome(4); err != nil {
		t.Fatal(err)
	}
	app.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(hoa, 5000))
	waitDrop(t, h, DropNoTunnel)
}

// homeRoute routes dst into the home agent's encapsulation on dev.
func homeRoute(t *testing.T, ns *nstest.NS, h *Home, dst netip.Prefix, dev string) {
	t.Helper()
	nh, err := netlink.NewHandleAt(ns.Handle(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	enc := &netlink.BpfEncap{}
	if err := enc.SetProg(nl.LWT_BPF_XMIT, h.Encap().FD(), "mcoa_home_encap"); err != nil {
		t.Fatal(err)
	}
	if err := enc.SetXmitHeadroom(HeaderLen); err != nil {
		t.Fatal(err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(dst), Encap: enc, MTU: l.Attrs().MTU - HeaderLen}
	if err := nh.RouteAdd(r); err != nil {
		t.Fatalf("adding the home route: %v", err)
	}
}
