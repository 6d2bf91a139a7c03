package netmon

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/vishvananda/netlink"
)

// Root tests on the real kernel, in namespaces of their own: without root
// they skip, with MCOA_E2E=1 they fail.

func waitFor(t *testing.T, m *Monitor, what string, pred func(*State) bool) *State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := m.Current(); pred(s) {
			return s
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; addresses %v", what, addrsOf(m.Current()))
	return nil
}

func hasAddr(a string) func(*State) bool {
	return func(s *State) bool { return slices.Contains(addrsOf(s), a) }
}

func linkNamed(s *State, name string) (netlink.Link, bool) {
	for _, l := range s.Links {
		if l.Attrs().Name == name {
			return l, true
		}
	}
	return nil, false
}

func TestNSMonitor(t *testing.T) {
	nstest.Require(t)
	p := nstest.Prefix()
	mn, peer := nstest.New(t, p+"mn"), nstest.New(t, p+"peer")
	nstest.Veth(t, mn, "mn0", peer, "p0")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "mn0", "nodad")
	m, err := New(&Config{NetNS: mn.Name, Routes: true})
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	s := m.Current()
	l, ok := linkNamed(s, "mn0")
	if !ok || l.Type() != "veth" || !hasAddr("2001:db8:1::10/64")(s) {
		t.Fatalf("first state: %v %v", l, addrsOf(s))
	}
	idx := l.Attrs().Index

	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::20/64", "dev", "mn0", "nodad", "preferred_lft", "100", "valid_lft", "200")
	s = waitFor(t, m, "the new address", hasAddr("2001:db8:1::20/64"))
	for _, a := range s.Addrs {
		if a.IPNet.String() == "2001:db8:1::20/64" && (a.PreferedLft > 100 || a.PreferedLft < 98 || a.ValidLft > 200) {
			t.Errorf("lifetimes %+v", a)
		}
	}
	// Its order is the kernel's, as a fresh dump shows it.
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fresh := m.Current(); !slices.Equal(addrsOf(fresh), addrsOf(s)) {
		t.Errorf("kept %v, dumped %v", addrsOf(s), addrsOf(fresh))
	}

	peer.Exec(t, "ip", "link", "set", "p0", "down")
	waitFor(t, m, "the carrier loss", func(s *State) bool {
		l, _ := linkNamed(s, "mn0")
		return l.Attrs().OperState != netlink.OperUp && s.CarrierLosses(idx) > 0
	})
	mn.Exec(t, "ip", "-6", "route", "add", "2001:db8:9::/64", "dev", "mn0", "table", "101")
	mn.Exec(t, "ip", "-6", "rule", "add", "pref", "5101", "table", "101")
	waitFor(t, m, "the route and the rule", func(s *State) bool {
		return slices.ContainsFunc(s.Routes, func(r netlink.Route) bool { return r.Table == 101 }) &&
			slices.ContainsFunc(s.Rules, func(r netlink.Rule) bool { return r.Priority == 5101 })
	})
	mn.Exec(t, "ip", "link", "del", "mn0")
	waitFor(t, m, "the link gone", func(s *State) bool {
		_, ok := linkNamed(s, "mn0")
		return !ok && len(s.Addrs) <= 1 && !slices.ContainsFunc(s.Routes, func(r netlink.Route) bool { return r.Table == 101 })
	})
}

// An overflowing socket (ENOBUFS) ends the subscription; the monitor
// subscribes again and reads everything, so nothing lost stays lost.
func TestNSMonitorOverflow(t *testing.T) {
	nstest.Require(t)
	p := nstest.Prefix()
	mn, peer := nstest.New(t, p+"mn"), nstest.New(t, p+"peer")
	nstest.Veth(t, mn, "mn0", peer, "p0")
	m, err := New(&Config{NetNS: mn.Name, RecvBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	// Far more events than the small socket holds, before anyone reads.
	mn.Batch(t, nstest.AddrScript("mn0", 400))
	run(t, m)
	waitFor(t, m, "everything", func(s *State) bool { return len(s.Addrs) == 402 }) // and two link-locals
	if n := m.subs.Load(); n < 2 {
		t.Errorf("%d subscriptions: the overflow was not noticed", n)
	}
}
