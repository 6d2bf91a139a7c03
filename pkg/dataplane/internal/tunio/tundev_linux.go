package tunio

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

func OpenConfiguredTUN(h *netlink.Handle, name string, mtu int, offload bool) (*TunDevice, error) {
	dev, err := openTUN(name, offload)
	if err != nil {
		return nil, err
	}
	link, err := h.LinkByName(name)
	if err == nil {
		dev.Index = link.Attrs().Index
		err = h.LinkSetIP6AddrGenMode(link, 1) // IN6_ADDR_GEN_MODE_NONE
	}
	if err == nil {
		err = h.LinkSetMTU(link, mtu)
	}
	if err == nil {
		err = h.LinkSetUp(link)
	}
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	return dev, nil
}
