package mn

import (
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/ebpf"
	"github.com/mcoad/mcoad/pkg/dataplane/tun"
)

// TestKeptTunnelsWhileRegistering: after a restart the adopted tunnels
// stay wanted while their BIDs register again from the same care-of
// address, and go when a BID registers (its own tunnel takes over), is
// refused, moves, or the deadline passes.
func TestKeptTunnelsWhileRegistering(t *testing.T) {
	p, f := testDataPath(t)
	hoa, ha := p.hoa, p.ha
	coa := func(i int) netip.Addr { return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i), 15: 2}) }
	p.keptUntil = p.clk.Now().Add(time.Hour)
	p.kept = map[uint16]keptTunnel{
		1: {BID: 1, Interface: "eth0", CoA: coa(1), MTU: 1460, Priority: 30},
		2: {BID: 2, Interface: "wlan0", CoA: coa(2), MTU: 1460, Priority: 20},
		3: {BID: 3, Interface: "wwan0", CoA: coa(3), MTU: 1460, Priority: 10},
		4: {BID: 4, Interface: "usb0", CoA: coa(4), MTU: 1460, Priority: 5},
	}
	// ev puts bid's binding in the engine's snapshot.
	ev := func(bid uint16, ifname string, c netip.Addr, st bul.State) {
		f.snap = slices.DeleteFunc(f.snap, func(e bul.Entry) bool { return e.BID == bid })
		f.snap = append(f.snap, bul.Entry{Role: "ha", BID: bid, TunnelBID: bid, Interface: ifname, CoA: c, Priority: p.kept[bid].Priority, State: st})
	}
	bids := func() []uint16 {
		tunnels, bindings := p.state(f.Snapshot())
		var out []uint16
		for i, tn := range tunnels {
			if tn.HoA != hoa || tn.HA != ha || bindings[i].BID != tn.BID || bindings[i].CoA != tn.CoA {
				t.Fatalf("tunnel %+v, binding %+v", tn, bindings[i])
			}
			out = append(out, tn.BID)
		}
		return out
	}
	// Before the engine reports anything: every kept tunnel, with its
	// priority for the policy.
	if got := bids(); !slices.Equal(got, []uint16{1, 2, 3, 4}) {
		t.Fatalf("before any event: %v", got)
	}
	if _, b := p.state(f.Snapshot()); b[0].Priority != 30 || b[3].Priority != 5 {
		t.Fatalf("priorities %+v", b)
	}
	ev(1, "eth0", coa(1), bul.StatePending)    // registering again: kept
	ev(2, "wlan0", coa(9), bul.StatePending)   // another care-of address: not the kept one
	ev(3, "wwan0", coa(3), bul.StateFailed)    // refused
	ev(4, "usb0", coa(4), bul.StateRegistered) // registered: its own
	if got := bids(); !slices.Equal(got, []uint16{1, 4}) {
		t.Fatalf("while registering: %v", got)
	}
	if _, ok := p.kept[4]; ok {
		t.Error("BID 4 registered but still kept")
	}
	ev(1, "eth0", coa(1), bul.StateRegistered)
	if got := bids(); !slices.Equal(got, []uint16{1, 4}) || len(p.kept) != 0 {
		t.Fatalf("all registered: %v, kept %v", got, p.kept)
	}

	// The deadline ends the wait.
	p.kept = map[uint16]keptTunnel{5: {BID: 5, Interface: "eth1", CoA: coa(5)}}
	if got := bids(); !slices.Contains(got, 5) {
		t.Fatalf("kept BID 5 missing: %v", got)
	}
	p.keptUntil = p.clk.Now().Add(-time.Millisecond)
	if got := bids(); slices.Contains(got, 5) || p.kept != nil {
		t.Fatalf("after the deadline: %v, kept %v", got, p.kept)
	}
}

// TestKeptMarker: the marker round trip, what adopts it, and `mcoad
// -cleanup`'s decision: after a restart it skips once, then removes
// everything (and the marker); after any other kept stop it removes at
// once.
func TestKeptMarker(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	cfg := &config.MN{
		MobileNode: config.MobileNode{HomeAddress: netip.MustParseAddr("2001:db8:aaaa::100"), HomeAgent: netip.MustParseAddr("2001:db8:aaaa::1")},
		Dataplane:  config.Dataplane{Backend: config.BackendTUN, Mark: config.DefaultMark, Mask: config.DefaultMask, TableBase: config.DefaultTableBase},
	}
	k := &keptState{Format: 1, Reason: keepRestart, Backend: tun.Name, HomeDevice: config.DefaultHomeDevice,
		HomeAddress: cfg.MobileNode.HomeAddress, HomeAgent: cfg.MobileNode.HomeAgent,
		Mark: config.DefaultMark, Mask: config.DefaultMask, TableBase: config.DefaultTableBase, NFTable: config.DefaultNFTable,
		Tunnels: []keptTunnel{{BID: 1, Interface: "eth0", Ifindex: 2, CoA: netip.MustParseAddr("2001:db8:1::2"), MTU: 1460, Priority: 30}}}
	if err := writeKept(dir, k); err != nil {
		t.Fatal(err)
	}
	got := readKept(dir, log)
	if got == nil || !got.matches(cfg) || got.Tunnels[0] != k.Tunnels[0] {
		t.Fatalf("read back %+v", got)
	}
	if a := got.adopt(cfg); len(a) != 1 || a[0] != (dataplane.Tunnel{BID: 1, Iface: "eth0", Ifindex: 2, CoA: k.Tunnels[0].CoA,
		HA: cfg.MobileNode.HomeAgent, HoA: cfg.MobileNode.HomeAddress, MTU: 1460}) {
		t.Fatalf("adopt %+v", a)
	}
	other := *cfg
	other.Dataplane.TableBase = 2000
	if got.matches(&other) {
		t.Error("another table base adopts the kept data plane")
	}
	other = *cfg
	other.Dataplane.Backend = config.BackendKernel
	if got.matches(&other) {
		t.Error("the kernel backend adopts TUN devices")
	}
	other.Dataplane.Backend = config.BackendEBPF
	if got.matches(&other) {
		t.Error("the eBPF backend adopts TUN devices")
	}
	eb := *got
	eb.Backend, eb.BPFDir = ebpf.Name, "/sys/fs/bpf/lab1"
	other.Dataplane.BPFDir = eb.BPFDir
	if !eb.matches(&other) {
		t.Error("the eBPF backend does not adopt its own kept data plane")
	}
	other.Dataplane.BPFDir = config.DefaultBPFDir
	if eb.matches(&other) {
		t.Error("the eBPF backend adopts pins from another directory")
	}

	// A restart: skipped once, then cleaned.
	if !SkipCleanup(dir, log) {
		t.Fatal("cleanup after a restart not skipped")
	}
	if k := readKept(dir, log); k == nil || !k.CleanupSkipped {
		t.Fatalf("marker after the skip: %+v", k)
	}
	if SkipCleanup(dir, log) {
		t.Fatal("cleanup skipped twice")
	}
	if _, err := os.Stat(keptPath(dir)); !os.IsNotExist(err) {
		t.Fatalf("marker left after the cleanup: %v", err)
	}
	if SkipCleanup(dir, log) {
		t.Fatal("cleanup skipped without a marker")
	}
	// Kept by configuration (no restart known): cleaned at once.
	k.Reason = keepConfigured
	if err := writeKept(dir, k); err != nil {
		t.Fatal(err)
	}
	if SkipCleanup(dir, log) {
		t.Fatal("cleanup skipped after a stop that was not a restart")
	}
	// An unreadable marker adopts nothing and goes.
	os.WriteFile(keptPath(dir), []byte("{"), 0o600)
	if readKept(dir, log) != nil {
		t.Fatal("garbage adopted")
	}
	if _, err := os.Stat(keptPath(dir)); !os.IsNotExist(err) {
		t.Fatal("unreadable marker left")
	}
}
