package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/control"
)

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"mcoa1a2b3c-", "x", "lab_1.2-", NewPrefix(), nstest.Prefix()} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "-x", "a/b", "a b", "../x", strings.Repeat("a", 33), "é"} {
		if err := ValidatePrefix(p); !errors.Is(err, ErrBadPrefix) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrBadPrefix", p, err)
		}
	}
}

func TestNamespacePattern(t *testing.T) {
	for _, p := range []string{NewPrefix(), nstest.Prefix()} {
		for _, n := range Nodes {
			m := labNS.FindStringSubmatch(p + n)
			if m == nil || m[1] != p {
				t.Errorf("%q: DownAll would not find it (match %q)", p+n, m)
			}
		}
	}
	// DownAll must leave alone what is not a lab node.
	for _, name := range []string{"mcoa1a2b3c-foo", "mcoaT1a2b3c-a", "xmcoa1a2b3c-mn", "mcoa1a2b3-mn", "mcoaX1a2b3c-ha", "mcoa1a2b3c-mnx", "default"} {
		if labNS.MatchString(name) {
			t.Errorf("%q matches the lab pattern", name)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := (*Config)(nil).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !labNS.MatchString(c.Prefix+MN) || c.MinRAInterval != time.Second || c.MaxRAInterval != 3*time.Second || c.Logger == nil {
		t.Errorf("defaults = %+v", c)
	}
	bad := []Config{
		{Prefix: "a/b"},
		{MinRAInterval: 10 * time.Millisecond},
		{MinRAInterval: time.Second, MaxRAInterval: time.Second},
		{MaxRAInterval: time.Hour},
	}
	for _, b := range bad {
		if _, err := b.withDefaults(); err == nil {
			t.Errorf("withDefaults(%+v) accepted", b)
		}
	}
	fast := Config{MinRAInterval: 30 * time.Millisecond, MaxRAInterval: 70 * time.Millisecond}
	if _, err := fast.withDefaults(); err != nil {
		t.Errorf("fastest RA interval refused: %v", err)
	}
}

// Every address the lab configures is inside 2001:db8::/32.
func TestAddressesDocumentationOnly(t *testing.T) {
	doc := netip.MustParsePrefix("2001:db8::/32")
	addrs := []netip.Addr{HAAddr, HoA, CNAddr}
	prefixes := []netip.Prefix{HomePrefix, CNPrefix}
	for _, a := range Accesses {
		addrs = append(addrs, a.RouterAddr)
		prefixes = append(prefixes, a.Prefix)
		if !a.Prefix.Contains(a.RouterAddr) {
			t.Errorf("%s: router %s outside %s", a.Iface, a.RouterAddr, a.Prefix)
		}
	}
	seen := map[netip.Prefix]bool{}
	for _, tr := range transits {
		addrs = append(addrs, tr.core, tr.peer)
		prefixes = append(prefixes, tr.net, tr.behind)
		if !tr.net.Contains(tr.core) || !tr.net.Contains(tr.peer) || tr.core == tr.peer {
			t.Errorf("transit %s: core %s peer %s", tr.net, tr.core, tr.peer)
		}
		if seen[tr.net] {
			t.Errorf("transit %s used twice", tr.net)
		}
		seen[tr.net] = true
	}
	for _, a := range addrs {
		if !doc.Contains(a) {
			t.Errorf("%s outside %s", a, doc)
		}
	}
	for _, p := range prefixes {
		if !doc.Contains(p.Addr()) || p.Bits() < doc.Bits() {
			t.Errorf("%s outside %s", p, doc)
		}
	}
	for _, a := range Accesses {
		for _, ifn := range []string{a.Iface, homePort(a.Iface)} {
			if len(ifn) > 15 {
				t.Errorf("interface name %q longer than 15", ifn)
			}
		}
	}
}

func TestAccessOf(t *testing.T) {
	a, err := AccessOf("wlan0")
	if err != nil || a.Router != AR2 || a.Prefix != netip.MustParsePrefix("2001:db8:2::/64") {
		t.Errorf("AccessOf(wlan0) = %+v, %v", a, err)
	}
	if _, err := AccessOf("eth9"); !errors.Is(err, ErrUnknownIface) {
		t.Errorf("AccessOf(eth9) = %v, want ErrUnknownIface", err)
	}
	if err := checkNode("router"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("checkNode(router) = %v", err)
	}
}

func TestRadvdConf(t *testing.T) {
	conf := radvdConf("down0", netip.MustParsePrefix("2001:db8:1::/64"), false, 3*time.Second, 10*time.Second)
	for _, want := range []string{"interface down0 {", "MinRtrAdvInterval 3;", "MaxRtrAdvInterval 10;",
		"AdvIntervalOpt on;", "prefix 2001:db8:1::/64 {", "AdvAutonomous on;", "AdvRouterAddr on;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("access config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "HomeAgent") {
		t.Errorf("access router advertises a home agent:\n%s", conf)
	}
	home := radvdConf("home0", HomePrefix, true, 30*time.Millisecond, 70*time.Millisecond)
	for _, want := range []string{"AdvHomeAgentFlag on;", "AdvHomeAgentInfo on;", "MinRtrAdvInterval 0.03;", "MaxRtrAdvInterval 0.07;", "prefix 2001:db8:aaaa::/64 {"} {
		if !strings.Contains(home, want) {
			t.Errorf("home config lacks %q:\n%s", want, home)
		}
	}
	// radvd's own parser accepts both, where radvd is installed.
	if _, err := exec.LookPath("radvd"); err != nil {
		return
	}
	for i, c := range []string{conf, home} {
		f := filepath.Join(t.TempDir(), "radvd.conf")
		if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("radvd", "-c", "-C", f).CombinedOutput(); err != nil {
			t.Errorf("radvd -c rejects config %d: %v\n%s\n%s", i, err, out, c)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "current.json")
	if _, err := LoadState(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadState(missing) = %v, want ErrNotExist", err)
	}
	st := State{Prefix: "mcoa0a0b0c-", Dir: "/tmp/x", OwnDir: true, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(path)
	if err != nil || got != st {
		t.Errorf("LoadState = %+v, %v; want %+v", got, err, st)
	}
	l, err := Open(got)
	if err != nil || l.NS(HA) != "mcoa0a0b0c-ha" || !l.ownDir {
		t.Errorf("Open = %+v, %v", l, err)
	}
	if err := os.WriteFile(path, []byte(`{"prefix":"../etc"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(path); !errors.Is(err, ErrBadPrefix) {
		t.Errorf("LoadState(bad prefix) = %v, want ErrBadPrefix", err)
	}
}

func TestCheckTools(t *testing.T) {
	err := CheckTools("radvd-that-does-not-exist")
	var mt *MissingToolError
	if !errors.As(err, &mt) || mt.Tool != "radvd-that-does-not-exist" || !strings.Contains(err.Error(), "install") {
		t.Errorf("CheckTools = %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	err = CheckTools("ip", "radvd")
	for _, want := range []string{`"iproute2"`, `"radvd"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTools without PATH = %v, want it to name %s", err, want)
		}
	}
}

func TestExecError(t *testing.T) {
	_, err := run(t.Context(), "sh", "-c", "echo boom >&2; exit 3")
	var ee *ExecError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("run = %v", err)
	}
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 3 {
		t.Errorf("ExecError does not unwrap to the exit error: %v", err)
	}
}

// Start and Stop of a process without namespaces is covered by the
// end-to-end tests; here only the pid-file safety check.
func TestKillPidFilesSparesOthers(t *testing.T) {
	dir := t.TempDir()
	// Our own pid, claimed to be radvd: wrong command, and in the host's
	// namespace. It must be left alone (or this test would die).
	if err := os.WriteFile(filepath.Join(dir, "radvd-ar1.pid"), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proc-cn-x.pid"), []byte("notapid x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := killPidFiles(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.pid")); len(left) != 0 {
		t.Errorf("pid files left: %v", left)
	}
	if labProcess(os.Getpid(), filepath.Base(os.Args[0])) {
		t.Errorf("this test process counts as a lab process")
	}
}

func TestBUsSince(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:1::ff:fe00:1")
	accepted := control.BU{Src: src, HoA: HoA, Sequence: 14717, BIDs: []uint16{1, 2, 3}, Prefixes: 1, Answered: true}
	refused := control.BU{Src: src, HoA: HoA, Sequence: 18345, BIDs: []uint16{2}, Status: 136, Answered: true, Correspondent: true}
	dropped := control.BU{Src: src, HoA: HoA, Sequence: 18346, Correspondent: true, Dropped: "rate-limited"}
	d := &Daemon{bus: &buLog{bus: []control.BU{accepted, refused, dropped}}}
	if m := d.BUMark(); m != 3 {
		t.Errorf("BUMark = %d, want 3", m)
	}
	if got := d.BUsSince(1); !reflect.DeepEqual(got, []control.BU{refused, dropped}) {
		t.Errorf("BUsSince(1) = %+v", got)
	}
	if got := d.BUsSince(4); got != nil {
		t.Errorf("BUsSince(4) = %+v, want none", got)
	}
	if got := Processed(d.BUsSince(0)); !reflect.DeepEqual(got, []control.BU{accepted, refused}) {
		t.Errorf("Processed = %+v, want the accepted and the refused BU", got)
	}
	if got := (&Daemon{}).BUsSince(0); got != nil {
		t.Errorf("a daemon without record: %+v", got)
	}
}

func TestSumMetric(t *testing.T) {
	m := ParseMetrics(`# HELP mcoa_ha_tunnel_rx_packets_total Packets.
mcoa_ha_tunnel_rx_packets_total{bid="1"} 3
mcoa_ha_tunnel_rx_packets_total{bid="2"} 4
mcoa_ha_tunnel_rx_packets_total_other 100
mcoad_bu_sent_total 7
`)
	for name, want := range map[string]float64{"mcoa_ha_tunnel_rx_packets_total": 7, "mcoad_bu_sent_total": 7, "absent": 0} {
		if got := SumMetric(m, name); got != want {
			t.Errorf("SumMetric(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	if !reflect.DeepEqual(MNIfaces, []string{"eth0", "wlan0", "wwan0"}) {
		t.Errorf("MNIfaces = %v", MNIfaces)
	}
	// The demo and the e2e tests name these figures (priorities 30/20/10).
	if want := map[string]uint8{"eth0": 30, "wlan0": 20, "wwan0": 10}; !reflect.DeepEqual(DefaultPriorities, want) {
		t.Errorf("DefaultPriorities = %v, want %v", DefaultPriorities, want)
	}
}

// TestRemoveOrphans: a test lab whose owner process is gone is removed; one
// whose owner lives stays.
func TestRemoveOrphans(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no true(1): %v", err)
	}
	mk := func(pid int) string {
		d, err := os.MkdirTemp("", "mcoa-lab-"+nstest.Prefix())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	orphan, live := mk(dead.Process.Pid), mk(os.Getpid())
	removeOrphans()
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("the dead owner's lab %s is still there (%v)", orphan, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live owner's lab went: %v", err)
	}
}
