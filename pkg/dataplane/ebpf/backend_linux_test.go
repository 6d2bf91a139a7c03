package ebpf

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/bpftun"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

var (
	coa    = netip.MustParseAddr("2001:db8:10::100")
	gw     = netip.MustParseAddr("2001:db8:10::1")
	haAddr = netip.MustParseAddr("2001:db8:20::2")
	hoa    = netip.MustParseAddr("2001:db8:aaaa::100")
	cn     = netip.MustParseAddr("2001:db8:30::1")
)

// lab is mn -- rtr -- ha: the mobile node's eBPF backend on one side, the
// home agent's eBPF programs (pkg/bpftun) and a correspondent address on
// the other, a router between them, so the tunnel's gateway is resolved.
type lab struct {
	mn, rtr, ha *nstest.NS
	backend     dataplane.Backend
	home        *bpftun.Home
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.Require(t)
	pre := nstest.Prefix()
	l := &lab{mn: nstest.New(t, pre+"mn"), rtr: nstest.New(t, pre+"r"), ha: nstest.New(t, pre+"ha")}
	nstest.Veth(t, l.mn, "m0", l.rtr, "r0")
	nstest.Veth(t, l.rtr, "r1", l.ha, "h0")
	l.rtr.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	l.mn.Exec(t, "ip", "-6", "addr", "add", coa.String()+"/64", "dev", "m0", "nodad")
	l.mn.Exec(t, "ip", "-6", "route", "add", "default", "via", gw.String(), "dev", "m0")
	l.rtr.Exec(t, "ip", "-6", "addr", "add", gw.String()+"/64", "dev", "r0", "nodad")
	l.rtr.Exec(t, "ip", "-6", "addr", "add", "2001:db8:20::1/64", "dev", "r1", "nodad")
	l.ha.Exec(t, "ip", "-6", "addr", "add", haAddr.String()+"/64", "dev", "h0", "nodad")
	l.ha.Exec(t, "ip", "-6", "addr", "add", cn.String()+"/128", "dev", "lo")
	l.ha.Exec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:20::1", "dev", "h0")

	var err error
	l.home, err = bpftun.LoadHome(haAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.home.Close() })
	if err := l.home.SetHome(1, []netip.Prefix{netip.PrefixFrom(hoa, 128)}, []bpftun.Binding{{CoA: coa, BID: 1}}); err != nil {
		t.Fatal(err)
	}
	l.homeRoute(t)
	err = l.ha.Do(func() error {
		ifi, err := net.InterfaceByName("h0")
		if err != nil {
			return err
		}
		at, err := bpftun.AttachIngress(l.home.Decap(), ifi.Index)
		if err == nil {
			t.Cleanup(func() { at.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := (&dataplane.Config{Backend: Name}).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	err = l.mn.Do(func() (err error) {
		l.backend, err = New(cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.backend.Close() })
	// What pkg/policy does with marks, reduced to the home address.
	l.mn.Exec(t, "ip", "-6", "rule", "add", "from", hoa.String(), "table", "1001", "pref", "100")
	return l
}

func (l *lab) homeRoute(t *testing.T) {
	h, err := netlink.NewHandleAt(l.ha.Handle(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dev, err := h.LinkByName("h0")
	if err != nil {
		t.Fatal(err)
	}
	enc := &netlink.BpfEncap{}
	enc.SetProg(nl.LWT_BPF_XMIT, l.home.Encap().FD(), "home")
	enc.SetXmitHeadroom(bpftun.HeaderLen)
	r := &netlink.Route{LinkIndex: dev.Attrs().Index, Dst: &net.IPNet{IP: hoa.AsSlice(), Mask: net.CIDRMask(128, 128)}, Encap: enc, MTU: 1460}
	if err := h.RouteAdd(r); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) tunnels(t *testing.T, ts ...dataplane.Tunnel) {
	t.Helper()
	if err := l.backend.SetTunnels(context.Background(), ts); err != nil {
		t.Fatalf("SetTunnels: %v", err)
	}
}

// TestTCPThroughTheTunnel carries a TCP stream from the home address to a
// correspondent behind the home agent and back, both ways through the eBPF
// programs only (this kernel has no ip6_tunnel), and checks the counters.
func TestTCPThroughTheTunnel(t *testing.T) {
	l := newLab(t)
	l.tunnels(t, dataplane.Tunnel{BID: 1, Iface: "m0", CoA: coa, HA: haAddr, HoA: hoa})
	if out := l.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); !strings.Contains(out, "via "+gw.String()) || !strings.Contains(out, "encap bpf") {
		t.Fatalf("table 1001: %q, want a default route via %s with the bpf encapsulation", out, gw)
	}

	var ln net.Listener
	err := l.ha.Do(func() (err error) {
		ln, err = net.Listen("tcp6", net.JoinHostPort(cn.String(), "5001"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const size = 8 << 20
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		_, err = io.CopyN(c, c, size) // echo it all back: both directions
		echoed <- err
	}()
	var c net.Conn
	err = l.mn.Do(func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: hoa.AsSlice()}, Timeout: 5 * time.Second}
		c, err = d.Dial("tcp6", net.JoinHostPort(cn.String(), "5001"))
		return err
	})
	if err != nil {
		t.Fatalf("connecting from the home address through the tunnel: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := bytes.Repeat([]byte("mcoa eBPF tunnel "), size/17+1)[:size]
	go c.Write(data)
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the echo differs from what was sent")
	}
	if err := <-echoed; err != nil {
		t.Fatalf("echo server: %v", err)
	}
	st := l.backend.Stats().Tunnels[1]
	if st.TxBytes < size || st.RxBytes < size {
		t.Errorf("BID 1 counters %+v: want at least %d bytes each way", st, size)
	}
	hs, err := l.home.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if h := hs[bpftun.HomeBID{Home: 1, BID: 1}]; h.RxBytes < size || h.TxBytes < size {
		t.Errorf("home agent counters %+v: want at least %d bytes each way", h, size)
	}
}

// TestCloseRemovesEverything: after Close, no route, rule target or home
// device is left (the policy rule is the test's own).
func TestCloseRemovesEverything(t *testing.T) {
	l := newLab(t)
	l.tunnels(t, dataplane.Tunnel{BID: 1, Iface: "m0", CoA: coa, HA: haAddr, HoA: hoa})
	if out := l.mn.Exec(t, "ip", "link", "show", "mcoa0"); !strings.Contains(out, "mcoa0") {
		t.Fatalf("no home device: %q", out)
	}
	l.tunnels(t) // none wanted: the tunnel and the home device go
	if out := l.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); out != "" {
		t.Errorf("table 1001 after an empty SetTunnels: %q", out)
	}
	if _, err := l.mn.Try("ip", "link", "show", "mcoa0"); err == nil {
		t.Error("the home device outlived an empty SetTunnels")
	}
	l.tunnels(t, dataplane.Tunnel{BID: 2, Iface: "m0", CoA: coa, HA: haAddr, HoA: hoa})
	if err := l.backend.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if out := l.mn.Exec(t, "ip", "-6", "route", "show", "table", "1002"); out != "" {
		t.Errorf("table 1002 after Close: %q", out)
	}
	if _, err := l.mn.Try("ip", "link", "show", "mcoa0"); err == nil {
		t.Error("the home device outlived Close")
	}
	if err := l.backend.SetTunnels(context.Background(), nil); err != dataplane.ErrClosed {
		t.Errorf("SetTunnels after Close: %v, want ErrClosed", err)
	}
}

// TestProbe: this kernel takes the programs (LWT-BPF and tcx), so "auto"
// may pick the backend once package backends lists it.
func TestProbe(t *testing.T) {
	nstest.Require(t)
	if err := probe(); err != nil {
		t.Fatalf("probe: %v", err)
	}
}

// TestPacketTooBig: a mobile network host's packet that does not fit the
// tunnel gets an ICMPv6 Packet Too Big with the tunnel's MTU from the
// mobile router (the route carries it), so path MTU discovery works.
func TestPacketTooBig(t *testing.T) {
	l := newLab(t)
	host := nstest.New(t, l.mn.Name+"h")
	nstest.Veth(t, l.mn, "mnet", host, "eth0")
	hostAddr := netip.MustParseAddr("2001:db8:bbbb::5")
	l.mn.Exec(t, "ip", "-6", "addr", "add", "2001:db8:bbbb::1/64", "dev", "mnet", "nodad")
	l.mn.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	l.mn.Exec(t, "ip", "-6", "rule", "add", "from", "2001:db8:bbbb::/64", "iif", "mnet", "table", "1001", "pref", "101")
	host.Exec(t, "ip", "-6", "addr", "add", hostAddr.String()+"/64", "dev", "eth0", "nodad")
	host.Exec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:bbbb::1", "dev", "eth0")
	if err := l.home.SetHome(1, []netip.Prefix{netip.PrefixFrom(hoa, 128), netip.MustParsePrefix("2001:db8:bbbb::/64")}, []bpftun.Binding{{CoA: coa, BID: 1}}); err != nil {
		t.Fatal(err)
	}
	l.tunnels(t, dataplane.Tunnel{BID: 1, Iface: "m0", CoA: coa, HA: haAddr, HoA: hoa})

	var c *net.UDPConn
	err := host.Do(func() (err error) {
		c, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(cn, 9)))
		if err != nil {
			return err
		}
		// Do not fragment locally: the host's own MTU is 1500, and the
		// error must come from the router.
		return setDontFrag(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mtu := func() int {
		var m int
		host.Do(func() (err error) { m, err = pathMTU(c); return err })
		return m
	}
	if got := mtu(); got != 1500 {
		t.Fatalf("path MTU before: %d, want the link's 1500", got)
	}
	for i := 0; i < 50 && mtu() != 1460; i++ {
		c.Write(make([]byte, 1500-48)) // a full 1500-octet packet
		time.Sleep(20 * time.Millisecond)
	}
	if got := mtu(); got != 1460 {
		t.Fatalf("path MTU to %v after full-size packets: %d, want 1460 (the tunnel's, from a Packet Too Big)", cn, got)
	}
}
