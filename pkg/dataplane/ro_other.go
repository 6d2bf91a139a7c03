//go:build !linux

package dataplane

import (
	"context"
	"fmt"
	"runtime"
)

// CNPlane is a correspondent node's data plane; it needs Linux.
type CNPlane struct{}

// NewCNPlane fails off Linux.
func NewCNPlane(cfg *CNConfig) (*CNPlane, error) {
	return nil, fmt.Errorf("%w: the correspondent data plane needs Linux, not %s", ErrUnavailable, runtime.GOOS)
}

func (p *CNPlane) SetBindings(ctx context.Context, bs []CNBinding) error { return ErrUnavailable }
func (p *CNPlane) Stats() HAStats                                        { return HAStats{} }
func (p *CNPlane) Close() error                                          { return nil }
