package lab

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetSegmentation switches TSO and GSO of dev in namespace ns with the
// legacy ethtool ioctls (no ethtool binary is needed).
func SetSegmentation(ns, dev string, on bool) error {
	const (
		ethtoolSTSO = 0x1f
		ethtoolSGSO = 0x24
	)
	var val uint32
	if on {
		val = 1
	}
	return inNS(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, cmd := range []uint32{ethtoolSTSO, ethtoolSGSO} {
			ev := [2]uint32{cmd, val}
			var ifr struct {
				name [unix.IFNAMSIZ]byte
				data unsafe.Pointer
				_    [16]byte
			}
			copy(ifr.name[:], dev)
			ifr.data = unsafe.Pointer(&ev)
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
				return fmt.Errorf("ethtool %#x on %s in %s: %w", cmd, dev, ns, e)
			}
		}
		return nil
	})
}
