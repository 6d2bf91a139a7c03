// Package service holds what both daemons' main functions do alike: the
// shared flags, the logger whose level a reload changes, reloading on
// SIGHUP, on a change of the configuration file and through the control
// API, serving the control API and metrics, and telling systemd their
// state. A daemon is built by its package's New (internal/mn,
// internal/ha) and run by Run.
package service

import (
	"net"
	"os"
)

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

// UnderSystemd reports whether systemd runs the process as a service (it
// sets INVOCATION_ID for each).
func UnderSystemd() bool { return os.Getenv("INVOCATION_ID") != "" }
