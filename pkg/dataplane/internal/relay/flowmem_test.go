package relay

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

func TestInnerFlowBothDirections(t *testing.T) {
	out := pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 443, 1, 1, packet.TCPFlagACK, nil))
	in := pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.TCN, pkttest.THoA, pkttest.TCPSeg(443, 40000, 1, 1, packet.TCPFlagACK, nil))
	ko, po := InnerFlow(out, true)
	ki, pi := InnerFlow(in, false)
	if !po || !pi || ko != ki {
		t.Fatalf("a flow and its reverse differ:\n%x %v\n%x %v", ko, po, ki, pi)
	}
	if binary.BigEndian.Uint16(ko[34:]) != 40000 || binary.BigEndian.Uint16(ko[36:]) != 443 || ko[32] != packet.ProtoTCP {
		t.Fatalf("key %x: want the home address's port 40000, the peer's 443", ko)
	}
	other, _ := InnerFlow(pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40001, 443, 1, 1, packet.TCPFlagACK, nil)), true)
	if other == ko {
		t.Fatal("different ports, same key")
	}
	// Echo request and reply share the identifier.
	kq, pq := InnerFlow(pkttest.IP6(0, 0, packet.ProtoICMPv6, 64, pkttest.TCN, pkttest.THoA, pkttest.Echo(128, 77, 1, 0)), false)
	kr, pr := InnerFlow(pkttest.IP6(0, 0, packet.ProtoICMPv6, 64, pkttest.THoA, pkttest.TCN, pkttest.Echo(129, 77, 1, 0)), true)
	if !pq || !pr || kq != kr {
		t.Fatalf("echo request and reply differ: %x %x", kq, kr)
	}
	// No ports: a Packet Too Big, a non-first fragment; the peer part of
	// the key still holds.
	kp, pp := InnerFlow(pkttest.IP6(0, 0, packet.ProtoICMPv6, 64, pkttest.THoA, pkttest.TCN, []byte{2, 0, 0, 0, 0, 0, 5, 0}), true)
	if pp || [32]byte(kp[:32]) != [32]byte(ko[:32]) {
		t.Fatalf("PTB: ports %v, peer key %x", pp, kp[:32])
	}
	frag := pkttest.IP6(0, 0, 44, 64, pkttest.THoA, pkttest.TCN, append([]byte{packet.ProtoUDP, 0, 0x05, 0x00, 0, 0, 0, 1}, make([]byte, 16)...))
	if _, p := InnerFlow(frag, true); p {
		t.Fatal("non-first fragment has ports")
	}
	first := pkttest.IP6(0, 0, 44, 64, pkttest.THoA, pkttest.TCN, append([]byte{packet.ProtoUDP, 0, 0x00, 0x01, 0, 0, 0, 1}, 0x9c, 0x40, 0, 53, 0, 8, 0, 0))
	if k, p := InnerFlow(first, true); !p || k[32] != packet.ProtoUDP || binary.BigEndian.Uint16(k[34:]) != 40000 {
		t.Fatalf("first fragment: %x %v", k, p)
	}
	// Destination options before TCP are skipped.
	dst := pkttest.IP6(0, 0, 60, 64, pkttest.THoA, pkttest.TCN, append([]byte{packet.ProtoTCP, 0, 1, 4, 0, 0, 0, 0}, pkttest.TCPSeg(40000, 443, 1, 1, packet.TCPFlagACK, nil)...))
	if k, p := InnerFlow(dst, true); !p || k != ko {
		t.Fatalf("behind destination options: %x %v", k, p)
	}
	for _, bad := range [][]byte{nil, out[:39], out[:41], pkttest.IP6(0, 0, 60, 64, pkttest.THoA, pkttest.TCN, []byte{packet.ProtoTCP})} {
		InnerFlow(bad, true) // must not panic
	}
}

func TestFlowMemory(t *testing.T) {
	m := NewFlowMemory()
	k, _ := InnerFlow(pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 443, 1, 1, packet.TCPFlagACK, nil)), true)
	if _, fok, _, pok := m.recall(&k, true); fok || pok {
		t.Fatal("empty memory recalls something")
	}
	m.Learn(&k, true, 3)
	if f, fok, p, pok := m.recall(&k, true); !fok || !pok || f != 3 || p != 3 {
		t.Fatalf("recall %d %v %d %v", f, fok, p, pok)
	}
	// Another flow to the same peer on another BID: the flow keeps its
	// own, the peer follows the latest.
	k2, _ := InnerFlow(pkttest.IP6(0, 0, packet.ProtoUDP, 64, pkttest.THoA, pkttest.TCN, []byte{0, 53, 0, 53, 0, 8, 0, 0}), true)
	m.Learn(&k2, true, 5)
	if f, _, p, _ := m.recall(&k, true); f != 3 || p != 5 {
		t.Fatalf("flow %d peer %d, want 3 and 5", f, p)
	}
	// A new flow to that peer knows only the peer.
	k3, _ := InnerFlow(pkttest.IP6(0, 0, packet.ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40002, 443, 1, 1, packet.TCPFlagACK, nil)), true)
	if _, fok, p, pok := m.recall(&k3, true); fok || !pok || p != 5 {
		t.Fatalf("new flow: flow %v peer %d %v", fok, p, pok)
	}
	// Other home addresses are other keys.
	k4, _ := InnerFlow(pkttest.IP6(0, 0, packet.ProtoTCP, 64, netip.MustParseAddr("2001:db8:aaaa::101"), pkttest.TCN, pkttest.TCPSeg(40000, 443, 1, 1, packet.TCPFlagACK, nil)), true)
	if _, fok, _, pok := m.recall(&k4, true); fok || pok {
		t.Fatal("another home address recalls the first one's flows")
	}
	if a := testing.AllocsPerRun(100, func() {
		m.Learn(&k, true, 1)
		m.recall(&k2, true)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}
