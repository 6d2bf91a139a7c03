// Package service holds what both daemons' main functions do alike: the
// logger whose level a reload changes, reloading on SIGHUP, and telling
// systemd their state.
package service

import (
	"context"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// OnHUP calls reload on every SIGHUP until ctx ends.
func OnHUP(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
}

// Notify tells systemd (Type=notify) about the daemon's state, e.g.
// "READY=1"; without NOTIFY_SOCKET it does nothing.
func Notify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
