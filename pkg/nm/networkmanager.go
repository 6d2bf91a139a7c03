package nm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/mcoad/mcoad/pkg/control"
)

// NetworkManager's D-Bus API (https://networkmanager.dev/docs/api/latest/):
// the names the Watcher uses, and the fake NetworkManager of the tests.
const (
	NMBusName         = "org.freedesktop.NetworkManager"
	NMPath            = dbus.ObjectPath("/org/freedesktop/NetworkManager")
	NMInterface       = "org.freedesktop.NetworkManager"
	NMDeviceInterface = "org.freedesktop.NetworkManager.Device"

	busName         = "org.freedesktop.DBus"
	propsInterface  = "org.freedesktop.DBus.Properties"
	propsChanged    = "PropertiesChanged"
	nameOwnerChange = "NameOwnerChanged"
)

// DeviceState is NetworkManager's NMDeviceState.
type DeviceState uint32

// The device states.
const (
	DeviceUnknown      DeviceState = 0
	DeviceUnmanaged    DeviceState = 10
	DeviceUnavailable  DeviceState = 20
	DeviceDisconnected DeviceState = 30
	DevicePrepare      DeviceState = 40
	DeviceConfig       DeviceState = 50
	DeviceNeedAuth     DeviceState = 60
	DeviceIPConfig     DeviceState = 70
	DeviceIPCheck      DeviceState = 80
	DeviceSecondaries  DeviceState = 90
	DeviceActivated    DeviceState = 100
	DeviceDeactivating DeviceState = 110
	DeviceFailed       DeviceState = 120
)

var stateNames = map[DeviceState]string{
	DeviceUnknown: "unknown", DeviceUnmanaged: "unmanaged", DeviceUnavailable: "unavailable",
	DeviceDisconnected: "disconnected", DevicePrepare: "prepare", DeviceConfig: "config",
	DeviceNeedAuth: "need-auth", DeviceIPConfig: "ip-config", DeviceIPCheck: "ip-check",
	DeviceSecondaries: "secondaries", DeviceActivated: "activated", DeviceDeactivating: "deactivating",
	DeviceFailed: "failed",
}

func (s DeviceState) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state-%d", uint32(s))
}

// Metered is NetworkManager's NMMetered.
type Metered uint32

// The metered values.
const (
	MeteredUnknown  Metered = 0
	MeteredYes      Metered = 1
	MeteredNo       Metered = 2
	MeteredGuessYes Metered = 3
	MeteredGuessNo  Metered = 4
)

// IsMetered reports whether m says the link costs by volume (a guess
// counts: NetworkManager guesses from the device type, e.g. a modem).
func (m Metered) IsMetered() bool { return m == MeteredYes || m == MeteredGuessYes }

// Device is what the Watcher knows of one NetworkManager device.
type Device struct {
	Path dbus.ObjectPath
	// Name is the device's IP interface (IpInterface, e.g. "wwan0" for a
	// modem whose control device is "cdc-wdm0") when it has one, else its
	// Interface: the name the kernel's addresses live on.
	Name    string
	State   DeviceState
	Metered Metered
	// Ip6Connectivity is NetworkManager's IPv6 connectivity check result
	// for the device (Device.Ip6Connectivity, NetworkManager 1.16+).
	Ip6Connectivity Connectivity

	iface, ipIface string
}

func (d *Device) setName() {
	d.Name = d.ipIface
	if d.Name == "" {
		d.Name = d.iface
	}
}

// WatcherConfig configures a Watcher. Its callbacks run on the Watcher's
// goroutine, one at a time; they must not block for long.
type WatcherConfig struct {
	Conn *dbus.Conn // required; the Watcher does not close it
	// Hint is called with control.HintUp when a device becomes activated,
	// control.HintDown when it stops being activated or goes away, and
	// control.HintConnectivity when the host's connectivity changes
	// (iface "") or a device's IPv6 connectivity does (its interface).
	Hint func(kind, iface string)
	// Metered is called when an interface becomes metered or stops being
	// metered (including when its device goes away). Interfaces never
	// reported are not metered.
	Metered func(iface string, metered bool)
	// CallTimeout bounds each call to NetworkManager (default 5 s).
	CallTimeout time.Duration
	// RetryInterval is the first wait before reading NetworkManager again
	// after a failed read; it doubles up to a minute (default 1 s).
	RetryInterval time.Duration
	Logger        *slog.Logger
}

// Watcher follows NetworkManager. Run it once.
type Watcher struct {
	cfg WatcherConfig
	log *slog.Logger

	// Owned by Run.
	owner    string // NetworkManager's unique name, "" when it is not running
	devices  map[dbus.ObjectPath]*Device
	reported map[string]bool // interfaces reported metered
	conn     Connectivity

	mu   sync.Mutex // guards snap
	snap struct {
		running bool
		devices []Device
	}
}

// Connectivity is NetworkManager's NMConnectivityState.
type Connectivity uint32

// NewWatcher checks cfg and returns a Watcher.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Conn == nil {
		return nil, errors.New("nm: the watcher needs a D-Bus connection")
	}
	if cfg.Hint == nil {
		cfg.Hint = func(string, string) {}
	}
	if cfg.Metered == nil {
		cfg.Metered = func(string, bool) {}
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Watcher{cfg: cfg, log: cfg.Logger, devices: map[dbus.ObjectPath]*Device{}, reported: map[string]bool{}}, nil
}

// Running reports whether NetworkManager was on the bus at the last look.
func (w *Watcher) Running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap.running
}

// Devices returns NetworkManager's devices as last read, by name.
func (w *Watcher) Devices() []Device {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.snap.devices)
}

// matchRules are the signals the Watcher subscribes to: NetworkManager's
// name changing hands, its device state and property changes, devices
// coming and going, and its own properties (Connectivity). Narrow on
// purpose: access points change their properties every few seconds.
func matchRules() [][]dbus.MatchOption {
	return [][]dbus.MatchOption{
		{dbus.WithMatchSender(busName), dbus.WithMatchInterface(busName), dbus.WithMatchMember(nameOwnerChange), dbus.WithMatchArg(0, NMBusName)},
		{dbus.WithMatchSender(NMBusName), dbus.WithMatchInterface(NMDeviceInterface), dbus.WithMatchMember("StateChanged")},
		{dbus.WithMatchSender(NMBusName), dbus.WithMatchInterface(propsInterface), dbus.WithMatchMember(propsChanged), dbus.WithMatchArg(0, NMDeviceInterface)},
		{dbus.WithMatchSender(NMBusName), dbus.WithMatchInterface(propsInterface), dbus.WithMatchMember(propsChanged), dbus.WithMatchObjectPath(NMPath), dbus.WithMatchArg(0, NMInterface)},
		{dbus.WithMatchSender(NMBusName), dbus.WithMatchInterface(NMInterface), dbus.WithMatchMember("DeviceAdded")},
		{dbus.WithMatchSender(NMBusName), dbus.WithMatchInterface(NMInterface), dbus.WithMatchMember("DeviceRemoved")},
	}
}

// Run follows NetworkManager until ctx is done (then it returns nil) or
// the connection closes (an error).
func (w *Watcher) Run(ctx context.Context) error {
	conn := w.cfg.Conn
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	defer conn.RemoveSignal(sigs)
	for _, m := range matchRules() {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			return fmt.Errorf("nm: subscribe to NetworkManager's signals: %w", err)
		}
		defer conn.RemoveMatchSignal(m...)
	}

	// The subscription is in place before the first look, so that a
	// NetworkManager starting in between is not missed.
	var owner string
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	err := conn.BusObject().CallWithContext(callCtx, busName+".GetNameOwner", 0, NMBusName).Store(&owner)
	cancel()
	var dbe dbus.Error
	if err != nil && !(errors.As(err, &dbe) && dbe.Name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("nm: look for NetworkManager: %w", err)
	}

	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := w.cfg.RetryInterval
	resync := func() {
		if w.owner == "" {
			return
		}
		if err := w.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("NetworkManager: cannot read its devices; trying again", "in", backoff, "err", err)
			retry.Reset(backoff)
			backoff = min(2*backoff, time.Minute)
			return
		}
		backoff = w.cfg.RetryInterval
	}

	w.setOwner(owner)
	if owner == "" {
		w.log.Info("NetworkManager not running; mcoad follows the kernel alone until it starts")
	} else {
		w.log.Info("following NetworkManager")
	}
	resync()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
			resync()
		case sig, ok := <-sigs:
			if !ok {
				return errors.New("nm: D-Bus connection closed")
			}
			if sig.Sender == busName && sig.Name == busName+"."+nameOwnerChange {
				if w.nameOwnerChanged(sig) {
					retry.Stop()
					backoff = w.cfg.RetryInterval
					resync()
				}
				continue
			}
			if w.owner == "" || sig.Sender != w.owner {
				continue // not NetworkManager's (another service on this connection's bus)
			}
			w.handle(ctx, sig)
		}
	}
}

// nameOwnerChanged follows NetworkManager leaving and arriving; it reports
// whether there is a new NetworkManager to read.
func (w *Watcher) nameOwnerChanged(sig *dbus.Signal) bool {
	var name, oldOwner, newOwner string
	if err := dbus.Store(sig.Body, &name, &oldOwner, &newOwner); err != nil || name != NMBusName {
		return false
	}
	switch {
	case newOwner == "" && w.owner != "":
		// What it said about metered links stays true until a new
		// NetworkManager says otherwise: a restart must not flap the
		// priorities.
		w.log.Info("NetworkManager stopped; waiting for it to return")
		w.setOwner("")
		return false
	case newOwner != "" && newOwner != w.owner:
		w.log.Info("NetworkManager started; reading its devices")
		w.setOwner(newOwner)
		return true
	}
	return false
}

func (w *Watcher) setOwner(owner string) {
	if owner != w.owner {
		// Device paths are numbered anew by each NetworkManager.
		clear(w.devices)
	}
	w.owner = owner
	w.publish()
}

// handle applies one of NetworkManager's signals.
func (w *Watcher) handle(ctx context.Context, sig *dbus.Signal) {
	switch sig.Name {
	case NMDeviceInterface + ".StateChanged":
		var newState, oldState, reason uint32
		if err := dbus.Store(sig.Body, &newState, &oldState, &reason); err != nil {
			w.log.Debug("NetworkManager: bad StateChanged", "path", sig.Path, "err", err)
			return
		}
		w.change(ctx, sig.Path, func(d *Device) { d.State = DeviceState(newState) })
	case propsInterface + "." + propsChanged:
		var iface string
		var changed map[string]dbus.Variant
		var invalidated []string
		if err := dbus.Store(sig.Body, &iface, &changed, &invalidated); err != nil {
			w.log.Debug("NetworkManager: bad PropertiesChanged", "path", sig.Path, "err", err)
			return
		}
		switch {
		case iface == NMDeviceInterface:
			w.change(ctx, sig.Path, func(d *Device) { applyDeviceProps(d, changed) })
		case iface == NMInterface && sig.Path == NMPath:
			if v, ok := changed["Connectivity"]; ok {
				if c, ok := v.Value().(uint32); ok && Connectivity(c) != w.conn {
					w.conn = Connectivity(c)
					w.cfg.Hint(control.HintConnectivity, "")
				}
			}
		}
	case NMInterface + ".DeviceAdded":
		var p dbus.ObjectPath
		if dbus.Store(sig.Body, &p) == nil {
			w.change(ctx, p, nil)
		}
	case NMInterface + ".DeviceRemoved":
		var p dbus.ObjectPath
		if dbus.Store(sig.Body, &p) == nil {
			w.remove(p)
		}
	}
}

// change applies fn to the device at path (read first when unknown, e.g.
// just added), then reports what changed.
func (w *Watcher) change(ctx context.Context, path dbus.ObjectPath, fn func(*Device)) {
	old, known := w.devices[path]
	var d Device
	if known {
		d = *old
		if fn != nil {
			fn(&d)
		}
	} else {
		nd, err := w.readDevice(ctx, path)
		if err != nil {
			w.log.Debug("NetworkManager: cannot read device", "path", path, "err", err)
			return
		}
		d = *nd
	}
	w.devices[path] = &d
	switch {
	case known && old.State != DeviceActivated && d.State == DeviceActivated,
		!known && d.State == DeviceActivated:
		w.cfg.Hint(control.HintUp, d.Name)
	case known && old.State == DeviceActivated && d.State != DeviceActivated:
		w.cfg.Hint(control.HintDown, old.Name)
	case known && old.Ip6Connectivity != d.Ip6Connectivity && d.State == DeviceActivated:
		// A captive portal, limited or no connectivity on this device:
		// mcoad probes its path now.
		w.cfg.Hint(control.HintConnectivity, d.Name)
	}
	w.reportMetered()
	w.publish()
}

func (w *Watcher) remove(path dbus.ObjectPath) {
	d, ok := w.devices[path]
	if !ok {
		return
	}
	delete(w.devices, path)
	if d.State == DeviceActivated {
		w.cfg.Hint(control.HintDown, d.Name)
	}
	w.reportMetered()
	w.publish()
}

// sync reads every device of the current NetworkManager (level-triggered:
// after a start or a restart, whatever was missed is in this read).
func (w *Watcher) sync(ctx context.Context) error {
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	var paths []dbus.ObjectPath
	if err := w.cfg.Conn.Object(NMBusName, NMPath).CallWithContext(callCtx, NMInterface+".GetDevices", 0).Store(&paths); err != nil {
		return fmt.Errorf("GetDevices: %w", err)
	}
	devs := make(map[dbus.ObjectPath]*Device, len(paths))
	var firstErr error
	for _, p := range paths {
		d, err := w.readDevice(ctx, p)
		if err != nil {
			// A device may go between GetDevices and GetAll; its
			// DeviceRemoved follows. Not one readable: NetworkManager
			// itself is going, and what it said stays until it is back.
			w.log.Debug("NetworkManager: cannot read device", "path", p, "err", err)
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		devs[p] = d
	}
	if len(devs) == 0 && firstErr != nil {
		return firstErr
	}
	var v dbus.Variant
	if err := w.cfg.Conn.Object(NMBusName, NMPath).CallWithContext(callCtx, propsInterface+".Get", 0, NMInterface, "Connectivity").Store(&v); err == nil {
		c, _ := v.Value().(uint32)
		w.conn = Connectivity(c)
	}
	w.devices = devs
	w.reportMetered()
	w.publish()
	return nil
}

// readDevice reads one device's properties.
func (w *Watcher) readDevice(ctx context.Context, path dbus.ObjectPath) (*Device, error) {
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	var props map[string]dbus.Variant
	err := w.cfg.Conn.Object(NMBusName, path).CallWithContext(callCtx, propsInterface+".GetAll", 0, NMDeviceInterface).Store(&props)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", path, err)
	}
	d := &Device{Path: path}
	applyDeviceProps(d, props)
	return d, nil
}

func applyDeviceProps(d *Device, props map[string]dbus.Variant) {
	for k, v := range props {
		switch k {
		case "Interface":
			d.iface, _ = v.Value().(string)
		case "IpInterface":
			d.ipIface, _ = v.Value().(string)
		case "State":
			if s, ok := v.Value().(uint32); ok {
				d.State = DeviceState(s)
			}
		case "Metered":
			if m, ok := v.Value().(uint32); ok {
				d.Metered = Metered(m)
			}
		case "Ip6Connectivity":
			if c, ok := v.Value().(uint32); ok {
				d.Ip6Connectivity = Connectivity(c)
			}
		}
	}
	d.setName()
}

// reportMetered compares the interfaces that are metered now with those
// last reported and reports the difference (level-triggered: renames,
// removals and restarts all end here).
func (w *Watcher) reportMetered() {
	now := map[string]bool{}
	for _, d := range w.devices {
		if d.Name != "" && d.Metered.IsMetered() {
			now[d.Name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.reported)) {
		if !now[name] {
			delete(w.reported, name)
			w.cfg.Metered(name, false)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if !w.reported[name] {
			w.reported[name] = true
			w.cfg.Metered(name, true)
		}
	}
}

func (w *Watcher) publish() {
	devs := make([]Device, 0, len(w.devices))
	for _, d := range w.devices {
		devs = append(devs, *d)
	}
	slices.SortFunc(devs, func(a, b Device) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.Path < b.Path {
			return -1
		}
		if a.Path > b.Path {
			return 1
		}
		return 0
	})
	w.mu.Lock()
	w.snap.running = w.owner != ""
	w.snap.devices = devs
	w.mu.Unlock()
}
