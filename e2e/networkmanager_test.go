package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	nmapi "github.com/mcoad/mcoad/pkg/nm"
)

// The dispatcher hook the .deb installs.
const nmHook = "../packaging/deb/root/usr/lib/NetworkManager/dispatcher.d/90-mcoad"

// meteredPriority is eth0's priority while NetworkManager says it is
// metered.
const meteredPriority = 5

// TestNetworkManager runs a real NetworkManager in the MN's namespace
// (lab.StartNetworkManager: its own bus, directories and mount namespace),
// managing eth0, wlan0 and wwan0, with the .deb's dispatcher hook, and
// mcoad following it on that bus: nmcli makes eth0's connection metered
// (mcoad lowers its priority to its metered_priority and registers that),
// then disconnects wlan0 (NetworkManager removes its addresses, mcoad
// removes its binding, and the hook tells mcoad through `mcoactl hint`),
// then puts both back.
func TestNetworkManager(t *testing.T) {
	if err := lab.CheckNetworkManager(); err != nil {
		if nstest.Required() {
			t.Fatalf("MCOA_E2E=1 but %v (scripts/deps.sh installs network-manager)", err)
		}
		t.Skip(err)
	}
	e := setup(t, opts{
		noMN:    true,
		timeout: 3 * time.Minute,
		mn: lab.MNConfig{
			// The rules come with metered_priority, in Extra.
			Interfaces: []lab.InterfaceRule{},
			Extra: fmt.Sprintf(`
[[interface]]
match = "eth*"
priority = %d
metered_priority = %d

[[interface]]
match = "wlan*"
priority = %d

[[interface]]
match = "wwan*"
priority = %d
`, priority["eth0"], meteredPriority, priority["wlan0"], priority["wwan0"]),
		},
	})

	// The hook as shipped, told where mcoactl is: nm-dispatcher gives its
	// scripts an environment of its own, so the hook's variable is set in
	// the script. mcoactl is wrapped to reach the lab's mcoad and to
	// record each call.
	hook, err := os.ReadFile(nmHook)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hints := filepath.Join(dir, "hints")
	wrapper := filepath.Join(dir, "mcoactl")
	sock := filepath.Join(e.lab.RunDir(), "mcoad.sock")
	if err := os.WriteFile(wrapper, fmt.Appendf(nil, `#!/bin/sh
%q -socket %q "$@"
rc=$?
echo "$* rc=$rc" >>%q
exit $rc
`, bins.ctl, sock, hints), 0o755); err != nil {
		t.Fatal(err)
	}
	shebang, rest, _ := strings.Cut(string(hook), "\n")
	hookText := shebang + "\nMCOA_DISPATCH_MCOACTL=" + wrapper + " # the lab's\n" + rest

	start := time.Now()
	nm, err := e.lab.StartNetworkManager(e.ctx, &lab.NMConfig{Dispatcher: map[string]string{"90-mcoad": hookText}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NetworkManager manages %v in %v", ifaces, time.Since(start).Round(time.Millisecond))
	nmcli := func(args ...string) string {
		t.Helper()
		out, err := nm.Nmcli(e.ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	t.Logf("nmcli device:\n%s", nmcli("device"))

	// NetworkManager now does SLAAC itself (accept_ra 0), with the
	// kernel's EUI-64 interface identifiers: the same care-of addresses.
	for _, n := range ifaces {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		a, err := e.lab.WaitCoA(ctx, n)
		cancel()
		if err != nil {
			t.Fatalf("%s's care-of address under NetworkManager: %v", n, err)
		}
		if a != e.coas[n] {
			t.Logf("%s: care-of address %s under NetworkManager (the kernel's was %s)", n, a, e.coas[n])
			e.coas[n] = a
		}
	}
	if out, err := e.lab.Exec(e.ctx, lab.MN, "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra"); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("eth0's accept_ra under NetworkManager: %q %v, want 0 (NetworkManager's own SLAAC)", out, err)
	}

	// mcoad on NetworkManager's bus.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", nm.Bus)
	e.startMN()
	e.waitFor("all three registered", 20*time.Second, func() error { return e.nmRegistered(ifaces...) })
	e.waitFor("mcoad follows NetworkManager", 5*time.Second, func() error { return e.followsNM(nm.Bus) })

	// eth0's connection metered.
	nmcli("connection", "modify", "mcoa-eth0", "connection.metered", "yes")
	e.prio["eth0"] = meteredPriority
	e.waitFor("eth0 metered, its priority lowered", 10*time.Second, func() error { return e.nmIface("eth0", true, meteredPriority) })
	e.waitFor("eth0's lower priority registered", 10*time.Second, func() error { return e.nmRegistered(ifaces...) })
	var js []struct {
		Name     string `json:"name"`
		Priority uint8  `json:"priority"`
		Metered  bool   `json:"metered"`
	}
	decodeJSON(t, e.mcoactl(e.mn, "--json", "interfaces"), &js)
	for _, i := range js {
		if want := i.Name == "eth0"; i.Metered != want || (i.Name == "eth0" && i.Priority != meteredPriority) {
			t.Errorf("mcoactl interfaces: %+v (only eth0 metered, priority %d)", i, meteredPriority)
		}
	}
	t.Logf("mcoactl interfaces:\n%s", e.mcoactl(e.mn, "interfaces"))

	// wlan0 disconnected: NetworkManager removes its addresses, mcoad its
	// binding, and the hook says so.
	nmcli("device", "disconnect", "wlan0")
	e.waitFor("wlan0's binding removed", 10*time.Second, func() error { return e.nmRegistered("eth0", "wwan0") })
	e.waitFor("the dispatcher hook's `mcoactl hint down wlan0`", 10*time.Second, func() error {
		return hinted(hints, "hint down wlan0 rc=0")
	})
	t.Logf("nmcli device:\n%s", nmcli("device"))

	// And back: wlan0 connected again, eth0 no longer metered.
	nmcli("--wait", "20", "device", "connect", "wlan0")
	nmcli("connection", "modify", "mcoa-eth0", "connection.metered", "no")
	e.prio["eth0"] = priority["eth0"]
	e.waitFor("eth0 unmetered", 10*time.Second, func() error { return e.nmIface("eth0", false, priority["eth0"]) })
	e.waitFor("wlan0 registered again", 20*time.Second, func() error { return e.nmRegistered(ifaces...) })
	e.waitFor("the dispatcher hook's `mcoactl hint up wlan0`", 10*time.Second, func() error {
		return hinted(hints, "hint up wlan0 rc=0")
	})
	b, _ := os.ReadFile(hints)
	t.Logf("the dispatcher hook's mcoactl calls:\n%s", b)
}

// nmIface checks mcoad's view (GET /v1/interfaces) of one interface.
func (e *env) nmIface(name string, metered bool, prio uint8) error {
	is, err := e.interfaces()
	if err != nil {
		return err
	}
	i, ok := is[name]
	if !ok {
		return fmt.Errorf("mcoad does not list %s", name)
	}
	if i.Metered != metered || i.Priority != prio {
		return fmt.Errorf("%s is %+v, want metered %v priority %d", name, i, metered, prio)
	}
	return nil
}

// nmRegistered checks that mcoad has exactly want registered with the home
// agent, with their care-of addresses and priorities (e.prio), and that
// the home agent's cache holds the same.
func (e *env) nmRegistered(want ...string) error {
	if len(e.bids) == 0 {
		if err := e.learnBIDs(); err != nil {
			return err
		}
	}
	if err := e.registered(want...); err != nil {
		return err
	}
	return e.cacheIs(want...)
}

// followsNM checks on NetworkManager's bus that a connection of mcoad's
// process has subscribed to NetworkManager's signals (a match rule for
// their sender, as the bus daemon's statistics list them): the D-Bus
// fact of mcoad following NetworkManager.
func (e *env) followsNM(bus string) error {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	conn, err := dbus.Connect(bus, dbus.WithContext(ctx))
	if err != nil {
		return err
	}
	defer conn.Close()
	var rules map[string][]string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.Debug.Stats.GetAllMatchRules", 0).Store(&rules); err != nil {
		return fmt.Errorf("the bus's match rules: %w", err)
	}
	pid := e.mn.Proc().Pid
	var seen []string
	for name, rs := range rules {
		var p uint32
		if conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, name).Store(&p) != nil || int(p) != pid {
			continue
		}
		for _, r := range rs {
			if strings.Contains(r, "sender='"+nmapi.NMBusName+"'") {
				return nil
			}
		}
		seen = append(seen, rs...)
	}
	return fmt.Errorf("mcoad (pid %d) has no match rule for %s's signals; its rules: %q", pid, nmapi.NMBusName, seen)
}

// hinted checks that the hook's mcoactl wrapper recorded line.
func hinted(file, line string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !slices.Contains(strings.Split(string(b), "\n"), line) {
		return fmt.Errorf("no %q in %q", line, b)
	}
	return nil
}
