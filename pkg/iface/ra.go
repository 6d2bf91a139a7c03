package iface

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/ndp"
)

// Router Advertisements tell movement (a new router or prefix on a link)
// and the home link (an RA announcing the home prefix, or one sent by the
// home agent: its source, or a Prefix Information option with the Router
// Address flag of RFC 6275 7.2 carrying the home agent's address).
// Addresses still come from the kernel's SLAAC: the watcher never
// configures any.

// infinite is the all-ones lifetime of RFC 4861.
const infinite = time.Duration(0xffffffff) * time.Second

type raPrefix struct {
	Prefix netip.Prefix
	Valid  time.Duration
	// RouterAddr is the router's full address when the Router Address (R)
	// flag is set.
	RouterAddr netip.Addr
}

type raInfo struct {
	Router    netip.Addr // link-local source
	Lifetime  time.Duration
	HomeAgent bool // the H flag
	Prefixes  []raPrefix
}

var errNotRA = errors.New("iface: not a router advertisement")

// parseRA parses an ICMPv6 message (from its type byte) received from src.
func parseRA(b []byte, src netip.Addr) (raInfo, error) {
	m, err := ndp.ParseMessage(b)
	if err != nil {
		return raInfo{}, fmt.Errorf("iface: bad router advertisement: %w", err)
	}
	ra, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		return raInfo{}, errNotRA
	}
	info := raInfo{Router: src.WithZone(""), Lifetime: ra.RouterLifetime, HomeAgent: ra.MobileIPv6HomeAgent}
	for _, o := range ra.Options {
		if pi, ok := o.(*ndp.PrefixInformation); ok {
			var p netip.Prefix
			if pi.PrefixLength <= 128 && pi.Prefix.Is6() {
				p = netip.PrefixFrom(pi.Prefix, int(pi.PrefixLength)).Masked()
			}
			info.Prefixes = append(info.Prefixes, raPrefix{Prefix: p, Valid: pi.ValidLifetime})
		}
	}
	// ndp masks the prefix; the Router Address flag needs the raw option.
	// The k-th type 3 option is the k-th PrefixInformation (ndp keeps the
	// order and has just parsed every option).
	const raHeader = 16
	k := 0
	for off := raHeader; off+2 <= len(b); {
		typ, n := b[off], int(b[off+1])*8
		if n == 0 || off+n > len(b) {
			break
		}
		if typ == 3 {
			if n == 32 && b[off+3]&0x20 != 0 && k < len(info.Prefixes) {
				info.Prefixes[k].RouterAddr = netip.AddrFrom16([16]byte(b[off+16 : off+32]))
			}
			k++
		}
		off += n
	}
	return info, nil
}

func until(now time.Time, d time.Duration) time.Time {
	if d >= infinite {
		return time.Time{} // never
	}
	return now.Add(d)
}

func expired(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

type raRouter struct {
	until    time.Time                  // default-router lifetime end (zero: never)
	prefixes map[netip.Prefix]time.Time // valid lifetime end (zero: never)
	haAddr   bool                       // announced the home agent as Router Address
}

func (r *raRouter) alive(now time.Time) bool {
	return !expired(r.until, now) || len(r.prefixes) > 0
}

type raLink struct {
	routers  map[netip.Addr]*raRouter
	moves    uint64
	lastMove time.Time
	// detached: the link lost its carrier (or went down). When it comes
	// back it may be another link (the cable moved, another access point):
	// its old addresses are not trusted until a Router Advertisement, or
	// confirmBy passes (RFC 6059's idea, without its probes).
	detached  bool
	confirmBy time.Time
}

// raState is what the RAs heard on each link say now. Owned by the Run
// goroutine.
type raState struct {
	homePrefix netip.Prefix
	homeAgent  netip.Addr
	links      map[int]*raLink
	// confirm is how long a re-attached link's addresses wait for a
	// Router Advertisement; 0: they are used at once.
	confirm time.Duration
}

func newRAState(cfg *Config) *raState {
	s := &raState{homePrefix: cfg.HomePrefix, homeAgent: cfg.HomeAgent, links: map[int]*raLink{}}
	if !cfg.DisableRA && cfg.Source == nil {
		s.confirm = cfg.ConfirmTimeout
	}
	return s
}

// attached notes that link ifindex has its carrier; after a detach its
// addresses wait for confirmation. It reports whether they wait now.
func (s *raState) attached(ifindex int, now time.Time) bool {
	l := s.links[ifindex]
	if l == nil || s.confirm <= 0 {
		return false
	}
	if l.detached {
		l.detached = false
		l.confirmBy = now.Add(s.confirm)
	}
	if l.confirmBy.IsZero() {
		return false
	}
	if !now.Before(l.confirmBy) {
		l.confirmBy = time.Time{}
		return false
	}
	return true
}

func (s *raState) isHome(addr netip.Addr, r *raRouter) bool {
	if r.haAddr || (s.homeAgent.IsValid() && addr == s.homeAgent) {
		return true
	}
	if s.homePrefix.IsValid() {
		if _, ok := r.prefixes[s.homePrefix]; ok {
			return true
		}
	}
	return false
}

func (s *raState) linkHome(l *raLink) bool {
	for a, r := range l.routers {
		if s.isHome(a, r) {
			return true
		}
	}
	return false
}

// update applies an RA heard on ifindex at now. changed: the link moved
// (a new router or prefix), a router said goodbye, or the home-link state
// flipped.
func (s *raState) update(ifindex int, ra raInfo, now time.Time) (changed bool) {
	l := s.links[ifindex]
	if l == nil {
		l = &raLink{routers: map[netip.Addr]*raRouter{}}
		s.links[ifindex] = l
	}
	s.pruneLink(l, now)
	if !l.confirmBy.IsZero() || l.detached {
		// Heard a router: the link is known again (home, same or new).
		l.confirmBy, l.detached = time.Time{}, false
		defer func() { changed = true }()
	}
	wasHome := s.linkHome(l)
	known := map[netip.Prefix]bool{}
	for _, r := range l.routers {
		for p := range r.prefixes {
			known[p] = true
		}
	}
	r := l.routers[ra.Router]
	newRouter := r == nil
	if r == nil {
		r = &raRouter{prefixes: map[netip.Prefix]time.Time{}}
	}
	r.until = now.Add(ra.Lifetime) // 0: not a default router (expired at once)
	if ra.Lifetime >= infinite {
		r.until = time.Time{}
	}
	r.haAddr = false
	moved := false
	for _, p := range ra.Prefixes {
		if !p.Prefix.IsValid() {
			continue
		}
		if p.RouterAddr.IsValid() && s.homeAgent.IsValid() && p.RouterAddr == s.homeAgent {
			r.haAddr = true
		}
		if p.Valid == 0 {
			delete(r.prefixes, p.Prefix)
			continue
		}
		if !known[p.Prefix] {
			moved = true
		}
		r.prefixes[p.Prefix] = until(now, p.Valid)
	}
	gone := false
	if r.alive(now) {
		l.routers[ra.Router] = r
		moved = moved || newRouter
	} else {
		delete(l.routers, ra.Router)
		gone = !newRouter
	}
	if moved {
		l.moves++
		l.lastMove = now
	}
	return moved || gone || wasHome != s.linkHome(l)
}

// pruneLink drops what expired; it reports whether anything did.
func (s *raState) pruneLink(l *raLink, now time.Time) bool {
	changed := false
	for a, r := range l.routers {
		for p, t := range r.prefixes {
			if expired(t, now) {
				delete(r.prefixes, p)
				changed = true
			}
		}
		if !r.alive(now) {
			delete(l.routers, a)
			changed = true
		}
	}
	return changed
}

// prune drops what expired everywhere; next is the next expiry (zero: none).
func (s *raState) prune(now time.Time) (changed bool, next time.Time) {
	for _, l := range s.links {
		if s.pruneLink(l, now) {
			changed = true
		}
		if !l.confirmBy.IsZero() {
			if now.Before(l.confirmBy) {
				next = earlier(next, l.confirmBy)
			} else {
				changed = true // the wait is over: read again
			}
		}
		for _, r := range l.routers {
			if !r.until.IsZero() && now.Before(r.until) {
				next = earlier(next, r.until)
			}
			for _, t := range r.prefixes {
				next = earlier(next, t)
			}
		}
	}
	return changed, next
}

// detach forgets the routers of a link that lost its carrier or went
// down: on the next attachment its RAs are news (movement). The movement
// counter stays.
func (s *raState) detach(ifindex int) {
	l := s.links[ifindex]
	if l == nil {
		l = &raLink{routers: map[netip.Addr]*raRouter{}}
		s.links[ifindex] = l
	}
	clear(l.routers)
	l.detached = true
	l.confirmBy = time.Time{}
}

// forget drops a link that no longer exists.
func (s *raState) forget(ifindex int) { delete(s.links, ifindex) }

type raView struct {
	routers  []netip.Addr
	prefixes []netip.Prefix
	home     bool
	moves    uint64
	lastMove time.Time
}

func (s *raState) view(ifindex int, now time.Time) raView {
	l := s.links[ifindex]
	if l == nil {
		return raView{}
	}
	v := raView{moves: l.moves, lastMove: l.lastMove}
	for a, r := range l.routers {
		if !r.alive(now) {
			continue
		}
		v.routers = append(v.routers, a)
		for p, t := range r.prefixes {
			if !expired(t, now) {
				v.prefixes = append(v.prefixes, p)
			}
		}
		if s.isHome(a, r) {
			v.home = true
		}
	}
	slices.SortFunc(v.routers, netip.Addr.Compare)
	slices.SortFunc(v.prefixes, netip.Prefix.Compare)
	v.prefixes = slices.Compact(v.prefixes)
	return v
}
