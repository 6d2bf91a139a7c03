package iface

import (
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A carrier loss seen only in a notification (the link was back before the
// next reading) still makes the link confirm itself again: the RAs heard
// before, e.g. the home agent's, no longer count.
func TestCarrierLossBetweenReadings(t *testing.T) {
	k := &kernel{}
	upDev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 2, Name: "eth0", RawFlags: unix.IFF_UP | unix.IFF_LOWER_UP}}
	downDev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 2, Name: "eth0", RawFlags: unix.IFF_UP}}
	k.noteLink(netlink.LinkUpdate{Link: upDev})
	if got := k.lostCarrier(); len(got) != 0 {
		t.Fatalf("lost %v after an update with carrier", got)
	}
	k.noteLink(netlink.LinkUpdate{Link: downDev})
	k.noteLink(netlink.LinkUpdate{Link: upDev})
	if got := k.lostCarrier(); !slices.Equal(got, []int{2}) {
		t.Fatalf("lost %v, want [2]", got)
	}
	if got := k.lostCarrier(); len(got) != 0 {
		t.Fatalf("lost %v on the second call, want it forgotten", got)
	}

	// What the watcher does with it: the home agent's RA is forgotten and
	// the link's addresses wait for a new one.
	homeRA := raInfo{Router: ll1, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: time.Hour}}}
	c, st := testSelector(t, &Config{HomeAddress: hoa, ConfirmTimeout: time.Second})
	c.ra.update(2, homeRA, t0)
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)}
	addrs := []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)}
	if eth0, _ := c.build(links, addrs, t0, st).Interface("eth0"); !eth0.HomeLink {
		t.Fatalf("eth0 not home after the home agent's RA: %+v", eth0)
	}
	c.ra.detach(2)
	s := c.build(links, addrs, t0.Add(time.Millisecond), st)
	if eth0, _ := s.Interface("eth0"); eth0.HomeLink || eth0.State != StateNoAddress {
		t.Fatalf("after a carrier loss between readings: %+v", eth0)
	}
}
