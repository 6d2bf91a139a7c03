package ha

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// netNS names this process's network namespace for the state file: its
// inode and, where the kernel has them (5.14+), its cookie, which unlike
// the inode is never reused within a boot (labs create and delete
// namespaces all the time). "" when unknown.
func netNS() string {
	s, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return ""
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return s
	}
	defer unix.Close(fd)
	if c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE); err == nil {
		s += fmt.Sprintf(" cookie %d", c)
	}
	return s
}
