package mn

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/nm"
	"github.com/mcoad/mcoad/pkg/nm/nmtest"
)

const (
	nmActivated    = 100
	nmDisconnected = 30
	nmMeteredYes   = 1
	nmMeteredNo    = 2
)

// mcoad on a private bus with a fake NetworkManager: metered links lose
// priority where the configuration says so, device changes make the
// watcher look again, the D-Bus methods reach the daemon, and binding
// changes are signalled.
func TestDaemonOnDBus(t *testing.T) {
	nmtest.NeedTools(t, "busctl")
	addr := nmtest.StartBus(t, "", "")
	f := nmtest.StartNetworkManager(t, addr,
		nmtest.Device{Path: nmtest.DevicePath(1), Interface: "eth0", State: nmActivated, Metered: nmMeteredNo},
		nmtest.Device{Path: nmtest.DevicePath(2), Interface: "cdc-wdm0", IPInterface: "wwan0", State: nmActivated, Metered: nmMeteredYes},
	)
	d := newTestDaemon(t, defaultRules)
	d.deps.DBusAddress = addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.runDBus(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runDBus: %v", err)
		}
	})

	// wwan0 is metered and its rule says metered_priority = 2.
	d.waitPriority(t, "wwan0", 2)
	if p, _, _ := d.priority("eth0"); p != 30 {
		t.Errorf("eth0 priority %d", p)
	}

	// eth0's rule has no metered_priority: metered or not, it keeps 30.
	f.SetMetered(nmtest.DevicePath(1), nmMeteredYes)
	f.SetMetered(nmtest.DevicePath(2), nmMeteredNo)
	d.waitPriority(t, "wwan0", 10) // after eth0's change: signals keep their order
	if p, _, _ := d.priority("eth0"); p != 30 {
		t.Errorf("eth0 priority %d: lowered without metered_priority", p)
	}

	// A reload that gives eth0 a metered priority applies to the metered
	// state NetworkManager already reported. (The interface watcher has
	// one cap for all metered links, set at start from the lowest
	// metered_priority: 2 here.)
	dir := d.path[:strings.LastIndex(d.path, "/")]
	d.rewrite(t, testConfig(dir, strings.Replace(defaultRules, "priority = 30", "priority = 30\nmetered_priority = 3", 1)))
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	d.waitPriority(t, "eth0", 2)

	// NetworkManager brings up wlan0: its hint makes the watcher read the
	// kernel (which, faked, reports nothing unless asked to).
	d.kernel.addLink(4, "wlan0", "2001:db8:2::4/64")
	f.AddDevice(nmtest.Device{Path: nmtest.DevicePath(3), Interface: "wlan0", State: nmDisconnected, Metered: nmMeteredNo})
	f.SetState(nmtest.DevicePath(3), nmActivated)
	d.waitPriority(t, "wlan0", 20)

	// The D-Bus methods reach the daemon.
	_, bid, _ := d.priority("wlan0")
	out, err := exec.Command("busctl", "--address="+addr, "call", nm.BusName, string(nm.ObjectPath), nm.Interface,
		"SetPriority", "qy", strconv.Itoa(int(bid)), "7").CombinedOutput()
	if err != nil {
		t.Fatalf("busctl SetPriority: %v: %s", err, out)
	}
	d.waitPriority(t, "wlan0", 7)
	out, err = exec.Command("busctl", "--address="+addr, "call", nm.BusName, string(nm.ObjectPath), nm.Interface,
		"SetPriority", "qy", "999", "7").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "999") {
		t.Errorf("SetPriority of an unknown BID: %v: %s", err, out)
	}

	// A binding change inside the daemon is a signal on the bus.
	client, err := nm.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.AddMatchSignal(dbus.WithMatchInterface(nm.Interface), dbus.WithMatchMember("BindingChanged")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 8)
	client.Signal(sigs)
	d.onEngineChange(bul.Event{Type: bul.EventBinding, Binding: &bul.Entry{
		Peer: netip.MustParseAddr("2001:db8:aaaa::1"), Role: "ha", BID: bid, Interface: "wlan0",
		CoA: netip.MustParseAddr("2001:db8:2::4"), Priority: 7, State: bul.StateRegistered, LastStatus: 0,
	}})
	sig := <-sigs
	var (
		sbid    uint16
		state   string
		removed bool
		js      string
	)
	if err := dbus.Store(sig.Body, &sbid, &state, &removed, &js); err != nil {
		t.Fatal(err)
	}
	var b control.Binding
	if err := json.Unmarshal([]byte(js), &b); err != nil || sbid != bid || state != string(bul.StateRegistered) || b.CoA.String() != "2001:db8:2::4" || b.LastStatusText == "" {
		t.Errorf("BindingChanged(%d, %q, %v, %s)", sbid, state, removed, js)
	}
}

// Without a bus mcoad says so once and carries on; NoDBus keeps it quiet.
func TestDaemonWithoutDBus(t *testing.T) {
	d := newTestDaemon(t, defaultRules)
	d.deps.DBusAddress = NoDBus
	if err := d.runDBus(context.Background()); err != nil {
		t.Errorf("runDBus with NoDBus: %v", err)
	}
	d.deps.DBusAddress = "unix:path=" + t.TempDir() + "/no-bus-here"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.runDBus(ctx) }()
	eventually(t, "the log to say D-Bus is not available", func() bool {
		return strings.Contains(d.logs.String(), "D-Bus not available")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runDBus: %v", err)
	}
	if n := strings.Count(d.logs.String(), "D-Bus not available"); n != 1 {
		t.Errorf("said %d times that D-Bus is not available", n)
	}
}

func TestMeteredRules(t *testing.T) {
	rules := []config.Interface{
		{Match: "eth*", Priority: 30, MeteredPriority: 30},
		{Match: "wwan*", Priority: 10, MeteredPriority: 2},
		{Match: "usb*", Priority: 20, MeteredPriority: 5},
		{Match: "tun*", Exclude: true},
		{Match: "*", Priority: 1, MeteredPriority: 1},
	}
	for name, want := range map[string]bool{"eth0": false, "wwan0": true, "usb1": true, "tun0": false, "wlan0": false} {
		if got := lowersWhenMetered(rules, name); got != want {
			t.Errorf("lowersWhenMetered(%s) = %v", name, got)
		}
	}
	if c := meteredCap(rules); c != 2 {
		t.Errorf("meteredCap = %d, want 2", c)
	}
	if c := meteredCap(rules[:1]); c != 0 {
		t.Errorf("meteredCap without metered_priority = %d, want 0 (the watcher's default)", c)
	}
}
