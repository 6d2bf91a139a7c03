//go:build tools

// Package tools pins the modules the packages use, so that helpers working
// in parallel do not race on go.mod. It is never built.
package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/godbus/dbus/v5"
	_ "github.com/google/nftables"
	_ "github.com/mdlayher/ndp"
	_ "github.com/mdlayher/packet"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/net/bpf"
	_ "golang.org/x/sys/unix"
)
