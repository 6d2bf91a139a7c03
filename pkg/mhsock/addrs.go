package mhsock

import (
	"net"
	"net/netip"

	"github.com/mcoad/mcoad/pkg/netmon"
)

// ifaDADFailed is IFA_F_DADFAILED (linux/if_addr.h).
const ifaDADFailed = 0x08

// newAddrSet derives the receive path's view from a monitor's State.
func newAddrSet(st *netmon.State) *addrSet {
	s := &addrSet{
		from:      st,
		owner:     make(map[netip.Addr]int, len(st.Addrs)),
		linkLocal: make(map[llKey]struct{}),
		names:     make(map[int]string, len(st.Links)),
		loopback:  make(map[int]bool),
	}
	for _, l := range st.Links {
		a := l.Attrs()
		s.names[a.Index] = a.Name
		if a.Flags&net.FlagLoopback != 0 {
			s.loopback[a.Index] = true
		}
	}
	for _, a := range st.Addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Flags&ifaDADFailed != 0 {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			s.linkLocal[llKey{ip, a.LinkIndex}] = struct{}{}
			continue
		}
		if _, dup := s.owner[ip]; !dup {
			s.owner[ip] = a.LinkIndex
		}
	}
	return s
}
