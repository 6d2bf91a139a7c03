package policy

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lookupCgroup finds a cgroup v2 path's id (the inode number of its
// directory in the cgroup2 file system, which is what the kernel's
// "socket cgroupv2" compares) and its depth.
func lookupCgroup(p string) (uint64, uint32, error) {
	root, err := cgroup2Root()
	if err != nil {
		return 0, 0, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, p), &st); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", filepath.Join(root, p), err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return 0, 0, fmt.Errorf("%s is not a cgroup directory", filepath.Join(root, p))
	}
	return st.Ino, uint32(strings.Count(strings.Trim(p, "/"), "/") + 1), nil
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems).
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f1, f2 := strings.Fields(pre), strings.Fields(post)
		if len(f1) >= 5 && len(f2) >= 1 && f2[0] == "cgroup2" {
			return unescapeMount(f1[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 file system mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
