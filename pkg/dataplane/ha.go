package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/mcoad/mcoad/pkg/config"
)

// HABinding is one binding of the home agent's cache that has a tunnel:
// packets for HoA go to CoA.
type HABinding struct {
	HoA      netip.Addr
	BID      uint16 // 0 for a binding without BID
	CoA      netip.Addr
	Priority uint8 // the draft's priority: higher is preferred, 0 none
	// Prefixes are the mobile network prefixes of HoA's mobile router
	// (NEMO, RFC 3963): routed into the tunnel like HoA, and accepted as
	// inner sources from it. Every binding of a HoA carries the same list.
	Prefixes []netip.Prefix
}

// HomeAgent is the home agent's tunnel data plane (homeagent.Forwarder).
// SetBindings is level-triggered like Backend.SetTunnels: the whole set of
// the cache's bindings that have tunnels, each time.
type HomeAgent interface {
	SetBindings(ctx context.Context, bs []HABinding) error
	Stats() BindingStats
	Close() error
}

// HAConfig configures the home agent's data plane. Address is required.
type HAConfig struct {
	// Address is the home agent's address: the outer source of tunnelled
	// packets, and the only outer destination accepted.
	Address netip.Addr
	// Device is the TUN device that home-address routes point to (default
	// "mcoaha0").
	Device string
	// MTU of Device (default 1460: an Ethernet path less the outer header).
	MTU int
	// Table for the home-address routes (default 254, main).
	Table int
	// Mark is set on outer packets (0: none).
	Mark uint32
	// NoOffload: see Config.
	NoOffload bool
	Logger    *slog.Logger
}

// Resolve returns c with its defaults filled in, checked (ErrInvalid).
func (c *HAConfig) Resolve() (HAConfig, error) {
	var out HAConfig
	if c != nil {
		out = *c
	}
	if !out.Address.Is6() || out.Address.Is4In6() || out.Address.IsUnspecified() || out.Address.IsMulticast() {
		return out, fmt.Errorf("%w HA config: address %v is not a unicast IPv6 address", ErrInvalid, out.Address)
	}
	if err := DeviceDefaults("HA", &out.Device, config.DefaultHADevice, &out.MTU, IPv6HeaderLen); err != nil {
		return out, err
	}
	if out.Table == 0 {
		out.Table = config.DefaultHATable
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}

// DeviceDefaults fills in the TUN device name and MTU of a plane's config
// and checks them: the MTU defaults to an Ethernet path less overhead, the
// header the plane adds. what names the config in errors.
func DeviceDefaults(what string, dev *string, defDev string, mtu *int, overhead int) error {
	if *dev == "" {
		*dev = defDev
	}
	if len(*dev) > 15 {
		return fmt.Errorf("%w %s config: device name %q too long", ErrInvalid, what, *dev)
	}
	if *mtu == 0 {
		*mtu = config.EthernetMTU - overhead
	}
	if *mtu < MinMTU || *mtu > MaxPacket-overhead {
		return fmt.Errorf("%w %s config: MTU %d", ErrInvalid, what, *mtu)
	}
	return nil
}

// CheckHABindings checks a SetBindings set (ErrInvalid) and returns it
// sorted by home address, then BID.
func CheckHABindings(in []HABinding) ([]HABinding, error) {
	key := func(b HABinding) BindingKey { return BindingKey{HoA: b.HoA, BID: b.BID} }
	return CheckBindingSet(in, key, "binding", func(b HABinding) error {
		for _, a := range []netip.Addr{b.HoA, b.CoA} {
			if !Unicast6(a) {
				return fmt.Errorf("%v is not a unicast IPv6 address", a)
			}
		}
		for _, pf := range b.Prefixes {
			if !pf.IsValid() || !pf.Addr().Is6() || pf.Addr().Is4In6() || pf.Masked() != pf || pf.Contains(b.HoA) {
				return fmt.Errorf("%v is not a mobile network prefix", pf)
			}
		}
		return nil
	})
}

// CheckBindingSet is what the home agent's and the correspondent's
// SetBindings check: each binding passes check, no two have the same key;
// it returns a copy sorted by key (home address, then BID). what names a
// binding in errors (ErrInvalid).
func CheckBindingSet[B any](in []B, key func(B) BindingKey, what string, check func(B) error) ([]B, error) {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b B) int {
		ka, kb := key(a), key(b)
		if c := ka.HoA.Compare(kb.HoA); c != 0 {
			return c
		}
		return int(ka.BID) - int(kb.BID)
	})
	for i, b := range out {
		k := key(b)
		if err := check(b); err != nil {
			return nil, fmt.Errorf("%w %s %s bid %d: %w", ErrInvalid, what, k.HoA, k.BID, err)
		}
		if i > 0 && key(out[i-1]) == k {
			return nil, fmt.Errorf("%w %s %s bid %d given twice", ErrInvalid, what, k.HoA, k.BID)
		}
	}
	return out, nil
}

// BindingKey names a binding in BindingStats.
type BindingKey struct {
	HoA netip.Addr
	BID uint16
}

// BindingStats is a snapshot of the home agent's counters.
type BindingStats struct {
	Bindings map[BindingKey]Counters
	Drops    Drops
}

// WarnIfNotForwarding logs when IPv6 forwarding is off: a home agent's
// data plane, whichever, needs the kernel to route the mobile nodes'
// packets on.
func WarnIfNotForwarding(log *slog.Logger) {
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); err == nil && strings.TrimSpace(string(b)) != "1" {
		log.Warn("IPv6 forwarding is off: packets from mobile nodes will not be routed on")
	}
}
