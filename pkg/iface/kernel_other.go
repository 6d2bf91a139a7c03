//go:build !linux

package iface

import (
	"errors"
	"log/slog"
)

func openKernel(string, *slog.Logger) (backend, error) {
	return nil, errors.New("watching the kernel needs Linux (use Config.Source elsewhere)")
}
