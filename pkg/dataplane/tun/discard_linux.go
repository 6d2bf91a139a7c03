package tun

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

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
		homeDevice = config.DefaultHomeDevice
	}
	names := []string{homeDevice}
	for _, b := range bids {
		names = append(names, dataplane.DeviceName(b))
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
