// Package ip6tnl is the mobile node's kernel backend: one ip6tnl link per
// BID (local CoA, remote HA, bound to the BID's interface) and the home
// address on a dummy link; the kernel encapsulates both ways. It needs the
// kernel's ip6_tunnel.
package ip6tnl

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// Name is the backend's [dataplane] backend value.
const Name = "kernel"

// Driver is the kernel backend for package backends.
var Driver = dataplane.Driver{Name: Name, Probe: probe, New: New}

// New starts the kernel backend; cfg is resolved (dataplane.Config.Resolve).
func New(cfg dataplane.Config) (dataplane.Backend, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("dataplane: netlink: %w", err)
	}
	return newKernelBackend(cfg, netlinkOps{h}), nil
}

// probe fails unless the kernel can make ip6tnl links: the module is
// loaded, or creating a scratch link (which loads it) works.
func probe() error {
	if _, err := os.Stat("/sys/module/ip6_tunnel"); err == nil {
		return nil
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("%w: netlink: %w", dataplane.ErrUnavailable, err)
	}
	defer h.Close()
	scratch := &netlink.Ip6tnl{LinkAttrs: netlink.LinkAttrs{Name: "mcoaprobe0"}, Proto: unix.IPPROTO_IPV6}
	if err := h.LinkAdd(scratch); err != nil {
		return fmt.Errorf("%w: this kernel has no ip6_tunnel", dataplane.ErrUnavailable)
	}
	h.LinkDel(scratch)
	return nil
}
