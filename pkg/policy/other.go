//go:build !linux

package policy

import (
	"context"
	"errors"
)

// Engine exists only on Linux; New returns ErrUnavailable elsewhere.
type Engine struct{}

// New returns ErrUnavailable: policy routing needs Linux.
func New(cfg *Config) (*Engine, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnavailable
}

func (e *Engine) Apply(ctx context.Context, st State) error { return ErrUnavailable }
func (e *Engine) Close() error                              { return nil }
func (e *Engine) Keep() error                               { return nil }
func (e *Engine) Marks() map[uint16]uint32                  { return nil }

// Cleanup has nothing to remove outside Linux.
func Cleanup(cfg *Config) error { return nil }

func lookupCgroup(string) (uint64, uint32, error) {
	return 0, 0, errors.New("cgroups need Linux")
}
