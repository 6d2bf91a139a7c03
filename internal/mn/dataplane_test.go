package mn

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
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

// TestDataPathState: the engine's events become exactly one tunnel and one
// policy binding per registered home-agent binding.
func TestDataPathState(t *testing.T) {
	d := policyDaemon(t)
	hoa, ha := netip.MustParseAddr("2001:db8:aaaa::100"), netip.MustParseAddr("2001:db8:aaaa::1")
	p := &dataPath{d: d, log: d.log, hoa: hoa, ha: ha, byBID: map[uint16]bul.Entry{}, kickc: make(chan struct{}, 1)}
	entry := func(bid uint16, ifname, coa string, prio uint8, st bul.State) *bul.Entry {
		return &bul.Entry{Role: "ha", BID: bid, Interface: ifname, CoA: netip.MustParseAddr(coa), Priority: prio, State: st}
	}
	ev := func(typ bul.EventType, e *bul.Entry) { p.observe(bul.Event{Time: time.Now(), Type: typ, Binding: e}) }
	ev(bul.EventBinding, entry(1, "eth0", "2001:db8:1::2", 30, bul.StateRegistered))
	ev(bul.EventBinding, entry(2, "wlan0", "2001:db8:2::2", 20, bul.StatePending))
	ev(bul.EventBinding, entry(3, "wwan0", "2001:db8:3::2", 10, bul.StateRefreshing))
	ev(bul.EventBinding, &bul.Entry{Role: "cn", BID: 4, Interface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::2"), State: bul.StateRegistered})
	select {
	case <-p.kickc:
	default:
		t.Error("no kick after the events")
	}
	tunnels, bindings := p.state()
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
	ev(bul.EventBinding, entry(2, "wlan0", "2001:db8:2::2", 20, bul.StateRegistered))
	ev(bul.EventBinding, entry(1, "eth0", "2001:db8:1::2", 30, bul.StateDeregistering))
	ev(bul.EventRemoved, entry(3, "wwan0", "2001:db8:3::2", 10, bul.StateDeregistering))
	tunnels, _ = p.state()
	if len(tunnels) != 1 || tunnels[0].BID != 2 {
		t.Errorf("after wlan0 registered, eth0 deregistering and wwan0 removed: %+v", tunnels)
	}
	// A nil data path (backend "none") takes every call.
	var none *dataPath
	none.observe(bul.Event{})
	none.kick()
	none.close()
	if none.name() != "none" || none.metrics() != nil || none.run(context.Background()) != nil {
		t.Error("nil data path")
	}
}
