package dataplane

import (
	"errors"
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

// DiscardKept deletes, in the calling thread's network namespace, the TUN
// devices a stop kept for a restart (Keeper) when no process will adopt
// them: BIDs' devices and the home device. A device that is not there, or
// not a TUN device, is left alone.
func DiscardKept(homeDevice string, bids []uint16) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("dataplane: netlink: %w", err)
	}
	defer h.Close()
	if homeDevice == "" {
		homeDevice = DefaultHomeDevice
	}
	names := []string{homeDevice}
	for _, b := range bids {
		names = append(names, DeviceName(b))
	}
	var errs []error
	for _, n := range names {
		if l, err := h.LinkByName(n); err == nil && l.Type() == "tuntap" {
			if err := h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("dataplane: delete %s: %w", n, err))
			}
		}
	}
	return errors.Join(errs...)
}
