package mn

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"

	"github.com/vishvananda/netlink"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/iface"
)

// fakeKernel stands for netlink: the interface watcher reads links and
// addresses from it when hinted.
type fakeKernel struct {
	mu    sync.Mutex
	links []netlink.Link
	addrs []netlink.Addr
}

func (k *fakeKernel) LinkList() ([]netlink.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.links), nil
}

func (k *fakeKernel) AddrList(netlink.Link, int) ([]netlink.Addr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.addrs), nil
}

// addLink adds an Ethernet-like link that is up with carrier, and a
// global address on it.
func (k *fakeKernel) addLink(idx int, name, cidr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.links = append(k.links, &netlink.Device{LinkAttrs: netlink.LinkAttrs{
		Index: idx, Name: name, EncapType: "ether",
		HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, byte(idx)},
		RawFlags:     0x1 | 0x10000, // IFF_UP | IFF_LOWER_UP
		Flags:        net.FlagUp, OperState: netlink.OperUp,
	}})
	p := netip.MustParsePrefix(cidr)
	k.addrs = append(k.addrs, netlink.Addr{
		IPNet:     &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 128)},
		LinkIndex: idx, PreferedLft: int(iface.Forever), ValidLft: int(iface.Forever),
	})
}

// testConfig is a mobile node configuration; prio and extra fill in the
// [[interface]] rules.
func testConfig(dir, rules string) string {
	return fmt.Sprintf(`[mobile_node]
home_address = "2001:db8:aaaa::100"
home_agent   = "2001:db8:aaaa::1"
home_prefix  = "2001:db8:aaaa::/64"
state_dir    = %q

%s

[control]
socket = %q
`, filepath.Join(dir, "state"), rules, filepath.Join(dir, "mcoad.sock"))
}

const defaultRules = `[[interface]]
match    = "eth*"
priority = 30

[[interface]]
match    = "wlan*"
priority = 20

[[interface]]
match    = "wwan*"
priority = 10
metered_priority = 2
`

// testDaemon is a Daemon with what the reload and D-Bus paths use: the
// configuration file, the interface watcher (over a fake kernel, so no
// root is needed) and the events broker; no engine and no sockets.
type testDaemon struct {
	*Daemon
	kernel *fakeKernel
	path   string
	logs   *syncBuffer
}

func newTestDaemon(t testing.TB, rules string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mcoad.toml")
	if err := os.WriteFile(path, []byte(testConfig(dir, rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadMN(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	k := &fakeKernel{}
	k.addLink(2, "eth0", "2001:db8:1::2/64")
	k.addLink(3, "wwan0", "2001:db8:3::2/64")
	wc := watcherConfig(cfg, log)
	wc.Source, wc.DisableRA, wc.StateDir = k, true, ""
	w, err := iface.New(wc)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{deps: Deps{Command: service.Command{ConfigPath: path, Logger: log, Level: new(slog.LevelVar)}}, log: log, cfg: cfg,
		watcher: w, events: control.NewEvents(0), started: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.events.Close()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	td := &testDaemon{Daemon: d, kernel: k, path: path, logs: logs}
	td.waitPriority(t, "eth0", 30)
	return td
}

// priority is an interface's priority in the watcher's latest snapshot.
func (d *testDaemon) priority(name string) (uint8, uint16, bool) {
	s, ok := d.watcher.Current()
	if !ok {
		return 0, 0, false
	}
	for _, c := range s.CareOfs {
		if c.Iface == name {
			return c.Priority, c.BID, true
		}
	}
	return 0, 0, false
}

func (d *testDaemon) waitPriority(t testing.TB, name string, want uint8) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to get priority %d", name, want), func() bool {
		p, _, ok := d.priority(name)
		return ok && p == want
	})
}

// rewrite replaces the configuration file as editors do: a new file
// renamed over the old one.
func (d *testDaemon) rewrite(t testing.TB, content string) {
	t.Helper()
	tmp := d.path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		t.Fatal(err)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, what, cond)
}

type syncBuffer = testutil.SyncBuffer
