// Package backends picks the mobile node's data plane backend by name
// ([dataplane] backend) from the drivers it lists; "auto" tries them in
// that order.
package backends

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// New starts the backend cfg.Backend names, in the calling thread's
// network namespace (later SetTunnels calls, from any goroutine, work
// there too): "none", a driver's name, or "auto" for the first driver in
// drivers whose probe passes.
func New(cfg *dataplane.Config) (dataplane.Backend, error) {
	c, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	switch c.Backend {
	case dataplane.BackendNone:
		return none{}, nil
	case dataplane.BackendAuto:
		for _, d := range drivers {
			if err := probe(d); err != nil {
				c.Logger.Info("data plane backend unavailable: trying the next", "backend", d.Name, "err", err)
				continue
			}
			return d.New(c)
		}
		return nil, fmt.Errorf("%w: no backend runs here", dataplane.ErrUnavailable)
	}
	names := []string{dataplane.BackendAuto, dataplane.BackendNone}
	for _, d := range drivers {
		if d.Name == c.Backend {
			if err := probe(d); err != nil {
				return nil, fmt.Errorf("%s backend: %w", d.Name, err)
			}
			return d.New(c)
		}
		names = append(names, d.Name)
	}
	return nil, fmt.Errorf("%w config: backend %q (want %s)", dataplane.ErrInvalid, c.Backend, strings.Join(names, ", "))
}

func probe(d dataplane.Driver) error {
	if d.Probe == nil {
		return nil
	}
	return d.Probe()
}

// none is "none": signaling only, no tunnels.
type none struct{}

func (none) SetTunnels(ctx context.Context, tunnels []dataplane.Tunnel) error {
	_, _, err := dataplane.NormalizeTunnels(tunnels, nil)
	return err
}
func (none) Stats() dataplane.Stats { return dataplane.Stats{Tunnels: map[uint16]dataplane.Counters{}} }
func (none) Name() string           { return dataplane.BackendNone }
func (none) Close() error           { return nil }
