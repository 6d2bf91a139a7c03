package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcoad/mcoad/pkg/nm/nmtest"
)

// NetworkManager in the lab: a real NetworkManager (and its dispatcher)
// managing the MN's access interfaces, on a private system bus, so that
// mcoad's NetworkManager integration meets the real thing.
//
// Nothing of it reaches the host. Each of its processes runs in the mn
// node's namespace through `ip netns exec`, inside a mount and a UTS
// namespace of its own (unshare -m -u) where NetworkManager's
// configuration, state and run directories (/etc/NetworkManager,
// /var/lib/NetworkManager, /run) and /etc/resolv.conf are directories and
// a file of the lab's, bound over the host's; its configuration manages
// only the MN's interfaces and leaves DNS, the host name, connectivity
// checks and polkit alone; its connections disable IPv4 (no DHCP) and
// take IPv6 from the access routers' Router Advertisements. Its bus is a
// dbus-daemon of the lab's (not the host's /run/dbus), whose address
// NetworkManager.Bus gives to nmcli and mcoad (DBUS_SYSTEM_BUS_ADDRESS).
//
// Why /sys is read-only for it: NetworkManager uses udev when /sys is
// writable (it logs "platform-linux: create (..., use udev, ...)") and
// then leaves every link "unmanaged" (unmanaged flag platform-init) until
// udev has announced it, which no udev in a lab namespace ever does. With
// /sys read-only it logs "no udev" and takes the links as they are.

// NMConfig chooses how StartNetworkManager runs NetworkManager.
type NMConfig struct {
	// Interfaces it manages, each with a connection profile "mcoa-IFACE"
	// (Ethernet, IPv4 disabled, IPv6 by SLAAC with EUI-64 addresses: the
	// care-of addresses the kernel made before). Default: the MN's access
	// interfaces.
	Interfaces []string
	// Dispatcher scripts for nm-dispatcher, by file name (installed with
	// mode 0755 in its dispatcher.d).
	Dispatcher map[string]string
	// LogLevel: NetworkManager's --log-level (ERR, WARN, INFO, DEBUG,
	// TRACE). Default INFO.
	LogLevel string
}

// NetworkManager is NetworkManager running in the mn node.
type NetworkManager struct {
	Bus string // its system bus's address (DBUS_SYSTEM_BUS_ADDRESS)
	Dir string // its configuration, state and run directories
	Log string // its log

	lab        *Lab
	interfaces []string
}

// nmDispatcherPaths are where distributions install nm-dispatcher.
var nmDispatcherPaths = []string{
	"/usr/lib/NetworkManager/nm-dispatcher", // Debian, Ubuntu
	"/usr/libexec/nm-dispatcher",            // Fedora, Arch
}

// nmHostDirs are NetworkManager's directories the lab binds its own over:
// they must exist (the package makes them) to be mount points.
var nmHostDirs = []string{"/etc/NetworkManager", "/var/lib/NetworkManager"}

// CheckNetworkManager reports what StartNetworkManager lacks on this host
// (nil when NetworkManager, nmcli, nm-dispatcher, dbus-daemon and
// unshare are all there).
func CheckNetworkManager() error {
	var errs []error
	for _, t := range []struct{ tool, pkg string }{
		{"NetworkManager", "network-manager"}, {"nmcli", "network-manager"},
		{"dbus-daemon", "dbus-daemon"}, {"unshare", "util-linux"}, {"mount", "mount"},
	} {
		if _, err := exec.LookPath(t.tool); err != nil {
			errs = append(errs, &MissingToolError{Tool: t.tool, Package: t.pkg, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := nmDispatcher(); err != nil {
		return err
	}
	for _, d := range nmHostDirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return fmt.Errorf("lab: NetworkManager: no directory %s (is network-manager installed?)", d)
		}
	}
	return nil
}

func nmDispatcher() (string, error) {
	for _, p := range nmDispatcherPaths {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("lab: nm-dispatcher not found in %s", strings.Join(nmDispatcherPaths, ", "))
}

// nmBusConfig is the private bus: a system bus (NetworkManager and the
// dispatcher ask for that) without service activation, open to everyone.
const nmBusConfig = nmtest.OpenSystemBusConfig

// nmConf is NetworkManager.conf; %s is the list of interfaces as
// "interface-name:eth0,..." and %s again as keyfile's unmanaged-devices
// exceptions.
const nmConf = `# written by mcoad's lab (internal/lab)
[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false
systemd-resolved=false

[connectivity]
enabled=false

[keyfile]
unmanaged-devices=%s

[device-mcoa-lab]
match-device=%s
managed=1
`

// nmConnection is the profile of one interface; %s is the interface.
const nmConnection = `# written by mcoad's lab (internal/lab)
[connection]
id=mcoa-%[1]s
type=ethernet
interface-name=%[1]s
autoconnect=true

[ethernet]

[ipv4]
method=disabled

[ipv6]
method=auto
addr-gen-mode=eui64
`

// nmWrap sets up the private mounts, then runs the command; its
// arguments: the bus address, the directory, the command.
const nmWrap = `set -e
export DBUS_SYSTEM_BUS_ADDRESS="$1"
d=$2
shift 2
mount --bind "$d/etc" /etc/NetworkManager
mount --bind "$d/lib" /var/lib/NetworkManager
mount --bind "$d/run" /run
mount --bind "$d/resolv.conf" /etc/resolv.conf
mount -o remount,bind,ro /sys
exec "$@"
`

// nmStartTimeout bounds the wait for the bus, for NetworkManager and for
// each activation.
const nmStartTimeout = 30 * time.Second

// StartNetworkManager starts a private system bus, nm-dispatcher and
// NetworkManager in the mn node, waits until NetworkManager manages
// cfg.Interfaces and activates their profiles (NetworkManager first finds
// them configured by the kernel and only watches them, "connected
// (externally)"). Down stops them all.
func (l *Lab) StartNetworkManager(ctx context.Context, c *NMConfig) (*NetworkManager, error) {
	var cfg NMConfig
	if c != nil {
		cfg = *c
	}
	if err := CheckNetworkManager(); err != nil {
		return nil, err
	}
	dispatcher, _ := nmDispatcher()
	if cfg.Interfaces == nil {
		cfg.Interfaces = slices.Clone(MNIfaces)
	}
	orDefault(&cfg.LogLevel, "INFO")
	n := &NetworkManager{Dir: filepath.Join(l.Dir, "networkmanager"), lab: l, interfaces: cfg.Interfaces}
	// The processes see a /run of their own: nothing they use may be
	// under the host's.
	sock := filepath.Join(l.RunDir(), "nm-bus")
	for _, p := range []string{n.Dir, sock} {
		if p == "/run" || strings.HasPrefix(p, "/run/") {
			return nil, fmt.Errorf("lab: NetworkManager: %s is under /run, which its processes do not see (set TMPDIR elsewhere)", p)
		}
	}
	n.Bus = "unix:path=" + sock
	if err := n.writeFiles(&cfg, sock); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.RunDir(), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, nmStartTimeout)
	defer cancel()
	if err := n.startBus(ctx, sock); err != nil {
		return nil, err
	}
	wrapped := func(args ...string) []string {
		return append([]string{"-m", "-u", "--propagation", "private", "sh", "-c", nmWrap, "mcoa-lab-nm", n.Bus, n.Dir}, args...)
	}
	if _, err := l.Start(MN, "unshare", wrapped(dispatcher, "--persist", "--debug")...); err != nil {
		return nil, err
	}
	nm, err := l.Start(MN, "unshare", wrapped("NetworkManager", "--debug", "--log-level="+cfg.LogLevel,
		"--config=/etc/NetworkManager/NetworkManager.conf",
		"--config-dir=/etc/NetworkManager/conf.d",
		"--system-config-dir=/etc/NetworkManager/conf.d",
		"--pid-file=/run/NetworkManager/NetworkManager.pid")...)
	if err != nil {
		return nil, err
	}
	n.Log = nm.Log
	if err := n.activate(ctx, nm); err != nil {
		return nil, err
	}
	return n, nil
}

// writeFiles writes NetworkManager's configuration, profiles and
// dispatcher scripts, and its bus's configuration for the socket sock,
// into n.Dir.
func (n *NetworkManager) writeFiles(cfg *NMConfig, sock string) error {
	var matches, except []string
	for _, i := range cfg.Interfaces {
		matches = append(matches, "interface-name:"+i)
		except = append(except, "except:interface-name:"+i)
	}
	files := map[string]string{
		"bus.conf":                     fmt.Sprintf(nmBusConfig, sock),
		"etc/NetworkManager.conf":      fmt.Sprintf(nmConf, strings.Join(except, ";"), strings.Join(matches, ",")),
		"resolv.conf":                  "",
		"etc/conf.d/.keep":             "",
		"lib/.keep":                    "",
		"run/.keep":                    "",
		"etc/dispatcher.d/.keep":       "",
		"etc/system-connections/.keep": "",
	}
	for _, i := range cfg.Interfaces {
		files["etc/system-connections/mcoa-"+i+".nmconnection"] = fmt.Sprintf(nmConnection, i)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(n.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("lab: NetworkManager: %w", err)
		}
		// NetworkManager ignores profiles others may read.
		if err := os.WriteFile(p, []byte(files[name]), 0o600); err != nil {
			return fmt.Errorf("lab: NetworkManager: %w", err)
		}
	}
	for name, text := range cfg.Dispatcher {
		if name == "" || strings.ContainsRune(name, '/') {
			return fmt.Errorf("lab: NetworkManager: bad dispatcher script name %q", name)
		}
		// nm-dispatcher runs only root's scripts that nobody else may
		// write.
		p := filepath.Join(n.Dir, "etc", "dispatcher.d", name)
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			return fmt.Errorf("lab: NetworkManager: %w", err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return fmt.Errorf("lab: NetworkManager: %w", err)
		}
	}
	return nil
}

// startBus starts the private dbus-daemon and waits until it listens on
// sock.
func (n *NetworkManager) startBus(ctx context.Context, sock string) error {
	os.Remove(sock)
	bus, err := n.lab.Start(MN, "dbus-daemon", "--config-file="+filepath.Join(n.Dir, "bus.conf"), "--nofork", "--nopidfile")
	if err != nil {
		return err
	}
	if _, err := Poll(ctx, 20*time.Millisecond, func(context.Context) (bool, error) {
		if !bus.Running() {
			return false, fmt.Errorf("dbus-daemon exited (%v): %s", bus.Err(), bus.Tail(2000))
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	}); err != nil {
		return fmt.Errorf("lab: NetworkManager's bus: %w", err)
	}
	return nil
}

// activate waits until NetworkManager (nm) manages every interface (a
// state other than unmanaged), then brings each one's profile up.
func (n *NetworkManager) activate(ctx context.Context, nm *Proc) error {
	var states map[string]string
	if _, err := Poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if !nm.Running() {
			return false, errors.New("NetworkManager exited")
		}
		var err error
		if states, err = n.DeviceStates(ctx); err != nil {
			return false, err
		}
		for _, i := range n.interfaces {
			if s := states[i]; s == "" || s == "unmanaged" {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("lab: NetworkManager does not manage %s (states %v): %w\n%s",
			strings.Join(n.interfaces, ", "), states, err, strings.TrimSpace(nm.Tail(4000)))
	}
	for _, i := range n.interfaces {
		if _, err := n.Nmcli(ctx, "--wait", "20", "connection", "up", "mcoa-"+i); err != nil {
			return fmt.Errorf("lab: NetworkManager: %w\n%s", err, strings.TrimSpace(nm.Tail(4000)))
		}
	}
	return nil
}

// Nmcli runs nmcli in the mn node against this NetworkManager and returns
// its output (an *ExecError carrying it on failure).
func (n *NetworkManager) Nmcli(ctx context.Context, args ...string) ([]byte, error) {
	cmd, err := n.lab.Command(ctx, MN, "nmcli", args...)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+n.Bus)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, &ExecError{Args: append([]string{"nmcli"}, args...), Output: out, Err: err}
	}
	return out, nil
}

// DeviceStates returns NetworkManager's devices and their states as nmcli
// names them ("connected", "disconnected", "unmanaged", ...).
func (n *NetworkManager) DeviceStates(ctx context.Context) (map[string]string, error) {
	out, err := n.Nmcli(ctx, "--terse", "--fields", "DEVICE,STATE", "device")
	if err != nil {
		return nil, err
	}
	states := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if dev, state, ok := strings.Cut(line, ":"); ok {
			states[dev] = state
		}
	}
	return states, nil
}
