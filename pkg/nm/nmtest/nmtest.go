// Package nmtest runs what tests of D-Bus code need: a private dbus-daemon,
// and a fake NetworkManager on it that exports devices with the documented
// properties and emits NetworkManager's signals.
package nmtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
)

// NetworkManager's names (https://networkmanager.dev/docs/api/latest/).
const (
	NMBusName         = "org.freedesktop.NetworkManager"
	NMPath            = dbus.ObjectPath("/org/freedesktop/NetworkManager")
	NMInterface       = "org.freedesktop.NetworkManager"
	NMDeviceInterface = "org.freedesktop.NetworkManager.Device"

	propsInterface = "org.freedesktop.DBus.Properties"
)

// RequireE2E skips the test (why), or fails it when MCOA_E2E=1 demands
// that everything runs.
func RequireE2E(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("MCOA_E2E") == "1" {
		t.Fatalf("MCOA_E2E=1 but %s", why)
	}
	t.Skip(why)
}

// NeedTools skips (or with MCOA_E2E=1 fails) when a tool is missing.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			RequireE2E(t, tool+" is not installed")
		}
	}
}

// OpenBusConfig is a session-like bus configuration that lets anyone do
// anything; %s is the socket path.
const OpenBusConfig = openBusHead + "session" + openBusTail

// OpenSystemBusConfig is OpenBusConfig as a system bus (what
// NetworkManager and its dispatcher ask for).
const OpenSystemBusConfig = openBusHead + "system" + openBusTail

const (
	openBusHead = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>`
	openBusTail = `</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`
)

// StartBus starts a private dbus-daemon with config (a format string that
// takes the socket path; OpenBusConfig when empty) in dir (a new temporary
// directory when empty), and returns its address. It is stopped in
// t.Cleanup.
func StartBus(t testing.TB, dir, config string) string {
	t.Helper()
	NeedTools(t, "dbus-daemon")
	if dir == "" {
		dir = t.TempDir()
	}
	if config == "" {
		config = OpenBusConfig
	}
	cfgPath := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(config, filepath.Join(dir, "bus"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+cfgPath, "--print-address=1", "--nofork", "--nopidfile")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: no address (%v): %s", err, stderr.String())
	}
	go io.Copy(io.Discard, out)
	return strings.TrimSpace(line)
}

// Device is one device of the fake NetworkManager; State and Metered take
// NMDeviceState and NMMetered values.
type Device struct {
	Path        dbus.ObjectPath
	Interface   string
	IPInterface string
	State       uint32
	Metered     uint32
}

func (d *Device) props() map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"Interface":   dbus.MakeVariant(d.Interface),
		"IpInterface": dbus.MakeVariant(d.IPInterface),
		"State":       dbus.MakeVariant(d.State),
		"Metered":     dbus.MakeVariant(d.Metered),
		"DeviceType":  dbus.MakeVariant(uint32(1)),
		"Managed":     dbus.MakeVariant(true),
	}
}

// DevicePath is the object path NetworkManager gives its n-th device.
func DevicePath(n int) dbus.ObjectPath {
	return dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/NetworkManager/Devices/%d", n))
}

// NetworkManager plays NetworkManager on a bus: it owns its name, answers
// GetDevices and the Properties of its main object (Connectivity) and of
// each device (Interface, IpInterface, State, Metered), and emits
// StateChanged, PropertiesChanged, DeviceAdded and DeviceRemoved.
type NetworkManager struct {
	t    testing.TB
	conn *dbus.Conn

	mu           sync.Mutex
	devices      map[dbus.ObjectPath]*Device
	order        []dbus.ObjectPath
	connectivity uint32
}

// StartNetworkManager connects to the bus at addr, exports devs and takes
// NetworkManager's name. Connectivity starts at 4 (full).
func StartNetworkManager(t testing.TB, addr string, devs ...Device) *NetworkManager {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &NetworkManager{t: t, conn: conn, devices: map[dbus.ObjectPath]*Device{}, connectivity: 4}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(conn.ExportMethodTable(map[string]any{
		"GetDevices": func() ([]dbus.ObjectPath, *dbus.Error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return slices.Clone(f.order), nil
		},
	}, NMPath, NMInterface))
	must(conn.ExportMethodTable(f.propsMethods(NMPath), NMPath, propsInterface))
	for _, d := range devs {
		f.export(d)
	}
	reply, err := conn.RequestName(NMBusName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("fake NetworkManager: RequestName: %v %v", reply, err)
	}
	return f
}

// propsMethods is org.freedesktop.DBus.Properties of the object at path.
func (f *NetworkManager) propsMethods(path dbus.ObjectPath) map[string]any {
	getAll := func(iface string) (map[string]dbus.Variant, *dbus.Error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case path == NMPath && iface == NMInterface:
			return map[string]dbus.Variant{"Connectivity": dbus.MakeVariant(f.connectivity), "Version": dbus.MakeVariant("1.42.4")}, nil
		case iface == NMDeviceInterface:
			if d, ok := f.devices[path]; ok {
				return d.props(), nil
			}
			return nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownObject", []any{string(path)})
		}
		return nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{iface})
	}
	return map[string]any{
		"GetAll": getAll,
		"Get": func(iface, name string) (dbus.Variant, *dbus.Error) {
			all, err := getAll(iface)
			if err != nil {
				return dbus.Variant{}, err
			}
			v, ok := all[name]
			if !ok {
				return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{name})
			}
			return v, nil
		},
	}
}

func (f *NetworkManager) export(d Device) {
	f.t.Helper()
	f.mu.Lock()
	f.devices[d.Path] = &d
	f.order = append(f.order, d.Path)
	f.mu.Unlock()
	if err := f.conn.ExportMethodTable(f.propsMethods(d.Path), d.Path, propsInterface); err != nil {
		f.t.Fatal(err)
	}
}

func (f *NetworkManager) emit(path dbus.ObjectPath, name string, values ...any) {
	f.t.Helper()
	if err := f.conn.Emit(path, name, values...); err != nil {
		f.t.Fatalf("fake NetworkManager: emit %s: %v", name, err)
	}
}

func (f *NetworkManager) propsChanged(path dbus.ObjectPath, iface string, changed map[string]dbus.Variant) {
	f.emit(path, propsInterface+".PropertiesChanged", iface, changed, []string{})
}

// SetState changes a device's state as NetworkManager does: the
// StateChanged signal, then the property change.
func (f *NetworkManager) SetState(path dbus.ObjectPath, state uint32) {
	f.mu.Lock()
	d := f.devices[path]
	old := d.State
	d.State = state
	f.mu.Unlock()
	f.emit(path, NMDeviceInterface+".StateChanged", state, old, uint32(0))
	f.propsChanged(path, NMDeviceInterface, map[string]dbus.Variant{"State": dbus.MakeVariant(state)})
}

// SetMetered changes a device's Metered property.
func (f *NetworkManager) SetMetered(path dbus.ObjectPath, metered uint32) {
	f.mu.Lock()
	f.devices[path].Metered = metered
	f.mu.Unlock()
	f.propsChanged(path, NMDeviceInterface, map[string]dbus.Variant{"Metered": dbus.MakeVariant(metered)})
}

// SetIp6Connectivity changes a device's Ip6Connectivity property
// (NMConnectivityState: 1 none, 2 portal, 3 limited, 4 full).
func (f *NetworkManager) SetIp6Connectivity(path dbus.ObjectPath, c uint32) {
	f.propsChanged(path, NMDeviceInterface, map[string]dbus.Variant{"Ip6Connectivity": dbus.MakeVariant(c)})
}

// SetIPInterface changes a device's IpInterface property.
func (f *NetworkManager) SetIPInterface(path dbus.ObjectPath, name string) {
	f.mu.Lock()
	f.devices[path].IPInterface = name
	f.mu.Unlock()
	f.propsChanged(path, NMDeviceInterface, map[string]dbus.Variant{"IpInterface": dbus.MakeVariant(name)})
}

// SetConnectivity changes NetworkManager's Connectivity property.
func (f *NetworkManager) SetConnectivity(c uint32) {
	f.mu.Lock()
	f.connectivity = c
	f.mu.Unlock()
	f.propsChanged(NMPath, NMInterface, map[string]dbus.Variant{"Connectivity": dbus.MakeVariant(c)})
}

// AddDevice exports a device and signals DeviceAdded.
func (f *NetworkManager) AddDevice(d Device) {
	f.export(d)
	f.emit(NMPath, NMInterface+".DeviceAdded", d.Path)
}

// RemoveDevice unexports a device and signals DeviceRemoved.
func (f *NetworkManager) RemoveDevice(path dbus.ObjectPath) {
	f.mu.Lock()
	delete(f.devices, path)
	f.order = slices.DeleteFunc(f.order, func(p dbus.ObjectPath) bool { return p == path })
	f.mu.Unlock()
	f.conn.ExportMethodTable(nil, path, propsInterface)
	f.emit(NMPath, NMInterface+".DeviceRemoved", path)
}

// Stop is NetworkManager exiting: its connection goes, and with it the
// name.
func (f *NetworkManager) Stop() { f.conn.Close() }
