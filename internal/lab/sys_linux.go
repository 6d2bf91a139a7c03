package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNS runs fn on an OS thread that has entered the named namespace. The
// thread is never handed back to the scheduler: it exits with its goroutine.
func inNS(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// setSysctls writes /proc/sys settings from inside a namespace; the net
// sysctls a thread sees are those of its own namespace.
func setSysctls(ns string, s []sysctl) error {
	return inNS(ns, func() error {
		for _, kv := range s {
			if err := os.WriteFile(filepath.Join("/proc/sys", kv.key), []byte(kv.val), 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// The parent-death signal is delivered when the forking *thread* exits, and
// Go threads do exit (a goroutine that ends while locked to its thread takes
// the thread with it, as inNS does). So children are forked from one
// dedicated thread that lives as long as the process.
var (
	spawnOnce sync.Once
	spawnc    chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func startCmd(cmd *exec.Cmd, detach bool) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if detach {
		return cmd.Start()
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() {
		spawnc = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawnc {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnc <- spawnReq{cmd, errc}
	return <-errc
}

// signalGroup signals a process group led by pid (Start makes one per
// process), falling back to the process alone.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err == nil {
		return nil
	}
	return syscall.Kill(pid, sig)
}

// nsID identifies a network namespace.
type nsID struct{ dev, ino uint64 }

func nsIDOf(path string) (nsID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

// pidsInNamespaces returns the processes (other than this one) whose network
// namespace is one of the named ones, like `ip netns pids`.
func pidsInNamespaces(names []string) ([]int, error) {
	want := map[nsID]bool{}
	for _, n := range names {
		id, err := nsIDOf(filepath.Join(netnsDir, n))
		if err != nil {
			continue
		}
		want[id] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := nsIDOf(filepath.Join("/proc", e.Name(), "ns/net"))
		if err == nil && want[id] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// labProcess reports whether pid runs comm (as truncated by the kernel) in a
// namespace other than the host's: the check before killing a pid read from
// a pid file, which may be stale and reused.
func labProcess(pid int, comm string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return false
	}
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if strings.TrimSpace(string(b)) != comm {
		return false
	}
	host, err := nsIDOf("/proc/self/ns/net")
	if err != nil {
		return false
	}
	id, err := nsIDOf(filepath.Join("/proc", strconv.Itoa(pid), "ns/net"))
	return err == nil && id != host
}

// comm returns the command name of a live process, or "".
func comm(pid int) string {
	if !alive(pid) {
		return ""
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// mountBPF makes dir a bpffs of its own unless it is one: the eBPF data
// plane's pins must outlive the process (a restart) and not meet another
// lab's, and `ip netns exec` remounts /sys, so /sys/fs/bpf would be a
// bpffs of the process's own mount namespace only.
func mountBPF(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("lab: mounting a bpffs at %s: %w", dir, err)
	}
	return nil
}

// unmountBPF unmounts mountBPF's bpffs (its pins go with it), if any.
func unmountBPF(dir string) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
}
