package dataplane

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// New starts the mobile node's data plane chosen by cfg.Backend ("auto":
// ip6tnl where the kernel has it, else the userspace TUN backend). Devices,
// sockets and routes are made in the network namespace of the calling
// thread, also by later SetTunnels calls from any goroutine.
func New(cfg *Config) (Backend, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	switch c.Backend {
	case BackendNone:
		return noneBackend{}, nil
	case BackendTUN:
		return newTUNBackend(c)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("dataplane: netlink: %w", err)
	}
	if kernelHasIp6tnl(h) {
		return newKernelBackend(c, netlinkOps{h}), nil
	}
	h.Close()
	if c.Backend == BackendKernel {
		return nil, fmt.Errorf("%w: kernel backend: this kernel has no ip6_tunnel", ErrUnavailable)
	}
	c.Logger.Info("no ip6_tunnel in this kernel: userspace tunnels over TUN")
	return newTUNBackend(c)
}
