package nm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/mcoad/mcoad/pkg/nm/nmtest"
)

// recorder collects the Watcher's callbacks as lines.
type recorder chan string

func (r recorder) hint(kind, iface string)       { r <- "hint " + kind + " " + iface }
func (r recorder) metered(iface string, on bool) { r <- fmt.Sprintf("metered %s %v", iface, on) }

// expect checks that the next callbacks are want, in order.
func (r recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-r:
			if got != w {
				t.Fatalf("callback %q, want %q", got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no callback, want %q", w)
		}
	}
}

// barrier makes NetworkManager signal a connectivity change and expects
// it as the next callback: whatever the steps before should have caused
// came before it, and nothing else did.
func (r recorder) barrier(t *testing.T, f *nmtest.NetworkManager, n *uint32) {
	t.Helper()
	*n++
	f.SetConnectivity(*n)
	r.expect(t, "hint connectivity ")
}

func startWatcher(t *testing.T, addr string, rec recorder, logs *syncBuffer) *Watcher {
	t.Helper()
	conn := connect(t, addr)
	w, err := NewWatcher(WatcherConfig{Conn: conn, Hint: rec.hint, Metered: rec.metered, RetryInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watcher.Run: %v", err)
		}
		t.Logf("watcher log:\n%s", logs.String())
	})
	return w
}

func TestWatcherFollowsNetworkManager(t *testing.T) {
	addr := startBus(t, "", openBusConfig)
	rec := make(recorder, 64)
	var logs syncBuffer
	w := startWatcher(t, addr, rec, &logs)
	eventually(t, "the watcher to start", func() bool { return strings.Contains(logs.String(), "NetworkManager not running") })
	if w.Running() {
		t.Errorf("Running with no NetworkManager")
	}

	// NetworkManager starts: the modem's IP interface is metered (a
	// guess, as NetworkManager makes for modems).
	f := nmtest.StartNetworkManager(t, addr,
		nmtest.Device{Path: nmtest.DevicePath(1), Interface: "eth0", State: uint32(DeviceActivated), Metered: uint32(MeteredNo)},
		nmtest.Device{Path: nmtest.DevicePath(2), Interface: "cdc-wdm0", IPInterface: "wwan0", State: uint32(DeviceActivated), Metered: uint32(MeteredGuessYes)},
		nmtest.Device{Path: nmtest.DevicePath(3), Interface: "wlan0", State: uint32(DeviceDisconnected)},
	)
	rec.expect(t, "metered wwan0 true")
	eventually(t, "Running", w.Running)
	var conn uint32 = 4
	rec.barrier(t, f, &conn)

	f.SetMetered(nmtest.DevicePath(1), uint32(MeteredYes))
	rec.expect(t, "metered eth0 true")
	// StateChanged and the State property both say it: one hint.
	f.SetState(nmtest.DevicePath(1), uint32(DeviceDisconnected))
	rec.expect(t, "hint down eth0")
	rec.barrier(t, f, &conn)
	f.SetState(nmtest.DevicePath(1), uint32(DeviceActivated))
	rec.expect(t, "hint up eth0")
	// Steps that do not cross "activated" are no hint.
	f.SetState(nmtest.DevicePath(3), uint32(DevicePrepare))
	f.SetState(nmtest.DevicePath(3), uint32(DeviceIPConfig))
	rec.barrier(t, f, &conn)

	// A device's own IPv6 connectivity (a captive portal) is a hint for
	// its interface; one that is not activated says nothing.
	f.SetIp6Connectivity(nmtest.DevicePath(1), 2)
	rec.expect(t, "hint connectivity eth0")
	f.SetIp6Connectivity(nmtest.DevicePath(3), 2)
	rec.barrier(t, f, &conn)

	// Someone else imitating NetworkManager is not listened to.
	impostor := connect(t, addr)
	impostor.Emit(nmtest.DevicePath(1), NMDeviceInterface+".StateChanged", uint32(DeviceFailed), uint32(DeviceActivated), uint32(0))
	impostor.Emit(nmtest.DevicePath(1), propsInterface+"."+propsChanged, NMDeviceInterface,
		map[string]dbus.Variant{"Metered": dbus.MakeVariant(uint32(MeteredNo))}, []string{})
	rec.barrier(t, f, &conn)

	// A modem's IP interface is renamed: the mark moves with it.
	f.SetIPInterface(nmtest.DevicePath(2), "wwan1")
	rec.expect(t, "metered wwan0 false", "metered wwan1 true")

	// Devices come and go.
	f.AddDevice(nmtest.Device{Path: nmtest.DevicePath(4), Interface: "usb0", State: uint32(DeviceActivated), Metered: uint32(MeteredYes)})
	rec.expect(t, "hint up usb0", "metered usb0 true")
	f.RemoveDevice(nmtest.DevicePath(4))
	rec.expect(t, "hint down usb0", "metered usb0 false")
	rec.barrier(t, f, &conn)

	devs := w.Devices()
	var got []string
	for _, d := range devs {
		got = append(got, fmt.Sprintf("%s %s %v", d.Name, d.State, d.Metered.IsMetered()))
	}
	if want := "eth0 activated true,wlan0 ip-config false,wwan1 activated true"; strings.Join(got, ",") != want {
		t.Errorf("Devices %q, want %q", got, want)
	}

	// NetworkManager restarts. While it is away nothing changes (the
	// marks stay); the new one numbers its devices anew and has changed
	// its mind about eth0 and wlan0.
	f.Stop()
	eventually(t, "NetworkManager to be seen gone", func() bool { return !w.Running() })
	f2 := nmtest.StartNetworkManager(t, addr,
		nmtest.Device{Path: nmtest.DevicePath(1), Interface: "cdc-wdm0", IPInterface: "wwan1", State: uint32(DeviceActivated), Metered: uint32(MeteredYes)},
		nmtest.Device{Path: nmtest.DevicePath(2), Interface: "eth0", State: uint32(DeviceActivated), Metered: uint32(MeteredNo)},
		nmtest.Device{Path: nmtest.DevicePath(3), Interface: "wlan0", State: uint32(DeviceActivated), Metered: uint32(MeteredGuessYes)},
	)
	rec.expect(t, "metered eth0 false", "metered wlan0 true")
	rec.barrier(t, f2, &conn)
	// And it is followed as the first was.
	f2.SetState(nmtest.DevicePath(2), uint32(DeviceDeactivating))
	rec.expect(t, "hint down eth0")
	f2.SetMetered(nmtest.DevicePath(1), uint32(MeteredNo))
	rec.expect(t, "metered wwan1 false")
	rec.barrier(t, f2, &conn)

	l := logs.String()
	if n := strings.Count(l, "NetworkManager not running"); n != 1 {
		t.Errorf("said %d times that NetworkManager is not running", n)
	}
	if !strings.Contains(l, "NetworkManager stopped") || strings.Count(l, "NetworkManager started") != 2 {
		t.Errorf("log does not follow NetworkManager's comings and goings:\n%s", l)
	}
}

func TestWatcherNetworkManagerAlreadyRunning(t *testing.T) {
	addr := startBus(t, "", openBusConfig)
	f := nmtest.StartNetworkManager(t, addr,
		nmtest.Device{Path: nmtest.DevicePath(7), Interface: "wwan0", State: uint32(DeviceActivated), Metered: uint32(MeteredYes)},
		nmtest.Device{Path: nmtest.DevicePath(8), Interface: "eth0", State: uint32(DeviceActivated), Metered: uint32(MeteredGuessNo)},
	)
	rec := make(recorder, 64)
	var logs syncBuffer
	w := startWatcher(t, addr, rec, &logs)
	// The first read reports the metered link and no hints: the daemon
	// reads the kernel when it starts anyway.
	rec.expect(t, "metered wwan0 true")
	var conn uint32 = 4
	rec.barrier(t, f, &conn)
	if !w.Running() || len(w.Devices()) != 2 {
		t.Errorf("Running %v, devices %v", w.Running(), w.Devices())
	}
	if strings.Contains(logs.String(), "not running") {
		t.Errorf("said NetworkManager is not running:\n%s", logs.String())
	}
}

func TestWatcherConnectionClosed(t *testing.T) {
	addr := startBus(t, "", openBusConfig)
	conn, err := Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(WatcherConfig{Conn: conn, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	// Closed before or after Run subscribes: an error either way, for
	// the caller to connect again.
	conn.Close()
	if err := <-done; err == nil {
		t.Errorf("Run after the connection closed: no error")
	}
	if _, err := NewWatcher(WatcherConfig{}); err == nil {
		t.Errorf("NewWatcher without a connection: no error")
	}
}

func TestStatesAndMetered(t *testing.T) {
	if DeviceActivated.String() != "activated" || DeviceState(5).String() != "state-5" {
		t.Errorf("state names %q %q", DeviceActivated, DeviceState(5))
	}
	for m, want := range map[Metered]bool{MeteredUnknown: false, MeteredYes: true, MeteredNo: false, MeteredGuessYes: true, MeteredGuessNo: false} {
		if m.IsMetered() != want {
			t.Errorf("Metered(%d).IsMetered() = %v", m, !want)
		}
	}
}

// The fake must speak NetworkManager's names as the Watcher knows them.
func TestFakeUsesTheSameNames(t *testing.T) {
	if nmtest.NMBusName != NMBusName || nmtest.NMPath != NMPath || nmtest.NMInterface != NMInterface || nmtest.NMDeviceInterface != NMDeviceInterface {
		t.Errorf("nmtest and nm disagree on NetworkManager's names")
	}
}
