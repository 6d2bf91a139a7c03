package service

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// fileID is f's device and inode numbers, as JOURNAL_STREAM writes them.
func fileID(f *os.File) (dev, ino string, ok bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", "", false
	}
	return strconv.FormatUint(st.Dev, 10), strconv.FormatUint(st.Ino, 10), true
}
