package iface

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// Source is where the watcher reads links and addresses: a
// *netlink.Handle, or recorded snapshots in tests. AddrList is called with
// a nil link and FAMILY_V6 (all IPv6 addresses), in the kernel's order.
type Source interface {
	LinkList() ([]netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

// Linux ABI values (linux/if.h, linux/if_addr.h, linux/rtnetlink.h), so
// that the selection compiles and is tested everywhere.
const (
	iffUp      = 0x1
	iffLowerUp = 0x10000

	ifaTemporary   = 0x01
	ifaDADFailed   = 0x08
	ifaHomeAddress = 0x10
	ifaDeprecated  = 0x20
	ifaTentative   = 0x40

	scopeUniverse = 0
	scopeSite     = 200
	scopeLink     = 253
	scopeHost     = 254

	familyV6 = 10 // AF_INET6
)

// virtualKinds are link kinds that never carry a care-of address: tunnels
// (the daemon's own or anyone's), TUN/TAP, and devices with no link of
// their own. Bridges, VLANs, bonds, macvlans and veths do carry real links.
var virtualKinds = map[string]bool{
	"tuntap": true, "ip6tnl": true, "ipip": true, "sit": true, "gre": true,
	"gretap": true, "ip6gre": true, "ip6gretap": true, "erspan": true,
	"ip6erspan": true, "vti": true, "vti6": true, "xfrm": true,
	"wireguard": true, "vxlan": true, "geneve": true, "bareudp": true,
	"gtp": true, "ifb": true, "dummy": true, "nlmon": true, "vrf": true,
}

// tunnelEncaps are ARP hardware types of tunnels (for kinds not listed).
var tunnelEncaps = map[string]bool{
	"loopback": true, "ipip": true, "tunnel6": true, "sit": true, "gre": true, "pimreg": true,
}

// ignoreReason says why a link is never a care-of interface ("" if it may be).
func (c *Config) ignoreReason(l netlink.Link) string {
	a := l.Attrs()
	switch {
	case a.Flags&net.FlagLoopback != 0 || a.EncapType == "loopback":
		return "loopback"
	case c.TunnelPrefix != "" && strings.HasPrefix(a.Name, c.TunnelPrefix):
		return "own tunnel"
	case virtualKinds[l.Type()]:
		return "virtual (" + l.Type() + ")"
	case tunnelEncaps[a.EncapType]:
		return "tunnel (" + a.EncapType + ")"
	}
	return ""
}

// settings are the parts changed at run time, copied for one build.
type settings struct {
	rules   []Rule
	prioBID map[uint16]uint8
	metered map[string]bool
}

type addrID struct {
	index int
	addr  netip.Addr
}

// selector chooses the care-of addresses and their BIDs from a reading of
// the links and addresses. It is the state the Run goroutine owns: BIDs,
// RAs, and when each address was first seen.
type selector struct {
	cfg       *Config
	bids      *bidTable
	ra        *raState
	firstSeen map[addrID]time.Time // zero: present at the first read
	spare     map[addrID]time.Time // the previous firstSeen, reused
	started   bool
}

func newSelector(cfg *Config) *selector {
	return &selector{
		cfg:       cfg,
		bids:      newBIDTable(cfg.StateDir, cfg.Logger, cfg.RotateBIDs),
		ra:        newRAState(cfg),
		firstSeen: map[addrID]time.Time{},
	}
}

type coaCand struct {
	addr       netip.Addr
	deprecated bool
	first      time.Time
	order      int // position in the kernel's list: newer first
	ai         int // index in Interface.Addrs
}

// better ranks care-of address candidates of one interface: preferred
// before deprecated, then the most recently configured (first seen later;
// for addresses present at start the kernel's order, which lists the
// newest address of a scope first), then the lower address.
func better(a, b coaCand) int {
	switch {
	case a.deprecated != b.deprecated:
		if b.deprecated {
			return -1
		}
		return 1
	case !a.first.Equal(b.first):
		return b.first.Compare(a.first)
	case a.order != b.order:
		return a.order - b.order
	}
	return a.addr.Compare(b.addr)
}

// linkWork is one link's part of a build.
type linkWork struct {
	ifi       *Interface // in the Snapshot being built
	ok        bool       // may carry care-of addresses or a home-link entry
	cand      bool       // gets a BID record (not ignored, not excluded)
	mac       string
	rule      Rule
	hasRule   bool
	rv        raView
	coas      []coaCand
	homeAddrs []netip.Addr // valid addresses in the home prefix
	homeAddr  netip.Addr   // the home-link entry's address
	home      bool
}

func scopeName(s int) string {
	switch s {
	case scopeUniverse:
		return "global"
	case scopeSite:
		return "site"
	case scopeLink:
		return "link"
	case scopeHost:
		return "host"
	}
	return "other"
}

func (st *settings) ifacePriority(cfg *Config, w *linkWork) uint8 {
	p := cfg.DefaultPriority
	if w.hasRule {
		p = w.rule.Priority
	}
	if st.metered[w.ifi.Name] && p > cfg.MeteredPriority {
		p = cfg.MeteredPriority
	}
	return p
}

// build turns one read of the kernel state into a Snapshot. It assigns
// BIDs (and may mark the BID table dirty); the caller saves it.
func (c *selector) build(links []netlink.Link, addrs []netlink.Addr, now time.Time, st *settings) *Snapshot {
	links = slices.Clone(links)
	slices.SortFunc(links, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	seen := c.spare
	if seen == nil {
		seen = make(map[addrID]time.Time, len(addrs))
	}
	clear(seen)
	s := &Snapshot{Time: now, Mode: c.cfg.BIDMode, Interfaces: make([]Interface, len(links))}
	work := make([]linkWork, len(links))
	live := make(map[int]bool, len(links))
	groups := byLink(addrs)
	for i, l := range links {
		w := &work[i]
		w.ifi = &s.Interfaces[i]
		live[l.Attrs().Index] = true
		c.describe(w, l, st, now)
		c.readAddrs(w, addrs, groups.next(l.Attrs().Index), now, seen)
		if w.ok {
			c.choose(w, now)
		} else {
			w.coas = nil
		}
	}
	ifBIDs, keyOf, coaBIDs := c.assignBIDs(work, st, now)
	for i := range work {
		if keyOf[i] >= 0 {
			work[i].ifi.BID = ifBIDs[keyOf[i]]
		}
		s.CareOfs = c.entries(s.CareOfs, &work[i], coaBIDs, st)
	}
	slices.SortFunc(s.CareOfs, func(a, b CareOf) int { return int(a.BID) - int(b.BID) })

	for id := range c.ra.links {
		if !live[id] {
			c.ra.forget(id)
		}
	}
	c.spare, c.firstSeen = c.firstSeen, seen
	c.started = true
	return s
}

// addrGroups walks the IPv6 addresses grouped by link, each group in the
// kernel's order, as links are visited in index order.
type addrGroups struct {
	addrs []netlink.Addr
	order []int // indexes into addrs, stable-sorted by link
	pos   int
}

func byLink(addrs []netlink.Addr) *addrGroups {
	g := &addrGroups{addrs: addrs, order: make([]int, 0, len(addrs))}
	for i := range addrs {
		if a := &addrs[i]; a.IPNet != nil && len(a.IP) == net.IPv6len && a.IP.To4() == nil {
			g.order = append(g.order, i)
		}
	}
	slices.SortStableFunc(g.order, func(i, j int) int { return addrs[i].LinkIndex - addrs[j].LinkIndex })
	return g
}

// next returns the addresses of link index (indexes into addrs), skipping
// those of links the dump did not list.
func (g *addrGroups) next(index int) []int {
	for g.pos < len(g.order) && g.addrs[g.order[g.pos]].LinkIndex < index {
		g.pos++
	}
	end := g.pos
	for end < len(g.order) && g.addrs[g.order[end]].LinkIndex == index {
		end++
	}
	las := g.order[g.pos:end]
	g.pos = end
	return las
}

// describe fills the interface's link facts, its state as far as the link
// alone decides it, its rule and what Router Advertisements told.
func (c *selector) describe(w *linkWork, l netlink.Link, st *settings, now time.Time) {
	a := l.Attrs()
	*w.ifi = Interface{
		Name:    a.Name,
		Index:   a.Index,
		Kind:    l.Type(),
		Up:      a.RawFlags&iffUp != 0 || a.Flags&net.FlagUp != 0,
		Carrier: a.OperState == netlink.OperUp || (a.OperState == netlink.OperUnknown && a.RawFlags&iffLowerUp != 0),
		Metered: st.metered[a.Name],
	}
	if len(a.HardwareAddr) > 0 && !allZero(a.HardwareAddr) {
		w.mac = a.HardwareAddr.String()
		w.ifi.MAC = w.mac
	}
	w.rule, w.hasRule = matchRule(st.rules, a.Name)
	w.ifi.Reason = c.cfg.ignoreReason(l)
	switch {
	case w.ifi.Reason != "":
		w.ifi.State = StateIgnored
	case w.hasRule && w.rule.Exclude:
		w.ifi.State = StateExcluded
		w.ifi.Reason = "rule " + w.rule.Match
	case !w.hasRule && defaultExcluded(a.Name):
		w.ifi.State = StateExcluded
		w.ifi.Reason = "container or VM interface (a rule naming it would use it)"
	case !w.ifi.Up:
		w.ifi.State = StateDown
	case !w.ifi.Carrier:
		w.ifi.State = StateNoCarrier
	}
	w.cand = w.ifi.State != StateIgnored && w.ifi.State != StateExcluded
	w.ok = w.ifi.State == ""
	if !w.ifi.Up || !w.ifi.Carrier {
		c.ra.detach(a.Index)
	}
	w.rv = c.ra.view(a.Index, now)
	w.ifi.Routers, w.ifi.Prefixes, w.ifi.Moves, w.ifi.LastMove = w.rv.routers, w.rv.prefixes, w.rv.moves, w.rv.lastMove
}

// readAddrs fills the interface's addresses (las index addrs) and collects
// its care-of candidates and home addresses.
func (c *selector) readAddrs(w *linkWork, addrs []netlink.Addr, las []int, now time.Time, seen map[addrID]time.Time) {
	cfg := c.cfg
	w.ifi.Addrs = make([]Addr, 0, len(las))
	for order, k := range las {
		na := &addrs[k]
		ip, _ := netip.AddrFromSlice(na.IP)
		ones, _ := na.Mask.Size()
		f := na.Flags
		ai := Addr{
			Prefix:       netip.PrefixFrom(ip, ones),
			Scope:        scopeName(na.Scope),
			Tentative:    f&ifaTentative != 0,
			DADFailed:    f&ifaDADFailed != 0,
			Deprecated:   f&ifaDeprecated != 0,
			Temporary:    f&ifaTemporary != 0,
			Home:         ip == cfg.HomeAddress || (cfg.HomePrefix.IsValid() && cfg.HomePrefix.Contains(ip)) || f&ifaHomeAddress != 0,
			PreferredLft: uint32(na.PreferedLft),
			ValidLft:     uint32(na.ValidLft),
		}
		id := addrID{w.ifi.Index, ip}
		first, ok := c.firstSeen[id]
		if !ok && c.started {
			first = now
		}
		seen[id] = first
		valid := na.Scope == scopeUniverse && ip.IsGlobalUnicast() && !ai.Tentative && !ai.DADFailed
		if valid && ai.Home {
			w.homeAddrs = append(w.homeAddrs, ip)
		}
		if valid && !ai.Home && !ai.Temporary && (!ai.Deprecated || cfg.AllowDeprecated) {
			w.coas = append(w.coas, coaCand{addr: ip, deprecated: ai.Deprecated, first: first, order: order, ai: len(w.ifi.Addrs)})
		}
		w.ifi.Addrs = append(w.ifi.Addrs, ai)
	}
}

// choose decides, for a link that may carry care-of addresses, whether it
// is on the home link, and otherwise ranks its care-of candidates.
func (c *selector) choose(w *linkWork, now time.Time) {
	cfg := c.cfg
	// Back from a carrier loss, the link may be another one: its
	// addresses wait for a Router Advertisement (or the timeout).
	confirming := c.ra.attached(w.ifi.Index, now)
	// Draft 3.3: the home link. Its addresses are not care-of addresses;
	// one entry says the interface is home. An address in the home prefix
	// says so only while no router heard since the carrier came up says
	// otherwise: after a move from the home link the kernel keeps the old
	// SLAAC address for its whole lifetime.
	if w.rv.home || (!confirming && len(w.homeAddrs) > 0 && len(w.rv.routers) == 0) {
		w.home = true
		w.coas = nil
		w.ifi.State = StateHome
		w.ifi.HomeLink = true
		switch {
		case slices.Contains(w.homeAddrs, cfg.HomeAddress):
			w.homeAddr = cfg.HomeAddress
		case len(w.homeAddrs) > 0:
			w.homeAddr = w.homeAddrs[0]
		default:
			w.homeAddr = cfg.HomeAddress // may be invalid: then no entry
		}
		return
	}
	if confirming {
		w.coas = nil
		w.ifi.Reason = "re-attached: waiting for a router advertisement"
	}
	slices.SortFunc(w.coas, better)
	if len(w.coas) > 0 {
		w.ifi.State = StateCoA
		w.ifi.CoA = w.coas[0].addr
	} else {
		w.ifi.State = StateNoAddress
	}
}

// assignBIDs gives BIDs to the interfaces (ifBIDs, indexed through keyOf:
// -1 for none) and in BIDPerCoA mode to the care-of addresses. Interface
// records are matched for every candidate, so an interface keeps showing
// the BID it will use; they are allocated only for what needs one.
func (c *selector) assignBIDs(work []linkWork, st *settings, now time.Time) (ifBIDs []uint16, keyOf []int, coaBIDs map[netip.Addr]uint16) {
	keys := make([]ifaceKey, 0, len(work))
	keyOf = make([]int, len(work))
	for i := range work {
		w := &work[i]
		keyOf[i] = -1
		if !w.cand {
			continue
		}
		need := (w.home && w.homeAddr.IsValid()) || (c.cfg.BIDMode == BIDPerInterface && len(w.coas) > 0)
		keyOf[i] = len(keys)
		keys = append(keys, ifaceKey{name: w.ifi.Name, mac: w.mac, fixed: w.rule.BID, need: need})
	}
	c.bids.setFixed(st.rules)
	c.bids.begin()
	defer c.bids.end()
	ifBIDs = c.bids.assignInterfaces(keys, now)
	if c.cfg.BIDMode != BIDPerCoA {
		return ifBIDs, keyOf, nil
	}
	var list []netip.Addr
	taken := map[netip.Addr]bool{}
	for i := range work {
		w := &work[i]
		// The same address on two interfaces is one binding: the first
		// interface (lowest index) has it.
		w.coas = slices.DeleteFunc(w.coas, func(cc coaCand) bool { return taken[cc.addr] })
		for _, cc := range w.coas {
			taken[cc.addr] = true
			list = append(list, cc.addr)
		}
	}
	got := c.bids.assignAddrs(list, now)
	coaBIDs = make(map[netip.Addr]uint16, len(list))
	for i, a := range list {
		coaBIDs[a] = got[i]
	}
	return ifBIDs, keyOf, coaBIDs
}

// entries appends the interface's care-of entries (with their priorities)
// to out and marks its chosen addresses.
func (c *selector) entries(out []CareOf, w *linkWork, coaBIDs map[netip.Addr]uint16, st *settings) []CareOf {
	prio := st.ifacePriority(c.cfg, w)
	w.ifi.Priority = prio
	entry := func(bid uint16, addr netip.Addr, home bool) {
		if bid == 0 || !addr.IsValid() {
			return
		}
		p := prio
		if o, ok := st.prioBID[bid]; ok {
			p = o
		}
		out = append(out, CareOf{BID: bid, Iface: w.ifi.Name, Ifindex: w.ifi.Index, Addr: addr, Priority: p, HomeLink: home})
		if addr == w.ifi.CoA || home {
			w.ifi.Priority = p
		}
	}
	switch {
	case w.home:
		entry(w.ifi.BID, w.homeAddr, true)
	case c.cfg.BIDMode == BIDPerInterface && len(w.coas) > 0:
		w.ifi.Addrs[w.coas[0].ai].CoA = true
		entry(w.ifi.BID, w.coas[0].addr, false)
	case c.cfg.BIDMode == BIDPerCoA:
		w.ifi.CoA = netip.Addr{}
		if len(w.coas) > 0 {
			w.ifi.CoA = w.coas[0].addr
			w.ifi.BID = coaBIDs[w.ifi.CoA]
		} else if w.ifi.State == StateCoA {
			w.ifi.State = StateNoAddress // its addresses are another interface's
		}
		for _, cc := range w.coas {
			bid := coaBIDs[cc.addr]
			w.ifi.Addrs[cc.ai].CoA = true
			w.ifi.Addrs[cc.ai].BID = bid
			entry(bid, cc.addr, false)
		}
	}
	return out
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
