package policy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/netmon"
)

// expectApplied checks that the kernel holds the rules and the table that
// compile makes of st, and returns them.
func expectApplied(t *testing.T, ns *nstest.NS, c *Config, st State) (plan, string) {
	t.Helper()
	want := compile(c, newMarks(c.Mark, c.Mask), st)
	if got, w := kernelRules(t, ns), wantRules(want); !slices.Equal(got, w) {
		t.Errorf("ip -6 rule:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	wantTable := buildTable(c, &want).String()
	if got := kernelTable(t, ns, config.DefaultNFTable); got != wantTable {
		t.Errorf("the kernel's table differs from ours:\n%s", lineDiff(wantTable, got))
	}
	return want, wantTable
}

// kernelRules is `ip -6 rule` in ns, only ours, normalized to Rule.String.
func kernelRules(t *testing.T, ns *nstest.NS) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(ns.Exec(t, "ip", "-6", "rule"), "\n") {
		if !strings.HasSuffix(l, " proto 77") {
			continue
		}
		l = strings.Join(strings.Fields(strings.TrimSuffix(l, " proto 77")), " ")
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func wantRules(pl plan) []string {
	var out []string
	for _, r := range pl.rules {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

var (
	nftHeader  = regexp.MustCompile(`^(ip6 \S+ \S+)( \d+)+$`)
	nftCounter = regexp.MustCompile(`counter pkts \d+ bytes \d+`)
)

// kernelTable is the table as the kernel gives it back, in the form of
// nftTable.String.
func kernelTable(t *testing.T, ns *nstest.NS, name string) string {
	t.Helper()
	out, err := ns.Try("nft", "--debug=netlink", "list", "table", "ip6", name)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "table ") {
			break // the ruleset in nft syntax follows the netlink dump
		}
		if l == "" {
			continue
		}
		l = nftHeader.ReplaceAllString(l, "$1")
		l = nftCounter.ReplaceAllString(l, "counter pkts 0 bytes 0")
		b.WriteString(l + "\n")
	}
	return b.String()
}

// nftCounters returns the packet counter of each commented rule.
func nftCounters(t *testing.T, ns *nstest.NS) map[string]int {
	t.Helper()
	out := ns.Exec(t, "nft", "list", "table", "ip6", config.DefaultNFTable)
	re := regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "([^"]+)"`)
	m := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if s := re.FindStringSubmatch(l); s != nil {
			var n int
			fmt.Sscan(s[1], &n)
			m[s[2]] = n
		}
	}
	return m
}

func txPackets(t *testing.T, ns *nstest.NS, dev string) uint64 {
	t.Helper()
	var n uint64
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		s := l.Attrs().Statistics
		n = s.TxPackets + s.TxDropped
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKernel applies states in a namespace of its own and checks what the
// kernel holds, where packets go, self-healing, restart after a crash and
// cleanup.
func TestKernel(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t, nstest.Prefix()+"pol")
	// The home address on its device, and a tunnel device and table per
	// BID, as pkg/dataplane makes them (TUN devices nobody reads: what
	// the kernel routes into them is counted as sent or dropped).
	ns.Exec(t, "ip", "tuntap", "add", "mcoa0", "mode", "tun")
	ns.Exec(t, "ip", "link", "set", "mcoa0", "up")
	ns.Exec(t, "ip", "-6", "addr", "add", hoa.String()+"/128", "dev", "mcoa0", "nodad", "noprefixroute")
	for b := 1; b <= 3; b++ {
		dev := dataplane.DeviceName(uint16(b))
		if !strings.HasPrefix(dev, config.TunnelDevicePrefix) {
			t.Fatalf("dataplane names its devices %s, not %s*", dev, config.TunnelDevicePrefix)
		}
		ns.Exec(t, "ip", "tuntap", "add", dev, "mode", "tun")
		ns.Exec(t, "ip", "link", "set", dev, "up")
		ns.Exec(t, "ip", "-6", "route", "add", "default", "dev", dev, "table", fmt.Sprint(1000+b), "src", hoa.String())
	}

	// A cgroup of our own for a cgroup policy: the kernel resolves it
	// when the rule loads.
	root, err := cgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	cgName := "/" + strings.TrimSuffix(filepath.Base(ns.Name), "-") + "cg"
	if err := os.Mkdir(filepath.Join(root, cgName), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(root, cgName)) })

	pols := []Policy{
		{Name: "voice", Protocol: protoUDP, DstPort: Ports{5060, 5061}, Prefer: pref("wlan*", "eth*")},
		{Name: "web", Protocol: protoTCP, DstPort: Ports{443, 443}, DstPrefix: netip.MustParsePrefix("2001:db8:cccc::/48"), Prefer: pref("wwan*")},
		{Name: "nobody", User: "4242", Prefer: pref("bid:3")},
		{Name: "cg", Cgroup: cgName, Prefer: pref("bid:3")},
	}
	st := State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan}, Policies: pols}
	cfg := &Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx := context.Background()

	var e *Engine
	if err := ns.Do(func() (err error) { e, err = New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.withDefaults()
	want, wantTable := expectApplied(t, ns, &c, st)

	if out := ns.Exec(t, "nft", "list", "table", "ip6", config.DefaultNFTable); !strings.Contains(out, "socket cgroupv2 level 1 ") {
		t.Errorf("cgroup policy: no \"socket cgroupv2 level 1\" in\n%s", out)
	}

	// Where packets go: the voice policy to wlan0's tunnel (BID 2), the
	// web policy to wwan0's (BID 3), anything else to the best, eth0's.
	before := [4]uint64{0, txPackets(t, ns, "mcoab1"), txPackets(t, ns, "mcoab2"), txPackets(t, ns, "mcoab3")}
	err = ns.Do(func() error {
		for _, a := range []string{"[2001:db8:cccc::1]:5060", "[2001:db8:cccc::1]:9"} {
			c, err := net.Dial("udp6", a)
			if err != nil {
				return err
			}
			if la := c.LocalAddr().(*net.UDPAddr); !la.IP.Equal(hoa.AsSlice()) {
				return fmt.Errorf("unbound socket to %s got source %v, want the home address", a, la.IP)
			}
			c.Write([]byte("x"))
			c.Close()
		}
		c, err := net.DialTimeout("tcp6", "[2001:db8:cccc::1]:443", 50*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for b, wantN := range map[int]uint64{1: 1, 2: 1, 3: 1} {
		if got := txPackets(t, ns, fmt.Sprintf("mcoab%d", b)) - before[b]; got < wantN {
			t.Errorf("mcoab%d: %d packets, want at least %d", b, got, wantN)
		}
	}
	cnt := nftCounters(t, ns)
	if cnt["mcoad: policy voice bid 2"] != 1 || cnt["mcoad: policy web bid 3"] < 1 {
		t.Errorf("policy counters %v", cnt)
	}
	if out, err := ns.Try("ip", "-6", "route", "get", "2001:db8:cccc::1", "mark", "0x4f000000"); err != nil || !strings.Contains(out, "dev mcoab2") {
		t.Errorf("route get with BID 2's mark: %s %v", out, err)
	}
	if out, err := ns.Try("ip", "-6", "route", "get", "2001:db8:cccc::1", "mark", "0x4d000000"); err == nil && strings.Contains(out, "mcoab") {
		t.Errorf("the bypass mark goes into a tunnel: %s", out)
	}

	// Self-healing: a deleted rule and a deleted table come back, a
	// watcher sees the deletion.
	kicks := make(chan struct{}, 16)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	watchDone := make(chan error, 1)
	mon, stopMon, err := netmon.Start(&netmon.Config{NetNS: ns.Name, Routes: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stopMon()
	go func() {
		watchDone <- Watch(wctx, cfg, mon, func() {
			select {
			case kicks <- struct{}{}:
			default:
			}
		})
	}()
	time.Sleep(50 * time.Millisecond) // watching
	ns.Exec(t, "ip", "-6", "rule", "del", "pref", "5180")
	select {
	case <-kicks:
	case <-time.After(5 * time.Second):
		t.Error("Watch did not report the deleted rule")
	}
	ns.Exec(t, "nft", "delete", "table", "ip6", config.DefaultNFTable)
	if err := e.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, w := kernelRules(t, ns), wantRules(want); !slices.Equal(got, w) {
		t.Errorf("after healing, ip -6 rule:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	if got := kernelTable(t, ns, config.DefaultNFTable); got != wantTable {
		t.Errorf("after healing, the table differs:\n%s", lineDiff(wantTable, got))
	}
	wcancel()
	if err := <-watchDone; err != nil {
		t.Errorf("Watch: %v", err)
	}

	// A crash: a new engine (a new mcoad) takes over without Close.
	var e2 *Engine
	if err := ns.Do(func() (err error) { e2, err = New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	if got := kernelRules(t, ns); len(got) != 0 {
		t.Errorf("New left %d rules of the crashed engine", len(got))
	}
	if err := e2.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, w := kernelRules(t, ns), wantRules(want); !slices.Equal(got, w) {
		t.Errorf("after a restart, ip -6 rule:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := kernelRules(t, ns); len(got) != 0 {
		t.Errorf("Close left rules: %v", got)
	}
	if out := ns.Exec(t, "nft", "list", "tables"); strings.Contains(out, config.DefaultNFTable) {
		t.Errorf("Close left the table: %s", out)
	}

	// Cleanup removes what a crashed mcoad left.
	if err := e.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return Cleanup(cfg) }); err != nil {
		t.Fatal(err)
	}
	if got := kernelRules(t, ns); len(got) != 0 {
		t.Errorf("Cleanup left rules: %v", got)
	}
	if out := ns.Exec(t, "nft", "list", "tables"); strings.Contains(out, config.DefaultNFTable) {
		t.Errorf("Cleanup left the table: %s", out)
	}
}
