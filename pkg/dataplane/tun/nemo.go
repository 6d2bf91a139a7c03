package tun

import "net/netip"

// mobileNets are a mobile router's mobile network prefixes (NEMO, RFC
// 3963): the inner addresses its tunnels carry besides the home address,
// as sources outbound and as destinations inbound.
type mobileNets []netip.Prefix

// contains reports whether the 16-byte address a is in one of the
// prefixes. It is only asked about packets that are not the home
// address's, so a mobile host pays nothing for it.
func (n mobileNets) contains(a []byte) bool {
	if len(n) == 0 || len(a) < 16 {
		return false
	}
	addr := netip.AddrFrom16([16]byte(a[:16]))
	for _, p := range n {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
