package iface

import (
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

type lossCounts map[int]uint64

func (c lossCounts) CarrierLosses(i int) uint64 { return c[i] }

// A carrier loss seen only in a notification (the link was back before the
// next reading) still makes the link confirm itself again: the RAs heard
// before, e.g. the home agent's, no longer count.
func TestCarrierLossBetweenReadings(t *testing.T) {
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)}
	lost, seen := lostSince(nil, lossCounts{2: 4}, links)
	if len(lost) != 0 {
		t.Fatalf("lost %v at the first reading", lost)
	}
	if lost, seen = lostSince(seen, lossCounts{2: 4}, links); len(lost) != 0 {
		t.Fatalf("lost %v without a new loss", lost)
	}
	if lost, seen = lostSince(seen, lossCounts{2: 5}, links); !slices.Equal(lost, []int{2}) {
		t.Fatalf("lost %v, want [2]", lost)
	}
	if lost, _ = lostSince(seen, lossCounts{2: 5}, links); len(lost) != 0 {
		t.Fatalf("lost %v on the next reading, want it forgotten", lost)
	}

	// What the watcher does with it: the home agent's RA is forgotten and
	// the link's addresses wait for a new one.
	homeRA := raInfo{Router: ll1, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: time.Hour}}}
	w, fb, fc := newFakeBackendWatcher(t, &Config{HomeAddress: hoa, ConfirmTimeout: time.Second})
	w.sel.ra.update(2, homeRA, t0)
	fb.set(links, []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)})
	start(t, w)
	s := recv(t, w)
	if eth0, _ := s.Interface("eth0"); !eth0.HomeLink {
		t.Fatalf("eth0 not home after the home agent's RA: %+v", eth0)
	}
	fb.mu.Lock()
	fb.lost = []int{2}
	fb.mu.Unlock()
	fc.Advance(time.Millisecond)
	w.Hint()
	readAt(t, w, fc, DefaultDebounce)
	s, _ = w.Current()
	if eth0, _ := s.Interface("eth0"); eth0.HomeLink || eth0.State != StateNoAddress {
		t.Fatalf("after a carrier loss between readings: %+v", eth0)
	}
}
