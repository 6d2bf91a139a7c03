package netmon

import (
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// decode turns notifications into updates, skipping what it cannot parse
// (a later notification or resync covers it).
func decode(msgs []syscall.NetlinkMessage) []update {
	out := make([]update, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		switch m.Header.Type {
		case unix.RTM_NEWLINK, unix.RTM_DELLINK:
			if u, ok := decodeLink(m); ok {
				out = append(out, u)
			}
		case unix.RTM_NEWADDR, unix.RTM_DELADDR:
			if a, ok := decodeAddr(m.Data); ok {
				u := update{op: opAddr, addr: a}
				if m.Header.Type == unix.RTM_DELADDR {
					u.op = opDelAddr
				}
				out = append(out, u)
			}
		case unix.RTM_NEWROUTE, unix.RTM_DELROUTE, unix.RTM_NEWRULE, unix.RTM_DELRULE:
			out = append(out, update{op: opRouting})
		}
	}
	return out
}

func decodeLink(m *syscall.NetlinkMessage) (update, bool) {
	if len(m.Data) < unix.SizeofIfInfomsg {
		return update{}, false
	}
	info := nl.DeserializeIfInfomsg(m.Data)
	if info.Family != unix.AF_UNSPEC {
		// AF_INET6's RTM_NEWLINK carries IPv6 settings, not the link.
		return update{}, false
	}
	if m.Header.Type == unix.RTM_DELLINK {
		return update{op: opDelLink, index: int(info.Index)}, true
	}
	h := unix.NlMsghdr{Len: m.Header.Len, Type: m.Header.Type, Flags: m.Header.Flags, Seq: m.Header.Seq, Pid: m.Header.Pid}
	l, err := netlink.LinkDeserialize(&h, m.Data)
	if err != nil || l.Attrs().Name == "" {
		// No name: not a link's description but a wireless event's
		// carrier (IFLA_WIRELESS alone).
		return update{}, false
	}
	return update{op: opLink, link: l}, true
}

// decodeAddr reads an IPv6 address message as netlink.AddrList reports
// the address.
func decodeAddr(b []byte) (netlink.Addr, bool) {
	if len(b) < unix.SizeofIfAddrmsg {
		return netlink.Addr{}, false
	}
	msg := nl.DeserializeIfAddrmsg(b)
	if msg.Family != unix.AF_INET6 {
		return netlink.Addr{}, false
	}
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return netlink.Addr{}, false
	}
	a := netlink.Addr{LinkIndex: int(msg.Index), Scope: int(msg.Scope), Flags: int(msg.Flags)}
	var addr, local net.IP
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.IFA_ADDRESS:
			addr = at.Value
		case unix.IFA_LOCAL:
			local = at.Value
		case unix.IFA_FLAGS:
			if len(at.Value) >= 4 {
				a.Flags = int(nl.NativeEndian().Uint32(at.Value))
			}
		case unix.IFA_CACHEINFO:
			if len(at.Value) >= unix.SizeofIfaCacheinfo {
				ci := nl.DeserializeIfaCacheInfo(at.Value)
				a.PreferedLft, a.ValidLft = int(ci.Prefered), int(ci.Valid)
			}
		}
	}
	mask := net.CIDRMask(int(msg.Prefixlen), 128)
	switch {
	case local != nil: // a point-to-point address: IFA_ADDRESS is the peer
		a.IPNet = &net.IPNet{IP: local, Mask: net.CIDRMask(128, 128)}
		if addr != nil {
			a.Peer = &net.IPNet{IP: addr, Mask: mask}
		}
	case addr != nil:
		a.IPNet = &net.IPNet{IP: addr, Mask: mask}
	default:
		return netlink.Addr{}, false
	}
	return a, len(a.IP) == net.IPv6len
}
