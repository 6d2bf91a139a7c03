package iface

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Root integration tests: each builds its own namespaces (nstest), runs the
// watcher on the real kernel inside them, and removes everything in
// Cleanup. Without root they skip, with MCOA_E2E=1 they fail.

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// mnNS makes the mobile node's namespace: no DAD (addresses usable at
// once), and Router Advertisements accepted.
func mnNS(t *testing.T, name string) *nstest.NS {
	ns := nstest.New(t, name)
	for _, k := range []string{"all", "default"} {
		ns.Exec(t, "sysctl", "-qw",
			"net.ipv6.conf."+k+".accept_dad=0",
			"net.ipv6.conf."+k+".forwarding=0",
			"net.ipv6.conf."+k+".accept_ra=2")
	}
	return ns
}

// mnWithPeer makes the mobile node's namespace and a peer, linked by mn0
// and p0.
func mnWithPeer(t *testing.T) (mn, peer *nstest.NS) {
	p := nstest.Prefix()
	mn, peer = mnNS(t, p+"mn"), nstest.New(t, p+"peer")
	nstest.Veth(t, mn, "mn0", peer, "p0")
	return mn, peer
}

// startNS runs a watcher on ns; stop ends it (also at the end of the test).
func startNS(t *testing.T, ns *nstest.NS, cfg *Config) (w *Watcher, stop func()) {
	t.Helper()
	cfg.NetNS = ns.Name
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, runWatcher(t, w)
}

func runWatcher(t *testing.T, w *Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitState polls Current until pred holds (10 s at most).
func waitState(t *testing.T, w *Watcher, what string, pred func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last Snapshot
	for time.Now().Before(deadline) {
		if s, ok := w.Current(); ok {
			last = s
			if pred(s) {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last state:\n%s", what, dump(last))
	return last
}

func dump(s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d care-ofs %+v\n", s.Generation, s.CareOfs)
	for _, i := range s.Interfaces {
		fmt.Fprintf(&b, "  %s #%d state=%s reason=%q bid=%d coa=%v home=%v routers=%v prefixes=%v moves=%d\n",
			i.Name, i.Index, i.State, i.Reason, i.BID, i.CoA, i.HomeLink, i.Routers, i.Prefixes, i.Moves)
		for _, a := range i.Addrs {
			fmt.Fprintf(&b, "    %+v\n", a)
		}
	}
	return b.String()
}

// careOfs reduces the care-of set to "iface addr bid home" lines.
func careOfs(s Snapshot) []string {
	var out []string
	for _, c := range s.CareOfs {
		out = append(out, fmt.Sprintf("%s %s %d %v", c.Iface, c.Addr, c.BID, c.HomeLink))
	}
	return out
}

func hasCareOfs(want ...string) func(Snapshot) bool {
	return func(s Snapshot) bool { return slices.Equal(careOfs(s), want) }
}

func TestNSLinksAndAddresses(t *testing.T) {
	nstest.Require(t)
	mn, peer := mnWithPeer(t)
	// Never care-of interfaces: a TUN device and one of our tunnels.
	mn.Exec(t, "ip", "tuntap", "add", "dev", "tun0", "mode", "tun")
	mn.Exec(t, "ip", "link", "set", "tun0", "up")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:9::1/64", "dev", "tun0", "nodad")
	mn.Exec(t, "ip", "link", "add", "mip0", "type", "veth", "peer", "name", "vpeer")
	mn.Exec(t, "ip", "link", "set", "mip0", "up")
	mn.Exec(t, "ip", "link", "set", "vpeer", "up")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:9::2/64", "dev", "mip0", "nodad")

	state := t.TempDir()
	w, stop := startNS(t, mn, &Config{StateDir: state, DisableRA: true})
	s := waitState(t, w, "the first snapshot", func(s Snapshot) bool { _, ok := s.Interface("mn0"); return ok })
	if len(s.CareOfs) != 0 {
		t.Errorf("care-ofs before any global address: %+v", s.CareOfs)
	}
	for name, reason := range map[string]string{"lo": "loopback", "tun0": "virtual (tuntap)", "mip0": "own tunnel", "vpeer": ""} {
		ifi, ok := s.Interface(name)
		if !ok || ifi.Reason != reason {
			t.Errorf("%s: %+v, want reason %q", name, ifi, reason)
		}
	}

	step := func(what string, want ...string) Snapshot {
		t.Helper()
		return waitState(t, w, what, hasCareOfs(want...))
	}
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "mn0", "nodad")
	step("an address", "mn0 2001:db8:1::10 1 false")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::20/64", "dev", "mn0", "nodad")
	step("a newer address", "mn0 2001:db8:1::20 1 false")
	mn.Exec(t, "ip", "addr", "del", "2001:db8:1::20/64", "dev", "mn0")
	step("the newer address removed", "mn0 2001:db8:1::10 1 false")

	peer.Exec(t, "ip", "link", "set", "p0", "down")
	s = step("carrier lost")
	if ifi, _ := s.Interface("mn0"); ifi.State != StateNoCarrier || ifi.Carrier || !ifi.Up {
		t.Errorf("mn0 without carrier: %+v", ifi)
	}
	peer.Exec(t, "ip", "link", "set", "p0", "up")
	step("carrier back", "mn0 2001:db8:1::10 1 false")

	mn.Exec(t, "ip", "link", "set", "mn0", "down")
	s = step("link down")
	if ifi, _ := s.Interface("mn0"); ifi.State != StateDown {
		t.Errorf("mn0 down: %+v", ifi)
	}
	mn.Exec(t, "ip", "link", "set", "mn0", "up")
	// The kernel drops IPv6 addresses on admin down: configure again.
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "mn0", "nodad")
	step("link up", "mn0 2001:db8:1::10 1 false")

	// A second interface, then a rename of the first: the BIDs follow.
	nstest.Veth(t, mn, "eth1", peer, "p1")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:2::10/64", "dev", "eth1", "nodad")
	step("a second interface", "mn0 2001:db8:1::10 1 false", "eth1 2001:db8:2::10 2 false")
	mn.Exec(t, "ip", "link", "set", "mn0", "down")
	mn.Exec(t, "ip", "link", "set", "mn0", "name", "wan0")
	mn.Exec(t, "ip", "link", "set", "wan0", "up")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "wan0", "nodad")
	step("renamed", "wan0 2001:db8:1::10 1 false", "eth1 2001:db8:2::10 2 false")

	// Deleted and re-created (a new index and MAC): the name keeps the BID.
	mn.Exec(t, "ip", "link", "del", "wan0")
	s = step("deleted", "eth1 2001:db8:2::10 2 false")
	if _, ok := s.Interface("wan0"); ok {
		t.Error("wan0 still listed")
	}
	nstest.Veth(t, mn, "wan0", peer, "p2")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:7::10/64", "dev", "wan0", "nodad")
	step("re-created", "wan0 2001:db8:7::10 1 false", "eth1 2001:db8:2::10 2 false")

	// A restart: eth1 comes first now, and keeps BID 2.
	stop()
	mn.Exec(t, "ip", "addr", "del", "2001:db8:7::10/64", "dev", "wan0")
	w, _ = startNS(t, mn, &Config{StateDir: state, DisableRA: true})
	step("after a restart", "eth1 2001:db8:2::10 2 false")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:7::10/64", "dev", "wan0", "nodad")
	step("after a restart, wan0 back", "wan0 2001:db8:7::10 1 false", "eth1 2001:db8:2::10 2 false")
	if _, err := os.Stat(filepath.Join(state, StateFile)); err != nil {
		t.Error(err)
	}
}

func TestNSLifetimesAndDAD(t *testing.T) {
	nstest.Require(t)
	mn, peer := mnWithPeer(t)
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "mn0", "nodad")
	w, _ := startNS(t, mn, &Config{BIDMode: BIDPerCoA, DisableRA: true})
	waitState(t, w, "start", hasCareOfs("mn0 2001:db8:1::10 1 false"))

	// Lifetimes running out: deprecated after 1 s (no longer a care-of
	// address), gone after 3 s.
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::30/64", "dev", "mn0", "nodad", "preferred_lft", "1", "valid_lft", "3")
	waitState(t, w, "the short-lived address", hasCareOfs("mn0 2001:db8:1::10 1 false", "mn0 2001:db8:1::30 2 false"))
	s := waitState(t, w, "deprecation", hasCareOfs("mn0 2001:db8:1::10 1 false"))
	ifi, _ := s.Interface("mn0")
	dep := false
	for _, a := range ifi.Addrs {
		dep = dep || (a.Prefix.Addr() == netip.MustParseAddr("2001:db8:1::30") && a.Deprecated && !a.CoA)
	}
	if !dep {
		t.Errorf("the expired address is not shown deprecated: %+v", ifi.Addrs)
	}
	waitState(t, w, "expiry", func(s Snapshot) bool {
		ifi, _ := s.Interface("mn0")
		return !slices.ContainsFunc(ifi.Addrs, func(a Addr) bool { return a.Prefix.Addr() == netip.MustParseAddr("2001:db8:1::30") })
	})

	// DAD failure: the peer already has the address.
	peer.Exec(t, "ip", "addr", "add", "2001:db8:1::99/64", "dev", "p0", "nodad")
	mn.Exec(t, "sysctl", "-qw", "net.ipv6.conf.mn0.accept_dad=1", "net.ipv6.conf.mn0.dad_transmits=1")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::99/64", "dev", "mn0")
	s = waitState(t, w, "DAD failure", func(s Snapshot) bool {
		ifi, _ := s.Interface("mn0")
		return slices.ContainsFunc(ifi.Addrs, func(a Addr) bool { return a.DADFailed })
	})
	if !slices.Equal(careOfs(s), []string{"mn0 2001:db8:1::10 1 false"}) {
		t.Errorf("care-ofs with a DAD-failed address: %v", careOfs(s))
	}
	// It never was a care-of address, tentative or failed.
	for {
		select {
		case u := <-w.Updates():
			for _, c := range u.CareOfs {
				if c.Addr == netip.MustParseAddr("2001:db8:1::99") {
					t.Errorf("the duplicate address was a care-of address: %+v", u.CareOfs)
				}
			}
			continue
		default:
		}
		break
	}
}

// radvd runs in ns on ifname with the given prefix lines until the test ends.
func radvd(t *testing.T, ns *nstest.NS, ifname string, prefixes ...string) (stop func()) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	var pfx strings.Builder
	for _, p := range prefixes {
		fmt.Fprintf(&pfx, "  prefix %s { AdvOnLink on; AdvAutonomous on; AdvValidLifetime 600; AdvPreferredLifetime 300; };\n", p)
	}
	cfg := fmt.Sprintf(`interface %s {
  AdvSendAdvert on;
  AdvIntervalOpt on;
  MinRtrAdvInterval 0.1;
  MaxRtrAdvInterval 0.3;
  MinDelayBetweenRAs 0.05;
  AdvDefaultLifetime 30;
%s};
`, ifname, pfx.String())
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command("radvd", "-C", conf, "-p", filepath.Join(dir, "radvd.pid"), "-n", "-m", "stderr")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("radvd output:\n%s", out.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

func slaacIn(s Snapshot, ifname string, p netip.Prefix) (netip.Addr, bool) {
	for _, c := range s.CareOfs {
		if c.Iface == ifname && p.Contains(c.Addr) {
			return c.Addr, true
		}
	}
	return netip.Addr{}, false
}

func TestNSRadvdSLAAC(t *testing.T) {
	nstest.Require(t, "radvd")
	p := nstest.Prefix()
	mn := mnNS(t, p+"mn")
	ar := nstest.New(t, p+"ar")
	ar.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	nstest.Veth(t, mn, "eth0", ar, "ar0")
	ar.Exec(t, "ip", "addr", "add", "2001:db8:1::1/64", "dev", "ar0", "nodad")
	arLL := linkLocal(t, ar, "ar0")

	w, _ := startNS(t, mn, &Config{})
	stopRadvd := radvd(t, ar, "ar0", "2001:db8:1::/64")
	s := waitState(t, w, "a SLAAC care-of address", func(s Snapshot) bool { _, ok := slaacIn(s, "eth0", foreign1); return ok })
	if len(s.CareOfs) != 1 || s.CareOfs[0].BID != 1 || s.CareOfs[0].HomeLink {
		t.Errorf("care-ofs %+v", s.CareOfs)
	}
	s = waitState(t, w, "the router seen", func(s Snapshot) bool {
		ifi, _ := s.Interface("eth0")
		return slices.Contains(ifi.Routers, arLL) && slices.Contains(ifi.Prefixes, foreign1) && ifi.Moves >= 1
	})
	eth0, _ := s.Interface("eth0")
	moves := eth0.Moves

	// Movement: the router now announces another prefix.
	stopRadvd()
	radvd(t, ar, "ar0", "2001:db8:2::/64")
	s = waitState(t, w, "the new prefix's address", func(s Snapshot) bool { _, ok := slaacIn(s, "eth0", foreign2); return ok })
	if len(s.CareOfs) != 1 || s.CareOfs[0].BID != 1 {
		t.Errorf("after the move: %+v (one BID per interface, the newest address)", s.CareOfs)
	}
	waitState(t, w, "movement counted", func(s Snapshot) bool {
		ifi, _ := s.Interface("eth0")
		return ifi.Moves > moves && slices.Contains(ifi.Prefixes, foreign2)
	})
}

// linkLocal waits for the usable link-local address of ifname.
func linkLocal(t *testing.T, ns *nstest.NS, ifname string) netip.Addr {
	t.Helper()
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out = ns.Exec(t, "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link", "-tentative")
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil {
				return p.Addr()
			}
		}
	}
	t.Fatalf("no link-local address on %s: %q", ifname, out)
	return netip.Addr{}
}

func TestNSHomeLinkByRA(t *testing.T) {
	nstest.Require(t, "radvd")
	p := nstest.Prefix()
	mn := mnNS(t, p+"mn")
	ha := nstest.New(t, p+"ha")
	other := nstest.New(t, p+"ar")
	ha.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	nstest.Veth(t, mn, "eth0", ha, "home0")
	nstest.Veth(t, mn, "eth1", other, "ar0")
	ha.Exec(t, "ip", "addr", "add", "2001:db8:aaaa::1/64", "dev", "home0", "nodad")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:5::10/64", "dev", "eth1", "nodad")
	// First without SLAAC on eth0: only the RA can tell the home link.
	mn.Exec(t, "sysctl", "-qw", "net.ipv6.conf.eth0.autoconf=0")

	w, _ := startNS(t, mn, &Config{HomeAddress: hoa, HomeAgent: haAddr})
	waitState(t, w, "the foreign care-of address", hasCareOfs("eth1 2001:db8:5::10 1 false"))
	radvd(t, ha, "home0", "2001:db8:aaaa::/64")
	s := waitState(t, w, "the home link by RA", hasCareOfs("eth1 2001:db8:5::10 1 false", "eth0 2001:db8:aaaa::100 2 true"))
	if ifi, _ := s.Interface("eth0"); !ifi.HomeLink || ifi.State != StateHome || !slices.Contains(ifi.Prefixes, homePfx) {
		t.Errorf("eth0 = %+v", ifi)
	}

	// SLAAC on: eth0 gets an address in the home prefix, which the entry
	// now carries (never as a care-of address).
	mn.Exec(t, "sysctl", "-qw", "net.ipv6.conf.eth0.autoconf=1")
	s = waitState(t, w, "the home-prefix address", func(s Snapshot) bool {
		c, ok := s.CareOf(2)
		return ok && c.HomeLink && homePfx.Contains(c.Addr) && c.Addr != hoa
	})
	if len(s.CareOfs) != 2 {
		t.Errorf("care-ofs %+v", s.CareOfs)
	}
}

// countingBackend counts the watcher's readings of the real kernel.
type countingBackend struct {
	backend
	reads atomic.Int64
}

func (c *countingBackend) read() ([]netlink.Link, []netlink.Addr, []int, error) {
	c.reads.Add(1)
	return c.backend.read()
}

func countingWatcher(t *testing.T, ns *nstest.NS, cfg *Config) (*Watcher, *countingBackend) {
	t.Helper()
	cfg.Logger = testLogger(t)
	cfg.NetNS = ns.Name
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBackend{}
	w.open = func() (backend, error) {
		b, err := w.openMonitor()
		cb.backend = b
		return cb, err
	}
	runWatcher(t, w)
	return w, cb
}

// A link flapping as fast as ip can flap it: a bounded number of reads,
// and once it settles the snapshot is what a fresh watcher sees.
func TestNSFlapping(t *testing.T) {
	nstest.Require(t)
	mn, peer := mnWithPeer(t)
	nstest.Veth(t, mn, "mn1", peer, "p1")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "mn0", "nodad")
	mn.Exec(t, "ip", "addr", "add", "2001:db8:2::10/64", "dev", "mn1", "nodad")
	w, cb := countingWatcher(t, mn, &Config{DisableRA: true})
	waitState(t, w, "start", hasCareOfs("mn0 2001:db8:1::10 1 false", "mn1 2001:db8:2::10 2 false"))

	// mn0 flaps administratively (the kernel reports that at once; carrier
	// changes it batches itself, about once a second), mn1 loses its
	// carrier for good, and mn0 ends up with its address again (admin
	// down removes IPv6 addresses).
	var batch strings.Builder
	for range 1000 {
		batch.WriteString("link set mn0 down\nlink set mn0 up\n")
	}
	batch.WriteString("address add 2001:db8:1::10/64 dev mn0 nodad\n")
	reads0 := cb.reads.Load()
	begin := time.Now()
	peer.Exec(t, "ip", "link", "set", "p1", "down")
	mn.Batch(t, batch.String())
	elapsed := time.Since(begin)
	s := waitState(t, w, "settled", hasCareOfs("mn0 2001:db8:1::10 1 false"))
	reads := cb.reads.Load() - reads0
	bound := int64(DefaultBurst) + int64(DefaultMaxRate*(time.Since(begin).Seconds())) + 2
	t.Logf("2001 changes in %v: %d reads (bound %d)", elapsed.Round(time.Millisecond), reads, bound)
	if reads > bound {
		t.Errorf("%d reads, bound %d", reads, bound)
	}

	// A fresh watcher's first read is the truth.
	fresh, _ := startNS(t, mn, &Config{DisableRA: true})
	f := waitState(t, fresh, "a fresh read", func(Snapshot) bool { return true })
	if !slices.Equal(careOfs(s), careOfs(f)) {
		t.Errorf("settled %v, fresh %v", careOfs(s), careOfs(f))
	}
	if len(s.Interfaces) != len(f.Interfaces) {
		t.Fatalf("settled %d interfaces, fresh %d", len(s.Interfaces), len(f.Interfaces))
	}
	for i := range f.Interfaces {
		a, b := s.Interfaces[i], f.Interfaces[i]
		if a.Name != b.Name || a.State != b.State || a.Up != b.Up || a.Carrier != b.Carrier || len(a.Addrs) != len(b.Addrs) {
			t.Errorf("settled %+v\nfresh %+v", a, b)
		}
	}
}

// A monitor whose socket overflows (ENOBUFS) subscribes again and reads
// everything, so nothing lost stays lost for the watcher either.
func TestNSOverflowResubscribes(t *testing.T) {
	nstest.Require(t)
	mn, _ := mnWithPeer(t)
	m, err := netmon.New(&netmon.Config{NetNS: mn.Name, RecvBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	// Far more events than the small socket takes, before anyone reads.
	mn.Batch(t, nstest.AddrScript("mn0", 400))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; m.Close() })
	w, _ := startNS(t, mn, &Config{DisableRA: true, Monitor: m})
	// The newest address is the care-of address.
	waitState(t, w, "everything read", hasCareOfs("mn0 2001:db8:1::190 1 false"))
	s, _ := w.Current()
	if ifi, _ := s.Interface("mn0"); len(ifi.Addrs) != 401 {
		t.Errorf("%d addresses, want 400 and the link-local", len(ifi.Addrs))
	}
}

// The latency from an address added (netlink, in the namespace) to the
// snapshot delivered: reported, not asserted.
func TestNSLatency(t *testing.T) {
	nstest.Require(t)
	mn, _ := mnWithPeer(t)
	w, _ := startNS(t, mn, &Config{BIDMode: BIDPerCoA, DisableRA: true, MaxRate: 1e6, Burst: 1e6})
	waitState(t, w, "start", func(s Snapshot) bool { _, ok := s.Interface("mn0"); return ok })
	for len(w.Updates()) > 0 {
		<-w.Updates()
	}
	h, err := netlink.NewHandleAt(mn.Handle(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("mn0")
	if err != nil {
		t.Fatal(err)
	}
	wait := func(pred func(Snapshot) bool) bool {
		timeout := time.After(5 * time.Second)
		for {
			select {
			case s := <-w.Updates():
				if pred(s) {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	const cycles = 50
	var lat []time.Duration
	for i := range cycles {
		ip := net.ParseIP(fmt.Sprintf("2001:db8:1::%x", i+1))
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		begin := time.Now()
		if err := h.AddrAdd(link, a); err != nil {
			t.Fatal(err)
		}
		if !wait(func(s Snapshot) bool { return len(s.CareOfs) == 1 && net.IP(s.CareOfs[0].Addr.AsSlice()).Equal(ip) }) {
			t.Fatalf("cycle %d: the address never came", i)
		}
		lat = append(lat, time.Since(begin))
		if err := h.AddrDel(link, a); err != nil {
			t.Fatal(err)
		}
		if !wait(func(s Snapshot) bool { return len(s.CareOfs) == 0 }) {
			t.Fatalf("cycle %d: the address never went", i)
		}
	}
	slices.Sort(lat)
	t.Logf("address added -> snapshot delivered over %d cycles (debounce %v): p50 %v, p99 %v, max %v",
		cycles, DefaultDebounce, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
}

// The watcher solicits routers from the link-local address when it starts
// listening on a link, and again when the link comes back. tcpdump on the
// router's side is the witness.
func TestNSRouterSolicitation(t *testing.T) {
	nstest.Require(t, "tcpdump")
	p := nstest.Prefix()
	mn := mnNS(t, p+"mn")
	ar := nstest.New(t, p+"ar")
	nstest.Veth(t, mn, "eth0", ar, "ar0")
	mnLL := linkLocal(t, mn, "eth0")
	mnMAC := strings.TrimSpace(mn.Exec(t, "cat", "/sys/class/net/eth0/address"))

	pr, pw := io.Pipe()
	td := ar.Command("tcpdump", "-l", "-n", "-v", "-i", "ar0", "icmp6 and ip6[40] == 133")
	td.Stdout, td.Stderr = pw, pw
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.Process.Kill(); td.Wait(); pw.Close() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(d time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(d):
			return "", false
		}
	}
	for {
		l, ok := next(5 * time.Second)
		if !ok {
			t.Fatal("tcpdump did not start")
		}
		if strings.Contains(l, "listening on") {
			break
		}
	}
	expectRS := func(what string) {
		t.Helper()
		// Sooner than the retransmission interval: this is the first.
		deadline := time.Now().Add(rtrSolicitationInterval / 2)
		for {
			l, ok := next(time.Until(deadline))
			if !ok {
				t.Fatalf("%s: no router solicitation from %v", what, mnLL)
			}
			if !strings.Contains(l, mnLL.String()+" > ff02::2") || !strings.Contains(l, "router solicitation") {
				continue
			}
			opt, _ := next(time.Second)
			if !strings.Contains(opt, "source link-address option") || !strings.Contains(opt, mnMAC) {
				t.Errorf("%s: %q, want the source link-layer address %s", what, opt, mnMAC)
			}
			return
		}
	}
	begin := time.Now()
	w, _ := startNS(t, mn, &Config{})
	expectRS("start")
	t.Logf("start: RS after %v", time.Since(begin))
	ar.Exec(t, "ip", "link", "set", "ar0", "down")
	waitState(t, w, "carrier loss", func(s Snapshot) bool { i, _ := s.Interface("eth0"); return i.State == StateNoCarrier })
	// Nothing while the link is down (the retransmissions stopped with the
	// listener).
	for len(lines) > 0 {
		<-lines
	}
	back := time.Now()
	ar.Exec(t, "ip", "link", "set", "ar0", "up")
	expectRS("carrier back")
	t.Logf("carrier back: RS after %v", time.Since(back))
}
