package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestInnerFlowBothDirections(t *testing.T) {
	out := ip6(0, 0, protoTCP, 64, tHoA, tCN, tcpSeg(40000, 443, 1, 1, tcpACK, nil))
	in := ip6(0, 0, protoTCP, 64, tCN, tHoA, tcpSeg(443, 40000, 1, 1, tcpACK, nil))
	ko, po := innerFlow(out, true)
	ki, pi := innerFlow(in, false)
	if !po || !pi || ko != ki {
		t.Fatalf("a flow and its reverse differ:\n%x %v\n%x %v", ko, po, ki, pi)
	}
	if binary.BigEndian.Uint16(ko[34:]) != 40000 || binary.BigEndian.Uint16(ko[36:]) != 443 || ko[32] != protoTCP {
		t.Fatalf("key %x: want the home address's port 40000, the peer's 443", ko)
	}
	other, _ := innerFlow(ip6(0, 0, protoTCP, 64, tHoA, tCN, tcpSeg(40001, 443, 1, 1, tcpACK, nil)), true)
	if other == ko {
		t.Fatal("different ports, same key")
	}
	// Echo request and reply share the identifier.
	kq, pq := innerFlow(ip6(0, 0, protoICMPv6, 64, tCN, tHoA, echo(128, 77, 1, 0)), false)
	kr, pr := innerFlow(ip6(0, 0, protoICMPv6, 64, tHoA, tCN, echo(129, 77, 1, 0)), true)
	if !pq || !pr || kq != kr {
		t.Fatalf("echo request and reply differ: %x %x", kq, kr)
	}
	// No ports: a Packet Too Big, a non-first fragment; the peer part of
	// the key still holds.
	kp, pp := innerFlow(ip6(0, 0, protoICMPv6, 64, tHoA, tCN, []byte{2, 0, 0, 0, 0, 0, 5, 0}), true)
	if pp || [32]byte(kp[:32]) != [32]byte(ko[:32]) {
		t.Fatalf("PTB: ports %v, peer key %x", pp, kp[:32])
	}
	frag := ip6(0, 0, 44, 64, tHoA, tCN, append([]byte{protoUDP, 0, 0x05, 0x00, 0, 0, 0, 1}, make([]byte, 16)...))
	if _, p := innerFlow(frag, true); p {
		t.Fatal("non-first fragment has ports")
	}
	first := ip6(0, 0, 44, 64, tHoA, tCN, append([]byte{protoUDP, 0, 0x00, 0x01, 0, 0, 0, 1}, 0x9c, 0x40, 0, 53, 0, 8, 0, 0))
	if k, p := innerFlow(first, true); !p || k[32] != protoUDP || binary.BigEndian.Uint16(k[34:]) != 40000 {
		t.Fatalf("first fragment: %x %v", k, p)
	}
	// Destination options before TCP are skipped.
	dst := ip6(0, 0, 60, 64, tHoA, tCN, append([]byte{protoTCP, 0, 1, 4, 0, 0, 0, 0}, tcpSeg(40000, 443, 1, 1, tcpACK, nil)...))
	if k, p := innerFlow(dst, true); !p || k != ko {
		t.Fatalf("behind destination options: %x %v", k, p)
	}
	for _, bad := range [][]byte{nil, out[:39], out[:41], ip6(0, 0, 60, 64, tHoA, tCN, []byte{protoTCP})} {
		innerFlow(bad, true) // must not panic
	}
}

func TestFlowMemory(t *testing.T) {
	m := newFlowMemory()
	k, _ := innerFlow(ip6(0, 0, protoTCP, 64, tHoA, tCN, tcpSeg(40000, 443, 1, 1, tcpACK, nil)), true)
	if _, fok, _, pok := m.recall(&k, true); fok || pok {
		t.Fatal("empty memory recalls something")
	}
	m.learn(&k, true, 3)
	if f, fok, p, pok := m.recall(&k, true); !fok || !pok || f != 3 || p != 3 {
		t.Fatalf("recall %d %v %d %v", f, fok, p, pok)
	}
	// Another flow to the same peer on another BID: the flow keeps its
	// own, the peer follows the latest.
	k2, _ := innerFlow(ip6(0, 0, protoUDP, 64, tHoA, tCN, []byte{0, 53, 0, 53, 0, 8, 0, 0}), true)
	m.learn(&k2, true, 5)
	if f, _, p, _ := m.recall(&k, true); f != 3 || p != 5 {
		t.Fatalf("flow %d peer %d, want 3 and 5", f, p)
	}
	// A new flow to that peer knows only the peer.
	k3, _ := innerFlow(ip6(0, 0, protoTCP, 64, tHoA, tCN, tcpSeg(40002, 443, 1, 1, tcpACK, nil)), true)
	if _, fok, p, pok := m.recall(&k3, true); fok || !pok || p != 5 {
		t.Fatalf("new flow: flow %v peer %d %v", fok, p, pok)
	}
	// Other home addresses are other keys.
	k4, _ := innerFlow(ip6(0, 0, protoTCP, 64, netip.MustParseAddr("2001:db8:aaaa::101"), tCN, tcpSeg(40000, 443, 1, 1, tcpACK, nil)), true)
	if _, fok, _, pok := m.recall(&k4, true); fok || pok {
		t.Fatal("another home address recalls the first one's flows")
	}
	if a := testing.AllocsPerRun(100, func() {
		m.learn(&k, true, 1)
		m.recall(&k2, true)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}
