package ebpf

import (
	"net"

	"golang.org/x/sys/unix"
)

// setDontFrag makes c's datagrams fail rather than fragment at the source
// and learn the path MTU from Packet Too Big messages.
func setDontFrag(c *net.UDPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// pathMTU is the kernel's path MTU for c's destination.
func pathMTU(c *net.UDPConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var mtu int
	var serr error
	err = raw.Control(func(fd uintptr) {
		mtu, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
	})
	if err != nil {
		return 0, err
	}
	return mtu, serr
}
