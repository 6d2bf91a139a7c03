package policy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"
	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/vishvananda/netlink"
)

// fakeRouting publishes States the test sets.
type fakeRouting struct {
	mu  sync.Mutex
	cur *netmon.State
	ch  chan struct{}
}

func (f *fakeRouting) Current() *netmon.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fakeRouting) Changes(netmon.Kind) (<-chan struct{}, func()) { return f.ch, func() {} }

func (f *fakeRouting) set(rules []netlink.Rule, routes []netlink.Route) {
	f.mu.Lock()
	f.cur = &netmon.State{Rules: rules, Routes: routes}
	f.mu.Unlock()
	f.ch <- struct{}{}
}

func TestWatchKicksOnDeletion(t *testing.T) {
	rule := func(prio int) netlink.Rule {
		r := netlink.NewRule()
		r.Priority, r.Table = prio, 1001
		return *r
	}
	route := func(table int) netlink.Route {
		return netlink.Route{Table: table, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, LinkIndex: 7}
	}
	cfg := &Config{TableBase: 1000}
	f := &fakeRouting{cur: &netmon.State{Rules: []netlink.Rule{rule(5100)}, Routes: []netlink.Route{route(1001)}}, ch: make(chan struct{})}
	var kicks atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, cfg, f, func() { kicks.Add(1) }) }()

	steps := []struct {
		what   string
		rules  []netlink.Rule
		routes []netlink.Route
		kick   bool
	}{
		{"an addition", []netlink.Rule{rule(5100), rule(5101)}, []netlink.Route{route(1001), route(1002)}, false},
		{"a route of another table goes", []netlink.Rule{rule(5100), rule(5101)}, []netlink.Route{route(1001), route(1002), route(254)}, false},
		{"", []netlink.Rule{rule(5100), rule(5101)}, []netlink.Route{route(1001), route(1002)}, false},
		{"a rule goes", []netlink.Rule{rule(5100)}, []netlink.Route{route(1001), route(1002)}, true},
		{"a BID table's route goes", []netlink.Rule{rule(5100)}, []netlink.Route{route(1001)}, true},
		{"nothing changed", []netlink.Rule{rule(5100)}, []netlink.Route{route(1001)}, false},
	}
	want := int32(0)
	for _, s := range steps {
		f.set(s.rules, s.routes)
		if s.kick {
			want++
			testutil.Eventually(t, 5*time.Second, 100*time.Microsecond, s.what, func() bool { return kicks.Load() == want })
		}
	}
	f.set(nil, nil) // a barrier: the steps before were all handled
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := kicks.Load(); got != want+1 {
		t.Errorf("%d kicks, want %d", got, want+1)
	}
}
