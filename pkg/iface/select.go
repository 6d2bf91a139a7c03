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

// core is the state the Run goroutine owns: BIDs, RAs, and when each
// address was first seen.
type core struct {
	cfg       *Config
	bids      *bidTable
	ra        *raState
	firstSeen map[addrID]time.Time // zero: present at the first read
	spare     map[addrID]time.Time // the previous firstSeen, reused
	started   bool
}

func newCore(cfg *Config) *core {
	return &core{
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

type linkWork struct {
	ifi      *Interface // in the Snapshot being built
	ok       bool       // may carry care-of addresses or a home-link entry
	cand     bool       // gets a BID record (not ignored, not excluded)
	mac      string
	rule     Rule
	hasRule  bool
	coas     []coaCand
	homeAddr netip.Addr // the home-link entry's address
	home     bool
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
func (c *core) build(links []netlink.Link, addrs []netlink.Addr, now time.Time, st *settings) *Snapshot {
	cfg := c.cfg
	// The IPv6 addresses grouped by link, each group in the kernel's order.
	byLink := make([]int, 0, len(addrs))
	for i := range addrs {
		if a := &addrs[i]; a.IPNet != nil && len(a.IP) == net.IPv6len && a.IP.To4() == nil {
			byLink = append(byLink, i)
		}
	}
	slices.SortStableFunc(byLink, func(i, j int) int { return addrs[i].LinkIndex - addrs[j].LinkIndex })
	links = slices.Clone(links)
	slices.SortFunc(links, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	seen := c.spare
	if seen == nil {
		seen = make(map[addrID]time.Time, len(addrs))
	}
	clear(seen)
	s := &Snapshot{Time: now, Mode: cfg.BIDMode, Interfaces: make([]Interface, len(links))}
	work := make([]linkWork, len(links))
	live := make(map[int]bool, len(links))
	next := 0 // position in byLink

	for i, l := range links {
		a := l.Attrs()
		w := &work[i]
		live[a.Index] = true
		w.ifi = &s.Interfaces[i]
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
		w.ifi.Reason = cfg.ignoreReason(l)
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
		rv := c.ra.view(a.Index, now)
		// Back from a carrier loss, the link may be another one: its
		// addresses wait for a Router Advertisement (or the timeout).
		confirming := w.ok && c.ra.attached(a.Index, now)
		w.ifi.Routers, w.ifi.Prefixes, w.ifi.Moves, w.ifi.LastMove = rv.routers, rv.prefixes, rv.moves, rv.lastMove

		var homeAddrs []netip.Addr
		for next < len(byLink) && addrs[byLink[next]].LinkIndex < a.Index {
			next++ // addresses of a link the dump did not list
		}
		end := next
		for end < len(byLink) && addrs[byLink[end]].LinkIndex == a.Index {
			end++
		}
		las := byLink[next:end]
		next = end
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
			id := addrID{a.Index, ip}
			first, ok := c.firstSeen[id]
			if !ok && c.started {
				first = now
			}
			seen[id] = first
			valid := na.Scope == scopeUniverse && ip.IsGlobalUnicast() && !ai.Tentative && !ai.DADFailed
			if valid && ai.Home {
				homeAddrs = append(homeAddrs, ip)
			}
			if valid && !ai.Home && !ai.Temporary && (!ai.Deprecated || cfg.AllowDeprecated) {
				w.coas = append(w.coas, coaCand{addr: ip, deprecated: ai.Deprecated, first: first, order: order, ai: len(w.ifi.Addrs)})
			}
			w.ifi.Addrs = append(w.ifi.Addrs, ai)
		}
		if !w.ok {
			w.coas = nil
			continue
		}
		// Draft 3.3: the home link. Its addresses are not care-of
		// addresses; one entry says the interface is home. An address in
		// the home prefix says so only while no router heard since the
		// carrier came up says otherwise: after a move from the home link
		// the kernel keeps the old SLAAC address for its whole lifetime.
		if rv.home || (!confirming && len(homeAddrs) > 0 && len(rv.routers) == 0) {
			w.home = true
			w.coas = nil
			w.ifi.State = StateHome
			w.ifi.HomeLink = true
			switch {
			case slices.Contains(homeAddrs, cfg.HomeAddress):
				w.homeAddr = cfg.HomeAddress
			case len(homeAddrs) > 0:
				w.homeAddr = homeAddrs[0]
			default:
				w.homeAddr = cfg.HomeAddress // may be invalid: then no entry
			}
			continue
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

	// BIDs. Interface records are matched for every candidate, so an
	// interface keeps showing the BID it will use; they are allocated only
	// for what needs one.
	keys := make([]ifaceKey, 0, len(work))
	keyOf := make([]int, len(work))
	for i := range work {
		w := &work[i]
		keyOf[i] = -1
		if !w.cand {
			continue
		}
		need := (w.home && w.homeAddr.IsValid()) || (cfg.BIDMode == BIDPerInterface && len(w.coas) > 0)
		keyOf[i] = len(keys)
		keys = append(keys, ifaceKey{name: w.ifi.Name, mac: w.mac, fixed: w.rule.BID, need: need})
	}
	c.bids.setFixed(st.rules)
	c.bids.begin()
	ifBIDs := c.bids.assignInterfaces(keys, now)
	var coaBIDs map[netip.Addr]uint16
	if cfg.BIDMode == BIDPerCoA {
		var list []netip.Addr
		taken := map[netip.Addr]bool{}
		for i := range work {
			w := &work[i]
			// The same address on two interfaces is one binding: the
			// first interface (lowest index) has it.
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
	}
	c.bids.end()

	for i := range work {
		w := &work[i]
		if keyOf[i] >= 0 {
			w.ifi.BID = ifBIDs[keyOf[i]]
		}
		prio := st.ifacePriority(cfg, w)
		w.ifi.Priority = prio
		entry := func(bid uint16, addr netip.Addr, home bool) {
			if bid == 0 || !addr.IsValid() {
				return
			}
			p := prio
			if o, ok := st.prioBID[bid]; ok {
				p = o
			}
			s.CareOfs = append(s.CareOfs, CareOf{BID: bid, Iface: w.ifi.Name, Ifindex: w.ifi.Index, Addr: addr, Priority: p, HomeLink: home})
			if addr == w.ifi.CoA || home {
				w.ifi.Priority = p
			}
		}
		switch {
		case w.home:
			entry(w.ifi.BID, w.homeAddr, true)
		case cfg.BIDMode == BIDPerInterface && len(w.coas) > 0:
			w.ifi.Addrs[w.coas[0].ai].CoA = true
			entry(w.ifi.BID, w.coas[0].addr, false)
		case cfg.BIDMode == BIDPerCoA:
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

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
