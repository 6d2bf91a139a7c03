package mn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/policy"
)

func policyDaemon(t *testing.T) *Daemon {
	t.Helper()
	voice, err := config.ParsePolicy(config.PolicyText{Name: "voice", Protocol: "udp", DstPort: "5060-5061", Prefer: []string{"wlan*", "eth*"}})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{log: slog.New(slog.DiscardHandler), events: control.NewEvents(0),
		cfg: &config.MN{Policies: []config.Policy{voice}}}
	t.Cleanup(d.events.Close)
	return d
}

// TestPolicyAPI: the control API lists, adds and deletes flow policies with
// the configuration's rules, refuses what is wrong with the status the API
// names, and announces every change.
func TestPolicyAPI(t *testing.T) {
	d := policyDaemon(t)
	ctx := context.Background()
	sub := d.events.Subscribe()
	defer sub.Close()
	old := d.cfg

	add := control.Policy{Name: "bulk", Protocol: "tcp", DstPort: "443", DstPrefix: "2001:db8::/32", User: "0", Prefer: []string{"wwan*", "2"}}
	if err := d.AddPolicy(ctx, add); err != nil {
		t.Fatal(err)
	}
	got, err := d.Policies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []control.Policy{
		{Name: "voice", Protocol: "udp", DstPort: "5060-5061", Prefer: []string{"wlan*", "eth*"}},
		{Name: "bulk", Protocol: "tcp", DstPort: "443", DstPrefix: "2001:db8::/32", User: "0", Prefer: []string{"wwan*", "bid:2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("policies\n got %+v\nwant %+v", got, want)
	}
	if len(old.Policies) != 1 {
		t.Errorf("the configuration in use before the change was modified: %d policies", len(old.Policies))
	}
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != control.EventPolicy || ev.Removed || ev.Policy == nil || ev.Policy.Name != "bulk" {
		t.Errorf("event after add: %+v %v", ev, err)
	}

	for _, tt := range []struct {
		p    control.Policy
		want error
	}{
		{control.Policy{Name: "bulk", Prefer: []string{"eth*"}}, control.ErrConflict},
		{control.Policy{Name: "x", Protocol: "sctp", Prefer: []string{"eth*"}}, control.ErrInvalid},
		{control.Policy{Name: "x", DstPort: "80", Prefer: []string{"eth*"}}, control.ErrInvalid},
		{control.Policy{Name: "x", Prefer: []string{"bid:0"}}, control.ErrInvalid},
		{control.Policy{Name: "x", User: "no-such-user-mcoad", Prefer: []string{"eth*"}}, control.ErrInvalid},
		{control.Policy{Name: "x", Cgroup: "/no/such/cgroup/mcoad", Prefer: []string{"eth*"}}, control.ErrInvalid},
	} {
		if err := d.AddPolicy(ctx, tt.p); !errors.Is(err, tt.want) {
			t.Errorf("AddPolicy(%+v) = %v, want %v", tt.p, err, tt.want)
		}
	}

	if err := d.DeletePolicy(ctx, "voice"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePolicy(ctx, "voice"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("deleting it again: %v", err)
	}
	got, _ = d.Policies(ctx)
	if len(got) != 1 || got[0].Name != "bulk" {
		t.Errorf("after delete: %+v", got)
	}
	ev, err = sub.Next(ctx)
	if err != nil || ev.Kind != control.EventPolicy || !ev.Removed || ev.Policy.Name != "voice" {
		t.Errorf("event after delete: %+v %v", ev, err)
	}
}

// fakeBUL is the engine as the data path sees it.
type fakeBUL struct {
	mu      sync.Mutex
	snap    []bul.Entry
	updated chan struct{}
	set     [][]bul.Tunnel // every SetTunnels
}

func (f *fakeBUL) Snapshot() []bul.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.snap)
}

func (f *fakeBUL) Updated() <-chan struct{} { return f.updated }

func (f *fakeBUL) SetTunnels(ts []bul.Tunnel) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set = append(f.set, ts)
}

func (f *fakeBUL) reported() [][]bul.Tunnel {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.set)
}

// fakeBackend records every SetTunnels.
type fakeBackend struct{ applied chan []dataplane.Tunnel }

func (b *fakeBackend) SetTunnels(ctx context.Context, ts []dataplane.Tunnel) error {
	b.applied <- ts
	return nil
}
func (b *fakeBackend) Stats() dataplane.Stats { return dataplane.Stats{} }
func (b *fakeBackend) Name() string           { return "fake" }
func (b *fakeBackend) Close() error           { return nil }

// fakePolicy takes every state.
type fakePolicy struct{}

func (fakePolicy) Apply(context.Context, policy.State) error { return nil }
func (fakePolicy) Marks() map[uint16]uint32                  { return nil }
func (fakePolicy) Keep() error                               { return nil }
func (fakePolicy) Close() error                              { return nil }

func testDataPath(t *testing.T) (*dataPath, *fakeBUL) {
	d := policyDaemon(t)
	f := &fakeBUL{updated: make(chan struct{}, 1)}
	hoa, ha := netip.MustParseAddr("2001:db8:aaaa::100"), netip.MustParseAddr("2001:db8:aaaa::1")
	p := &dataPath{d: d, log: d.log, bul: f, hoa: hoa, ha: ha, kickc: make(chan struct{}, 1),
		backend: &fakeBackend{applied: make(chan []dataplane.Tunnel, 16)}, pol: fakePolicy{}, clk: clock.NewFake(time.Unix(1e9, 0)),
		devIndex: func(name string) int {
			if n, err := strconv.Atoi(strings.TrimPrefix(name, "mcoab")); err == nil && n < 9 {
				return 100 + n
			}
			return 0
		}}
	return p, f
}

// TestDataPathState: the engine's snapshot becomes exactly one tunnel and
// one policy binding per registered home-agent binding, numbered as the
// engine says (a binding without BID by its care-of address's BID).
func TestDataPathState(t *testing.T) {
	p, f := testDataPath(t)
	hoa, ha := p.hoa, p.ha
	entry := func(bid, tbid uint16, ifname, coa string, prio uint8, st bul.State) bul.Entry {
		return bul.Entry{Role: "ha", BID: bid, TunnelBID: tbid, Interface: ifname, CoA: netip.MustParseAddr(coa), Priority: prio, State: st}
	}
	f.snap = []bul.Entry{
		entry(1, 1, "eth0", "2001:db8:1::2", 30, bul.StateRegistered),
		entry(2, 2, "wlan0", "2001:db8:2::2", 20, bul.StatePending),
		entry(3, 3, "wwan0", "2001:db8:3::2", 10, bul.StateRefreshing),
		{Role: "cn", BID: 4, TunnelBID: 4, Interface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::2"), State: bul.StateRegistered},
	}
	tunnels, bindings := p.state(f.Snapshot())
	wantT := []dataplane.Tunnel{
		{BID: 1, Iface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::2"), HA: ha, HoA: hoa},
		{BID: 3, Iface: "wwan0", CoA: netip.MustParseAddr("2001:db8:3::2"), HA: ha, HoA: hoa},
	}
	wantB := []policy.Binding{
		{BID: 1, Interface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::2"), Priority: 30},
		{BID: 3, Interface: "wwan0", CoA: netip.MustParseAddr("2001:db8:3::2"), Priority: 10},
	}
	if !reflect.DeepEqual(tunnels, wantT) || !reflect.DeepEqual(bindings, wantB) {
		t.Errorf("state:\n%+v\n%+v", tunnels, bindings)
	}
	f.snap = []bul.Entry{
		entry(1, 1, "eth0", "2001:db8:1::2", 30, bul.StateDeregistering),
		entry(2, 2, "wlan0", "2001:db8:2::2", 20, bul.StateRegistered),
	}
	tunnels, _ = p.state(f.Snapshot())
	if len(tunnels) != 1 || tunnels[0].BID != 2 {
		t.Errorf("after wlan0 registered, eth0 deregistering and wwan0 removed: %+v", tunnels)
	}
	// Single mode: the binding without BID goes through the tunnel the
	// engine numbers; one it cannot number has none.
	f.snap = []bul.Entry{entry(0, 2, "wlan0", "2001:db8:2::2", 20, bul.StateRegistered)}
	if tunnels, _ = p.state(f.Snapshot()); len(tunnels) != 1 || tunnels[0].BID != 2 || tunnels[0].Iface != "wlan0" {
		t.Errorf("single binding: %+v", tunnels)
	}
	f.snap[0].TunnelBID = 0
	if tunnels, _ = p.state(f.Snapshot()); len(tunnels) != 0 {
		t.Errorf("single binding without a tunnel number: %+v", tunnels)
	}
	// A nil data path (backend "none") takes every call.
	var none *dataPath
	none.kick()
	none.close()
	if none.name() != "none" || none.metrics() != nil || none.run(context.Background()) != nil {
		t.Error("nil data path")
	}
}

// TestDataPathLoop: a burst of changes (the engine's list, a kick) is
// applied once after it settles, the tunnels that work go back to the
// engine, and the kernel is checked again healEvery after the last apply.
func TestDataPathLoop(t *testing.T) {
	p, f := testDataPath(t)
	clk, be := p.clk.(*clock.Fake), p.backend.(*fakeBackend)
	f.snap = []bul.Entry{{Role: bul.RoleHA, BID: 1, TunnelBID: 1, Interface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::2"), State: bul.StateRegistered}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.loop(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	armed := func(d time.Duration) func() bool { return func() bool { return slices.Contains(clk.Pending(), d) } }
	applied := func(what string) []dataplane.Tunnel {
		t.Helper()
		select {
		case ts := <-be.applied:
			return ts
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not applied", what)
		}
		return nil
	}

	f.updated <- struct{}{}
	eventually(t, "the settle timer", armed(settle))
	p.kick() // within the burst
	clk.Advance(settle)
	if ts := applied("after the burst"); len(ts) != 1 || ts[0].BID != 1 {
		t.Fatalf("applied %+v", ts)
	}
	eventually(t, "the tunnel reported", func() bool { return len(f.reported()) == 1 })
	if got := f.reported(); !reflect.DeepEqual(got[0], []bul.Tunnel{{BID: 1, Ifindex: 101, Name: "mcoab1"}}) {
		t.Fatalf("reported %+v", got)
	}
	select {
	case ts := <-be.applied:
		t.Fatalf("a second apply for one burst: %+v", ts)
	default:
	}
	// Nothing changes: checked again after healEvery, not reported again.
	eventually(t, "the heal timer", armed(healEvery))
	clk.Advance(healEvery)
	eventually(t, "the settle timer", armed(settle))
	clk.Advance(settle)
	applied("heal")
	eventually(t, "the heal timer again", armed(healEvery))
	if got := f.reported(); len(got) != 1 {
		t.Fatalf("reported again without a change: %+v", got)
	}
}

// TestReportTunnels: after each apply the engine learns which tunnels
// carry packets, only when that changed; after a failed apply only those
// already complete before it.
func TestReportTunnels(t *testing.T) {
	p, f := testDataPath(t)
	tun := func(bids ...uint16) []dataplane.Tunnel {
		var out []dataplane.Tunnel
		for _, b := range bids {
			out = append(out, dataplane.Tunnel{BID: b})
		}
		return out
	}
	want := func(bids ...uint16) []bul.Tunnel {
		var out []bul.Tunnel
		for _, b := range bids {
			out = append(out, bul.Tunnel{BID: b, Ifindex: 100 + int(b), Name: dataplane.DeviceName(b)})
		}
		return out
	}
	failed := errors.New("netlink: no")
	for i, step := range []struct {
		tunnels []dataplane.Tunnel
		err     error
		want    [][]bul.Tunnel
	}{
		{tun(1, 3), nil, [][]bul.Tunnel{want(1, 3)}},
		{tun(1, 3), nil, [][]bul.Tunnel{want(1, 3)}},                      // no change: not again
		{tun(1, 2, 3), failed, [][]bul.Tunnel{want(1, 3)}},                // 2 is not complete
		{tun(1, 2, 3, 9), nil, [][]bul.Tunnel{want(1, 3), want(1, 2, 3)}}, // 9 has no device
		{nil, nil, [][]bul.Tunnel{want(1, 3), want(1, 2, 3), nil}},
	} {
		p.reportTunnels(step.tunnels, step.err)
		if !reflect.DeepEqual(f.set, step.want) {
			t.Fatalf("step %d: SetTunnels calls %+v, want %+v", i, f.set, step.want)
		}
	}
}

// deviceless is a backend without tunnel devices (eBPF): its tunnels
// carry packets once it reports them (dataplane.Entrances).
type deviceless struct {
	fakeBackend
	names map[uint16]string
}

func (b *deviceless) Entrances() map[uint16]string { return b.names }

// marked is a policy engine with marks for BIDs 1 and 2.
type marked struct{ fakePolicy }

func (marked) Marks() map[uint16]uint32 { return map[uint16]uint32{1: 0x4e000000, 2: 0x4f000000} }

// TestReportMarkedTunnels: a backend without devices says which tunnels
// work; each is entered with its BID's mark, and one without a mark yet is
// not reported.
func TestReportMarkedTunnels(t *testing.T) {
	p, f := testDataPath(t)
	p.backend = &deviceless{names: map[uint16]string{1: "eth0", 3: "wwan0"}}
	p.pol = marked{}
	p.reportTunnels([]dataplane.Tunnel{{BID: 1}, {BID: 2}, {BID: 3}}, nil)
	want := [][]bul.Tunnel{{{BID: 1, Name: "eth0", Mark: 0x4e000000}}}
	if !reflect.DeepEqual(f.set, want) {
		t.Fatalf("SetTunnels calls %+v, want %+v", f.set, want)
	}
}

// spoofing is a backend whose decapsulation refused a spoofed outer source.
type spoofing struct{ fakeBackend }

func (*spoofing) Stats() dataplane.Stats { return dataplane.Stats{Drops: dataplane.Drops{Spoofed: 2}} }

// TestDropMetrics: every drop reason a backend counts is a sample of
// mcoad_dataplane_drops_total (the eBPF backend's spoofed outer sources
// too).
func TestDropMetrics(t *testing.T) {
	p, _ := testDataPath(t)
	p.backend = &spoofing{}
	for _, m := range p.metrics() {
		if m.Name != "mcoad_dataplane_drops_total" {
			continue
		}
		for _, s := range m.Samples {
			if s.Labels["reason"] == "spoofed" && s.Value == 2 {
				return
			}
		}
		t.Fatalf("drops %+v: no spoofed 2", m.Samples)
	}
	t.Fatal("no mcoad_dataplane_drops_total")
}

// TestControlBindingTunnel: the control API names a binding's tunnel once
// the engine reports it working, and leaves the field out before.
func TestControlBindingTunnel(t *testing.T) {
	e := bul.Entry{Role: "ha", BID: 1, TunnelBID: 1, State: bul.StateRegistered, LastStatus: 0}
	for _, tt := range []struct{ tunnel, want string }{{"", ""}, {"mcoab1", `"tunnel":"mcoab1"`}} {
		e.Tunnel = tt.tunnel
		b, err := json.Marshal(controlBinding(e))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), `"tunnel"`); got != (tt.want != "") || !strings.Contains(string(b), tt.want) {
			t.Errorf("tunnel %q: %s", tt.tunnel, b)
		}
	}
}
