package dataplane

import (
	"fmt"
	"net/netip"
)

func checkMobileNets(ps []netip.Prefix) error {
	for _, p := range ps {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Masked() != p || p.Bits() == 0 {
			return fmt.Errorf("%w config: %v is not a mobile network prefix", ErrInvalid, p)
		}
	}
	return nil
}
