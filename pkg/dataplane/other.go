//go:build !linux

package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
)

// New supports only the "none" backend off Linux.
func New(cfg *Config) (Backend, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Backend == BackendNone {
		return noneBackend{}, nil
	}
	return nil, fmt.Errorf("%w: tunnels need Linux, not %s", ErrUnavailable, runtime.GOOS)
}

// HAPlane is the home agent's data plane; it needs Linux.
type HAPlane struct{}

// HAKey names a binding in HAStats.
type HAKey struct {
	HoA netip.Addr
	BID uint16
}

// HAStats is a snapshot of the home agent's counters.
type HAStats struct {
	Bindings map[HAKey]Counters
	Drops    Drops
}

// NewHAPlane fails off Linux.
func NewHAPlane(cfg *HAConfig) (*HAPlane, error) {
	return nil, fmt.Errorf("%w: the home agent data plane needs Linux, not %s", ErrUnavailable, runtime.GOOS)
}

func (p *HAPlane) SetBindings(ctx context.Context, bs []HABinding) error { return ErrUnavailable }
func (p *HAPlane) Stats() HAStats                                        { return HAStats{} }
func (p *HAPlane) Close() error                                          { return nil }

// DiscardKept has nothing to delete off Linux.
func DiscardKept(homeDevice string, bids []uint16) error { return nil }
