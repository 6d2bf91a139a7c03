//go:build !linux

package iface

import (
	"errors"
	"log/slog"
)

func openRA(string, *slog.Logger) (raSource, error) {
	return nil, errors.New("watching the kernel needs Linux (use Config.Source elsewhere)")
}
