package dataplane

import (
	"fmt"
	"net/netip"
)

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

func checkMobileNets(ps []netip.Prefix) error {
	for _, p := range ps {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Masked() != p || p.Bits() == 0 {
			return fmt.Errorf("%w config: %v is not a mobile network prefix", ErrInvalid, p)
		}
	}
	return nil
}
