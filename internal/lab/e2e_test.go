package lab

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
)

// requireE2E skips without root and the lab's tools, and fails instead when
// MCOA_E2E=1.
func requireE2E(t *testing.T) { t.Helper(); nstest.Require(t, "radvd", "ping") }

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// upForTest builds a lab with a test prefix and tears it down in Cleanup,
// showing the logs if the test failed.
func upForTest(t *testing.T, ctx context.Context, cfg *Config) *Lab {
	t.Helper()
	cfg.Prefix = nstest.Prefix()
	cfg.Dir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(tlog{t}, nil))
	l, err := Up(ctx, cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.DumpLogs(tlog{t})
		}
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return l
}

func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// radvdsOf lists the live radvd processes started for the lab in dir.
func radvdsOf(t *testing.T, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == "radvd" && strings.Contains(string(cmdline), dir) {
			out = append(out, pid)
		}
	}
	return out
}

func waitCarrier(t *testing.T, ctx context.Context, l *Lab, iface string, want bool) LinkStatus {
	t.Helper()
	for {
		st, err := l.Link(ctx, MN, iface)
		if err != nil {
			t.Fatal(err)
		}
		if !st.NoCarrier() == want {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: carrier never became %v (flags %v, operstate %s)", iface, want, st.Flags, st.OperState)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestLab(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	start := time.Now()
	l := upForTest(t, ctx, &Config{})
	t.Logf("Up took %v until the MN had all three care-of addresses", time.Since(start).Round(time.Millisecond))
	dir := l.Dir

	// radvd writes its pid file once running (its privilege-separation
	// child is a second radvd process per link).
	for _, n := range []string{AR1, AR2, AR3, HA} {
		b, err := os.ReadFile(filepath.Join(dir, "radvd-"+n+".pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !alive(pid) || !containsInt(radvdsOf(t, dir), pid) {
			t.Errorf("radvd of %s not running (pid file: %q, %v)", n, b, err)
		}
	}
	for _, n := range Nodes {
		if !nsExists(l.NS(n)) {
			t.Errorf("namespace %s missing", l.NS(n))
		}
	}

	for _, a := range Accesses {
		for key, want := range map[string]string{"accept_ra": "2", "forwarding": "0", "accept_dad": "0"} {
			out, err := l.Exec(ctx, MN, "cat", "/proc/sys/net/ipv6/conf/"+a.Iface+"/"+key)
			if got := strings.TrimSpace(string(out)); err != nil || got != want {
				t.Errorf("mn %s %s = %q (%v), want %s", a.Iface, key, got, err, want)
			}
		}
	}
	if out, err := l.Exec(ctx, AR1, "cat", "/proc/sys/net/ipv6/conf/all/forwarding"); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("ar1 forwarding = %q (%v), want 1", out, err)
	}

	// Every MN interface has a SLAAC care-of address in its own prefix, and
	// reaches the HA and the CN through its own link.
	for _, a := range Accesses {
		coa, err := l.WaitCoA(ctx, a.Iface)
		if err != nil {
			t.Fatalf("%s: %v", a.Iface, err)
		}
		if !a.Prefix.Contains(coa) {
			t.Errorf("%s: CoA %s outside %s", a.Iface, coa, a.Prefix)
		}
		t.Logf("%s: CoA %s", a.Iface, coa)
		if err := l.PingFrom(ctx, MN, coa.String(), HAAddr); err != nil {
			t.Errorf("from %s to the HA: %v", coa, err)
		}
		if err := l.PingFrom(ctx, MN, a.Iface, CNAddr); err != nil {
			t.Errorf("via %s to the CN: %v", a.Iface, err)
		}
	}
	if err := l.Ping(ctx, CN, HAAddr); err != nil {
		t.Errorf("CN to HA: %v", err)
	}

	t.Logf("pings done at %v", time.Since(start).Round(time.Millisecond))
	// CutLink: eth0 loses carrier and no longer carries traffic; wlan0 still does.
	if err := l.CutLink("eth0"); err != nil {
		t.Fatal(err)
	}
	st := waitCarrier(t, ctx, l, "eth0", false)
	if st.OperState == "UP" {
		t.Errorf("eth0 after CutLink: operstate %s, flags %v", st.OperState, st.Flags)
	}
	out, err := l.Exec(ctx, MN, "ip", "link", "show", "eth0")
	if err != nil || !strings.Contains(string(out), "NO-CARRIER") {
		t.Errorf("ip link show eth0 after CutLink: %v\n%s", err, out)
	}
	short, cancelShort := context.WithTimeout(ctx, 1500*time.Millisecond)
	if err := l.PingFrom(short, MN, "eth0", HAAddr); err == nil {
		t.Errorf("ping via eth0 works with its link cut")
	}
	cancelShort()
	if err := l.PingFrom(ctx, MN, "wlan0", HAAddr); err != nil {
		t.Errorf("via wlan0 with eth0 cut: %v", err)
	}

	// RestoreLink brings it back.
	if err := l.RestoreLink("eth0"); err != nil {
		t.Fatal(err)
	}
	st = waitCarrier(t, ctx, l, "eth0", true)
	if st.OperState != "UP" {
		t.Errorf("eth0 after RestoreLink: operstate %s", st.OperState)
	}
	if err := l.PingFrom(ctx, MN, "eth0", HAAddr); err != nil {
		t.Errorf("via eth0 after RestoreLink: %v", err)
	}

	t.Logf("cut and restore done at %v", time.Since(start).Round(time.Millisecond))
	// AttachHome: eth0 moves to the home link and gets a home address by
	// SLAAC from the HA's Router Advertisements.
	mnLinkBefore, _ := l.Exec(ctx, MN, "cat", "/sys/class/net/eth0/ifindex")
	moved := time.Now()
	if err := l.AttachHome("eth0"); err != nil {
		t.Fatal(err)
	}
	if node, port, err := l.PeerOf(ctx, "eth0"); err != nil || node != HA || port != "heth0" {
		t.Errorf("PeerOf(eth0) at home = %s %s %v", node, port, err)
	}
	if err := l.AttachHome("eth0"); err != nil {
		t.Errorf("second AttachHome: %v", err)
	}
	home, err := l.WaitCoA(ctx, "eth0")
	if err != nil {
		t.Fatalf("eth0 at home: %v", err)
	}
	if !HomePrefix.Contains(home) {
		t.Errorf("eth0 at home: address %s outside %s", home, HomePrefix)
	}
	t.Logf("eth0 at home: %s, %v after AttachHome", home, time.Since(moved).Round(time.Millisecond))
	if err := l.PingFrom(ctx, MN, "eth0", HAAddr); err != nil {
		t.Errorf("on the home link to the HA: %v", err)
	}
	if mnLinkAfter, _ := l.Exec(ctx, MN, "cat", "/sys/class/net/eth0/ifindex"); string(mnLinkAfter) != string(mnLinkBefore) {
		t.Errorf("eth0's ifindex changed across the move: %q -> %q", mnLinkBefore, mnLinkAfter)
	}

	// DetachHome: back to ar1. The MN's addresses are flushed first so the
	// one found afterwards must come from ar1's Router Advertisements.
	if _, err := l.Exec(ctx, MN, "ip", "-6", "addr", "flush", "dev", "eth0", "scope", "global"); err != nil {
		t.Fatal(err)
	}
	moved = time.Now()
	if err := l.DetachHome("eth0"); err != nil {
		t.Fatal(err)
	}
	if node, port, err := l.PeerOf(ctx, "eth0"); err != nil || node != AR1 || port != RouterDownlink {
		t.Errorf("PeerOf(eth0) after DetachHome = %s %s %v", node, port, err)
	}
	if err := l.DetachHome("eth0"); err != nil {
		t.Errorf("second DetachHome: %v", err)
	}
	back, err := l.WaitCoA(ctx, "eth0")
	if err != nil {
		t.Fatalf("eth0 back at ar1: %v", err)
	}
	t.Logf("eth0 back at ar1: %s, %v after DetachHome", back, time.Since(moved).Round(time.Millisecond))
	if !Accesses[0].Prefix.Contains(back) {
		t.Errorf("eth0 back at ar1: address %s outside %s", back, Accesses[0].Prefix)
	}
	if err := l.PingFrom(ctx, MN, "eth0", CNAddr); err != nil {
		t.Errorf("via eth0 after DetachHome: %v", err)
	}

	// A process started in a node runs in that node's namespace until Down.
	p, err := l.Start(CN, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	for {
		// `ip netns exec` enters the namespace just after Start returns.
		pids, err := pidsInNamespaces([]string{l.NS(CN)})
		if err == nil && containsInt(pids, p.Pid) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("started pid %d never in %s (%v, %v)", p.Pid, l.NS(CN), pids, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Down leaves no namespace and no process, and may be called again.
	downStart := time.Now()
	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	t.Logf("Down took %v", time.Since(downStart).Round(time.Millisecond))
	if ns := labNamespaces(t, l.Prefix); len(ns) != 0 {
		t.Errorf("namespaces left after Down: %v", ns)
	}
	if r := radvdsOf(t, dir); len(r) != 0 {
		t.Errorf("radvd processes left after Down: %v", r)
	}
	if p.Running() || alive(p.Pid) {
		t.Errorf("started process %d survived Down", p.Pid)
	}
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// cancelOn cancels a context when a given message is logged.
type cancelOn struct {
	slog.Handler
	msg    string
	cancel context.CancelFunc
}

func (h cancelOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.cancel()
	}
	return h.Handler.Handle(ctx, r)
}

// An interrupted Up (SIGINT in mcoa-lab) tears down what it had built,
// radvd included.
func TestUpCancelledCleansUp(t *testing.T) {
	requireE2E(t)
	prefix := nstest.Prefix()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel once the network is built: radvd starts, then Up notices.
	log := slog.New(cancelOn{slog.NewTextHandler(tlog{t}, nil), "lab network built", cancel})
	l, err := Up(ctx, &Config{Prefix: prefix, Dir: dir, Logger: log})
	if err == nil {
		l.Down()
		t.Fatal("Up succeeded with its context cancelled")
	}
	t.Logf("Up: %v", err)
	if ns := labNamespaces(t, prefix); len(ns) != 0 {
		t.Errorf("namespaces left after a cancelled Up: %v", ns)
	}
	if r := radvdsOf(t, dir); len(r) != 0 {
		t.Errorf("radvd left after a cancelled Up: %v", r)
	}
	if logs, _ := filepath.Glob(filepath.Join(dir, "*radvd*.log")); len(logs) == 0 {
		t.Errorf("radvd was never started, so teardown of processes went untested")
	}
}

// Up refuses a prefix that is in use and leaves the other lab alone.
func TestUpRefusesExistingNamespace(t *testing.T) {
	requireE2E(t)
	prefix := nstest.Prefix()
	other := nstest.New(t, prefix+CN)
	if _, err := Up(t.Context(), &Config{Prefix: prefix, Dir: t.TempDir()}); err == nil {
		t.Fatal("Up over an existing namespace succeeded")
	}
	if !nsExists(other.Name) {
		t.Errorf("Up deleted the namespace it found")
	}
	for _, n := range Nodes[:len(Nodes)-1] {
		if nsExists(prefix + n) {
			t.Errorf("Up left %s behind", prefix+n)
		}
	}
}
