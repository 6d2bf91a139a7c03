// Package nstest gives root-only tests network namespaces of their own, with
// cleanup even when the test fails, and the MCOA_E2E rule: without root the
// tests skip, but with MCOA_E2E=1 they fail instead.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// Required reports whether end-to-end tests must run (MCOA_E2E=1).
func Required() bool { return os.Getenv("MCOA_E2E") == "1" }

// Require skips t (or fails it when MCOA_E2E=1) unless the test runs as root
// with the named tools on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	miss := func(why string) {
		if Required() {
			t.Fatalf("end-to-end test cannot run: %s (MCOA_E2E=1)", why)
		}
		t.Skipf("skipping end-to-end test: %s", why)
	}
	if os.Geteuid() != 0 {
		miss("not root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			miss(tool + " not found")
		}
	}
}

// Prefix returns a short unique prefix for namespace and object names.
func Prefix() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("mcoaT%s-", hex.EncodeToString(b[:]))
}

// NS is a network namespace owned by a test.
type NS struct {
	Name string
}

// New creates the namespace name (give it a Prefix()) with loopback up and removes it in
// t.Cleanup.
func New(t testing.TB, name string) *NS {
	t.Helper()
	ns := &NS{Name: name}
	MustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// Kill what still runs inside (radvd, daemons) before deleting.
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			self := strconv.Itoa(os.Getpid())
			for _, pid := range strings.Fields(string(out)) {
				if pid == self {
					// A thread of the test entered it through Do.
					continue
				}
				exec.Command("kill", "-9", pid).Run()
			}
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	ns.Exec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Exec runs a command inside the namespace and fails the test on error.
func (ns *NS) Exec(t testing.TB, args ...string) string {
	t.Helper()
	return MustRun(t, append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// Try runs a command inside the namespace and returns its output and error.
func (ns *NS) Try(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	return string(out), err
}

// Command returns an unstarted command that runs inside the namespace.
func (ns *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// Do runs fn on an OS thread that has entered the namespace. The thread is
// never returned to the Go scheduler's pool (it exits with the goroutine), so
// no other goroutine ever runs in the wrong namespace. Sockets and netlink
// handles made in fn stay in the namespace after fn returns.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		h, err := netns.GetFromName(ns.Name)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns.Name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Handle returns a handle to the namespace (for netlink.NewHandleAt), closed
// in t.Cleanup.
func (ns *NS) Handle(t testing.TB) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatalf("netns %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Batch runs ip -batch with script (one ip command a line, without "ip")
// inside the namespace: thousands of changes at the kernel's pace.
func (ns *NS) Batch(t testing.TB, script string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ip-batch")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	MustRun(t, "ip", "-n", ns.Name, "-batch", file)
}

// AddrScript is a Batch script that adds n addresses, 2001:db8:1::1 and
// up, to dev (without DAD).
func AddrScript(dev string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "address add 2001:db8:1::%x/64 dev %s nodad\n", i+1, dev)
	}
	return b.String()
}

// Veth connects a (interface an) and b (interface bn), both up.
func Veth(t testing.TB, a *NS, an string, b *NS, bn string) {
	t.Helper()
	MustRun(t, "ip", "-n", a.Name, "link", "add", an, "type", "veth", "peer", "name", bn, "netns", b.Name)
	MustRun(t, "ip", "-n", a.Name, "link", "set", an, "up")
	MustRun(t, "ip", "-n", b.Name, "link", "set", bn, "up")
}

// MustRun runs a host command (ip, nft: never anything that sends packets)
// and fails the test on error.
func MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
