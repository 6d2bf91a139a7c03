package netmon

import (
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
)

// State is one immutable view of a namespace's links, IPv6 addresses and
// (with Config.Routes) IPv6 routes and rules. Consumers must not modify it.
type State struct {
	// Gen increases with every published State.
	Gen uint64
	// Time is when it was published; address lifetimes count from it.
	Time time.Time
	// Links are ordered by index.
	Links []netlink.Link
	// Addrs are the IPv6 addresses, grouped by link in index order, each
	// group in the kernel's order (newest first within a scope).
	Addrs []netlink.Addr
	// Routes (all tables) and Rules are nil unless Config.Routes.
	Routes []netlink.Route
	Rules  []netlink.Rule

	losses map[int]uint64
}

// CarrierLosses counts the notifications that showed the link down or
// without carrier since the monitor started: a flap shorter than a
// consumer's reading interval still shows as a higher count.
func (s *State) CarrierLosses(ifindex int) uint64 { return s.losses[ifindex] }

// LinkList and AddrList make a State a source of links and addresses in
// the shape of *netlink.Handle's (AddrList takes nil and FAMILY_V6).
func (s *State) LinkList() ([]netlink.Link, error) { return s.Links, nil }

func (s *State) AddrList(netlink.Link, int) ([]netlink.Addr, error) { return s.Addrs, nil }

// addrEntry is an address with the time its lifetimes were read.
type addrEntry struct {
	a  netlink.Addr
	at time.Time
}

// table is the mutable state the monitor's goroutine owns; snapshot
// copies it into a State.
type table struct {
	links  map[int]netlink.Link
	addrs  map[int][]addrEntry // by link, kernel order
	routes []netlink.Route
	rules  []netlink.Rule
	losses map[int]uint64
}

func newTable() *table {
	return &table{links: map[int]netlink.Link{}, addrs: map[int][]addrEntry{}, losses: map[int]uint64{}}
}

// reset replaces links and addresses with a dump's.
func (t *table) reset(d *dump, now time.Time) {
	clear(t.links)
	clear(t.addrs)
	for _, l := range d.links {
		t.links[l.Attrs().Index] = l
	}
	for _, a := range d.addrs {
		t.addrs[a.LinkIndex] = append(t.addrs[a.LinkIndex], addrEntry{a, now})
	}
	if d.routing {
		t.routes, t.rules = d.routes, d.rules
	}
}

func (t *table) setLink(l netlink.Link) {
	a := l.Attrs()
	t.links[a.Index] = l
	if a.RawFlags&iffUp == 0 || a.RawFlags&iffLowerUp == 0 {
		t.losses[a.Index]++
	}
}

func (t *table) delLink(index int) {
	delete(t.links, index)
	delete(t.addrs, index)
	t.losses[index]++
}

// setAddr updates an address in place, or puts a new one first: the
// kernel lists a link's newest address first.
func (t *table) setAddr(a netlink.Addr, now time.Time) {
	list := t.addrs[a.LinkIndex]
	if i := t.findAddr(a); i >= 0 {
		list[i] = addrEntry{a, now}
		return
	}
	t.addrs[a.LinkIndex] = slices.Insert(list, 0, addrEntry{a, now})
}

func (t *table) delAddr(a netlink.Addr) {
	if i := t.findAddr(a); i >= 0 {
		t.addrs[a.LinkIndex] = slices.Delete(t.addrs[a.LinkIndex], i, i+1)
	}
}

func (t *table) findAddr(a netlink.Addr) int {
	ip := addrOf(a)
	return slices.IndexFunc(t.addrs[a.LinkIndex], func(e addrEntry) bool { return addrOf(e.a) == ip })
}

func addrOf(a netlink.Addr) netip.Addr {
	if a.IPNet == nil {
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	return ip.Unmap()
}

// forever is the lifetime that never runs out (INFINITY_LIFE_TIME).
const forever = 0xffffffff

// snapshot copies the table into a State; lifetimes are what remains at now.
func (t *table) snapshot(gen uint64, now time.Time) *State {
	s := &State{Gen: gen, Time: now, Routes: t.routes, Rules: t.rules, losses: make(map[int]uint64, len(t.losses))}
	for i, n := range t.losses {
		s.losses[i] = n
	}
	for _, l := range t.links {
		s.Links = append(s.Links, l)
	}
	slices.SortFunc(s.Links, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	idx := make([]int, 0, len(t.addrs))
	for i := range t.addrs {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		for _, e := range t.addrs[i] {
			a := e.a
			el := int(now.Sub(e.at) / time.Second)
			a.PreferedLft, a.ValidLft = remaining(a.PreferedLft, el), remaining(a.ValidLft, el)
			s.Addrs = append(s.Addrs, a)
		}
	}
	return s
}

func remaining(lft, elapsed int) int {
	if uint32(lft) == forever || elapsed <= 0 {
		return lft
	}
	return max(0, lft-elapsed)
}

// Linux ABI values (linux/if.h), so that the table compiles everywhere.
const (
	iffUp      = 0x1
	iffLowerUp = 0x10000
)

// dump is a full listing of the kernel's state.
type dump struct {
	links   []netlink.Link
	addrs   []netlink.Addr
	routing bool // routes and rules were listed
	routes  []netlink.Route
	rules   []netlink.Rule
}
