package bul

import (
	"testing"

	"github.com/mcoad/mcoad/pkg/proto"
)

// TestCNHoTIWaitsForTunnel: the HoTI leaves through the primary binding's
// tunnel once the data plane reports it working (SetTunnels), not before
// and not through another one.
func TestCNHoTIWaitsForTunnel(t *testing.T) {
	h := newCNHarness(t)
	h.c.setTunnels(nil, h.now())
	if ss := h.homeUp(eth0, wlan); count(ss, proto.TypeHoTI)+count(ss, proto.TypeCoTI) != 0 {
		t.Fatalf("return routability before any tunnel works: %v", ss)
	}
	if e := h.mustEntry(1); e.TunnelBID != 1 || e.Tunnel != "" {
		t.Fatalf("entry before its tunnel works: %+v", e)
	}
	h.c.setTunnels(tunnels(2), h.now())
	if ss := h.take(); count(ss, proto.TypeHoTI) != 0 {
		t.Fatalf("HoTI through BID 2's tunnel while BID 1 is the primary: %v", ss)
	}
	h.c.setTunnels(tunnels(1, 2), h.now())
	ss := h.take()
	var hoti []sent
	for _, s := range ss {
		if s.p.MH.Type == proto.TypeHoTI {
			hoti = append(hoti, s)
		}
	}
	if len(hoti) != 1 || hoti[0].ifindex != tunIndex(1) || hoti[0].p.Src != hoa {
		t.Fatalf("HoTIs %v, want one from the home address through ifindex %d", hoti, tunIndex(1))
	}
	if e := h.mustEntry(1); e.Tunnel != "mcoab1" {
		t.Fatalf("entry with its tunnel working: %+v", e)
	}
	h.converge(ss)
	for _, e := range cnEntries(h.harness) {
		if e.State != StateRegistered || e.TunnelBID != e.BID {
			t.Errorf("correspondent binding %+v", e)
		}
	}
}

// TestCNHoTIMarkedTunnel: a tunnel without a device (the eBPF data plane)
// is entered with its mark: the HoTI leaves from the home address with the
// primary binding's.
func TestCNHoTIMarkedTunnel(t *testing.T) {
	h := newCNHarness(t)
	h.c.setTunnels([]Tunnel{{BID: 1, Name: "eth0", Mark: 0x4e000000}, {BID: 2, Name: "wlan0", Mark: 0x4f000000}}, h.now())
	ss := h.homeUp(eth0, wlan)
	var hoti []sent
	for _, s := range ss {
		if s.p.MH.Type == proto.TypeHoTI {
			hoti = append(hoti, s)
		}
	}
	if len(hoti) != 1 || hoti[0].ifindex != 0 || hoti[0].mark != 0x4e000000 || hoti[0].p.Src != hoa {
		t.Fatalf("HoTIs %v, want one from the home address with BID 1's mark", hoti)
	}
	if e := h.mustEntry(1); e.Tunnel != "eth0" {
		t.Fatalf("entry with its tunnel working: %+v", e)
	}
}

// TestSingleModeTunnel: a binding without BID goes through the tunnel of
// its care-of address's BID, for the data plane and the HoTI alike, and
// moves with it.
func TestSingleModeTunnel(t *testing.T) {
	h := newHarness(t)
	h.c.setTunnels(tunnels(1, 2), h.now())
	h.set(eth0, wlan)
	h.deliver(ba(h.one(), 0, life420)) // accepted without BID sub-option
	r := h.one()
	h.deliver(ba(r, 0, life420))
	if e := h.mustEntry(0); e.State != StateRegistered || e.TunnelBID != 1 || e.Tunnel != "mcoab1" {
		t.Fatalf("single binding %+v", e)
	}
	if got := h.c.bestTunnel().Ifindex; got != tunIndex(1) {
		t.Fatalf("HoTI tunnel %d, want %d", got, tunIndex(1))
	}
	h.set(wlan)
	h.deliver(ba(h.one(), 0, life420))
	if e := h.mustEntry(0); e.TunnelBID != 2 || e.Tunnel != "mcoab2" {
		t.Fatalf("single binding after eth0 left %+v", e)
	}
	if got := h.c.bestTunnel().Ifindex; got != tunIndex(2) {
		t.Fatalf("HoTI tunnel %d, want %d", got, tunIndex(2))
	}
}

// TestEngineTunnelsAndUpdated: SetTunnels reaches the snapshot, and
// Updated tells its reader the list changed.
func TestEngineTunnelsAndUpdated(t *testing.T) {
	r := startEngine(t, func(c *Config) { c.DataPlane = true })
	<-r.e.Updated() // the first view
	if err := r.e.SetCareOfs([]CareOf{eth0}); err != nil {
		t.Fatal(err)
	}
	s := r.recv()
	r.e.HandlePacket(ba(s, 0, life420, echo(s, 0)...))
	r.sync()
	select {
	case <-r.e.Updated():
	default:
		t.Fatal("no update after the registration")
	}
	r.e.SetTunnels(tunnels(1))
	r.sync()
	<-r.e.Updated()
	if snap := r.e.Snapshot(); len(snap) != 1 || snap[0].State != StateRegistered || snap[0].Tunnel != "mcoab1" || snap[0].TunnelBID != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	// The same set again changes nothing.
	r.e.SetTunnels(tunnels(1))
	r.sync()
	select {
	case <-r.e.Updated():
		t.Fatal("update without a change")
	default:
	}
}
