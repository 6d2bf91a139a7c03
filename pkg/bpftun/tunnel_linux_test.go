package bpftun

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestTunnelInNamespaces sends UDP through the real kernel path: node a's
// route carries the encap program (LWT xmit, headroom and MTU for the
// outer header), node b's uplink the decap program (tcx ingress). A packet
// socket on b sees the outer packet before decapsulation.
func TestTunnelInNamespaces(t *testing.T) {
	nstest.Require(t)
	pre := nstest.Prefix()
	a, b := nstest.New(t, pre+"a"), nstest.New(t, pre+"b")
	nstest.Veth(t, a, "va", b, "vb")
	outerA, outerB := netip.MustParseAddr("2001:db8:ee::1"), netip.MustParseAddr("2001:db8:ee::2")
	inner := netip.MustParseAddr("2001:db8:ef::1")
	a.Exec(t, "ip", "-6", "addr", "add", outerA.String()+"/64", "dev", "va", "nodad")
	b.Exec(t, "ip", "-6", "addr", "add", outerB.String()+"/64", "dev", "vb", "nodad")
	b.Exec(t, "ip", "-6", "addr", "add", inner.String()+"/128", "dev", "lo")

	const id = 3
	pa, pb := loaded(t), loaded(t)
	if err := pa.SetTunnel(id, Endpoints{Src: outerA, Dst: outerB}); err != nil {
		t.Fatal(err)
	}
	if err := pb.SetEndpoint(outerB, id); err != nil {
		t.Fatal(err)
	}
	if err := pb.AllowPeer(outerA); err != nil {
		t.Fatal(err)
	}
	encapRoute(t, a, pa, id, netip.MustParsePrefix("2001:db8:ef::/64"), outerB, "va")
	err := b.Do(func() error {
		ifi, err := net.InterfaceByName("vb")
		if err != nil {
			return err
		}
		l, err := AttachIngress(pb.Decap(), ifi.Index)
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	capture := packetSocket(t, b, "vb")
	recv := udpListen(t, b, netip.AddrPortFrom(inner, 9999))
	send := udpSocket(t, a)

	payload := []byte("through the eBPF tunnel")
	if _, err := send.WriteToUDPAddrPort(payload, netip.AddrPortFrom(inner, 9999)); err != nil {
		t.Fatalf("send: %v", err)
	}
	buf := make([]byte, 2048)
	recv.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := recv.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("nothing came through the tunnel: %v", err)
	}
	if string(buf[:n]) != string(payload) || from.Addr() != outerA {
		t.Errorf("received %q from %v, want %q from %v", buf[:n], from, payload, outerA)
	}
	outer := nextTunnelPacket(t, capture)
	checkOuter(t, outer, outerA, outerB, 8+len(payload))

	sa, err := pa.Stats()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := pb.Stats()
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := uint64(40 + 8 + len(payload)) // the inner packet
	if sa[id].TxPackets != 1 || sa[id].TxBytes != wantBytes || sb[id].RxPackets != 1 || sb[id].RxBytes != wantBytes {
		t.Errorf("counters: sender %+v, receiver %+v; want one packet of %d bytes each way", sa[id], sb[id], wantBytes)
	}

	// A peer no longer allowed: its packets are dropped and counted, not delivered.
	if err := pb.DenyPeer(outerA); err != nil {
		t.Fatal(err)
	}
	send.WriteToUDPAddrPort(payload, netip.AddrPortFrom(inner, 9999))
	waitDrop(t, pb, DropSpoofed)
	recv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := recv.ReadFromUDPAddrPort(buf); err == nil {
		t.Error("a packet from a denied peer was delivered")
	}

	// A route whose tunnel is gone drops what it sends.
	if err := pa.DeleteTunnel(id); err != nil {
		t.Fatal(err)
	}
	send.WriteToUDPAddrPort(payload, netip.AddrPortFrom(inner, 9999))
	waitDrop(t, pa, DropNoTunnel)
}

// encapRoute routes dst through tunnel id over dev, via gw: the program's
// BPF_OK hands the outer packet to the route's next hop.
func encapRoute(t *testing.T, ns *nstest.NS, p *Programs, id uint32, dst netip.Prefix, gw netip.Addr, dev string) {
	t.Helper()
	prog, err := p.Encap(id)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns.Handle(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	enc := &netlink.BpfEncap{}
	if err := enc.SetProg(nl.LWT_BPF_XMIT, prog.FD(), "mcoa_encap"); err != nil {
		t.Fatal(err)
	}
	if err := enc.SetXmitHeadroom(HeaderLen); err != nil {
		t.Fatal(err)
	}
	r := &netlink.Route{
		LinkIndex: l.Attrs().Index, Dst: prefixNet(dst), Gw: gw.AsSlice(), Encap: enc,
		MTU: l.Attrs().MTU - HeaderLen,
	}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("adding the tunnel route: %v", err)
	}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}
}

func udpSocket(t *testing.T, ns *nstest.NS) *net.UDPConn {
	t.Helper()
	return udpListen(t, ns, netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
}

func udpListen(t *testing.T, ns *nstest.NS, at netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(at))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// packetSocket receives every frame arriving on dev: an ETH_P_ALL tap sees
// them before tc ingress (a protocol's own tap would see them after).
func packetSocket(t *testing.T, ns *nstest.NS, dev string) int {
	t.Helper()
	proto := int(htons(unix.ETH_P_ALL))
	var fd int
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// nextTunnelPacket returns the next IPv6 packet with next header 41.
func nextTunnelPacket(t *testing.T, fd int) []byte {
	t.Helper()
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("no tunnel packet captured: %v", err)
		}
		if n >= 80 && buf[0]>>4 == 6 && buf[6] == 41 {
			return buf[:n]
		}
	}
}

func checkOuter(t *testing.T, p []byte, src, dst netip.Addr, innerPayload int) {
	t.Helper()
	s, d := netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
	if p[0]>>4 != 6 || s != src || d != dst || p[7] != 64 {
		t.Errorf("outer header: version %d, %v -> %v, hop limit %d; want 6, %v -> %v, 64", p[0]>>4, s, d, p[7], src, dst)
	}
	if got, want := int(binary.BigEndian.Uint16(p[4:])), 40+innerPayload; got != want || len(p) != 40+want {
		t.Errorf("outer payload length %d (packet %d bytes), want %d", got, len(p), want)
	}
	if p[40]>>4 != 6 || int(binary.BigEndian.Uint16(p[44:])) != innerPayload || p[46] != 17 {
		t.Errorf("inner header % x: want IPv6 carrying %d bytes of UDP", p[40:80], innerPayload)
	}
	// The inner traffic class is kept (zero here), the version nibble set.
	if p[0] != 0x60 {
		t.Errorf("outer first byte %#x, want 0x60", p[0])
	}
}

func waitDrop(t *testing.T, p interface {
	Drops() (map[Drop]uint64, error)
}, d Drop) {
	t.Helper()
	for range 500 {
		drops, err := p.Drops()
		if err != nil {
			t.Fatal(err)
		}
		if drops[d] > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal(errors.New("no " + d.String() + " drop counted"))
}
