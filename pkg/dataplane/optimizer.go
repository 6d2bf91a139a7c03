package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// RORoute is a route-optimised path of the mobile node: packets from the
// home address to Peer that the flow policy routes into BID's tunnel device
// leave directly from CoA, the BID's care-of address, with a Home Address
// option, while the correspondent holds a binding for (home address, BID)
// at CoA. A route whose CoA is not the BID tunnel's current one is
// ignored until they agree again.
type RORoute struct {
	BID  uint16
	Peer netip.Addr // the correspondent
	CoA  netip.Addr // the care-of address the correspondent has for BID
}

func (r RORoute) String() string {
	return fmt.Sprintf("bid %d %s -> %s", r.BID, r.CoA, r.Peer)
}

// CheckRORoutes checks a SetRORoutes set and returns it sorted.
func CheckRORoutes(in []RORoute) ([]RORoute, error) {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b RORoute) int {
		if a.BID != b.BID {
			return int(a.BID) - int(b.BID)
		}
		return a.Peer.Compare(b.Peer)
	})
	for i, r := range out {
		if r.BID == 0 {
			return nil, fmt.Errorf("%w route %v: BID 0 is reserved", ErrInvalid, r)
		}
		for _, a := range []netip.Addr{r.Peer, r.CoA} {
			if !Unicast6(a) {
				return nil, fmt.Errorf("%w route %v: %v is not a unicast IPv6 address", ErrInvalid, r, a)
			}
		}
		if i > 0 && out[i-1].BID == r.BID && out[i-1].Peer == r.Peer {
			return nil, fmt.Errorf("%w route %v given twice", ErrInvalid, r)
		}
	}
	return out, nil
}

// Unicast6 reports whether a is a unicast IPv6 address without a zone
// (not mapped IPv4, unspecified, multicast or loopback).
func Unicast6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && a.Zone() == ""
}

// RouteOptimizer is implemented by mobile-node backends that can send and
// receive route-optimised (the userspace one). SetRORoutes is
// level-triggered like SetTunnels: the whole set each time.
type RouteOptimizer interface {
	SetRORoutes(ctx context.Context, routes []RORoute) error
	// ROStats counts route-optimised packets by BID.
	ROStats() map[uint16]Counters
}
