// Package link holds the netlink helpers the mobile node's backends share.
package link

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LookupLink resolves an interface by name or index: name, index, MTU.
func LookupLink(h *netlink.Handle, name string, index int) (string, int, int, error) {
	var l netlink.Link
	var err error
	if name != "" {
		l, err = h.LinkByName(name)
	} else {
		l, err = h.LinkByIndex(index)
	}
	if err != nil {
		return "", 0, 0, err
	}
	a := l.Attrs()
	return a.Name, a.Index, a.MTU, nil
}

func HomeAddr(hoa netip.Addr) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: hoa.AsSlice(), Mask: net.CIDRMask(128, 128)},
		// No DAD: the home agent defends the address on the home link; no
		// prefix route: nothing is routed into the home device.
		Flags: unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE,
	}
}

// MoveHomeAddr makes the home device ifindex hold hoa instead of old (if
// valid).
func MoveHomeAddr(h *netlink.Handle, ifindex int, old, hoa netip.Addr) error {
	l, err := h.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("home device: %w", err)
	}
	if old.IsValid() {
		h.AddrDel(l, HomeAddr(old))
	}
	if err := h.AddrReplace(l, HomeAddr(hoa)); err != nil {
		return fmt.Errorf("home address %s on %s: %w", hoa, l.Attrs().Name, err)
	}
	return nil
}
