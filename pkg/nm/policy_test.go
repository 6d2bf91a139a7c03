package nm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/control"
)

// policyFile is the D-Bus policy the .deb installs.
const policyFile = "../../packaging/deb/root/usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf"

// systemBusConfig is the default policy of Debian's system bus
// (/usr/share/dbus-1/system.conf: deny owning names and calling methods,
// allow replies and signals), plus the file under test (POLICY).
const systemBusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>POLICY</include>
</busconfig>
`

// The shipped policy on a bus that enforces it like the system bus: root
// owns the name and calls everything, the control group calls everything,
// anyone else only reads.
func TestPolicyFile(t *testing.T) {
	if os.Geteuid() != 0 {
		requireE2E(t, "the policy test runs callers as other users: needs root")
	}
	needTools(t, "busctl", "setpriv")
	policy, err := filepath.Abs(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(policy); err != nil {
		t.Fatal(err)
	}
	// The group the policy names, "mcoa", may not exist here: a copy
	// that names nobody's group stands for a member of the control group.
	data, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	asMember := filepath.Join(t.TempDir(), "member.conf")
	if !strings.Contains(string(data), `<policy group="mcoa">`) {
		t.Fatalf("%s has no policy for the group mcoa", policyFile)
	}
	if err := os.WriteFile(asMember, []byte(strings.ReplaceAll(string(data), `group="mcoa"`, `group="nogroup"`)), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		policy  string
		writeOK bool // nobody may call Register
	}{
		{"outsider", policy, false},
		{"group member", asMember, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The socket must be reachable by nobody.
			dir, err := os.MkdirTemp("", "mcoa-dbus-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			addr := startBus(t, dir, strings.Replace(systemBusConfig, "POLICY", c.policy, 1))

			// Root owns the name.
			conn := connect(t, addr)
			fb := &fakeBackend{bs: testBindings}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Serve(ctx, ServiceConfig{Conn: conn, Backend: fb, Events: control.NewEvents(0), Logger: testLogger(t)})
			}()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve as root: %v", err)
				}
			})
			eventually(t, "root to own the name", func() bool {
				var has bool
				return conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has) == nil && has
			})

			call := func(asNobody bool, method string, args ...string) error {
				cmd := append([]string{"--address=" + addr, "call", BusName, string(ObjectPath), Interface, method}, args...)
				if asNobody {
					_, err := tryCmd("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "busctl"}, cmd...)...)
					return err
				}
				_, err := tryCmd("busctl", cmd...)
				return err
			}
			if err := call(false, "Register", "aq", "0"); err != nil {
				t.Errorf("root: Register: %v", err)
			}
			if got := fb.last(); got != "Register []" {
				t.Errorf("root's Register reached the backend as %q", got)
			}
			for _, m := range []string{"Status", "Bindings", "Interfaces"} {
				if err := call(true, m); err != nil {
					t.Errorf("nobody: %s: %v", m, err)
				}
			}
			if _, err := tryCmd("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				"busctl", "--address="+addr, "introspect", BusName, string(ObjectPath)); err != nil {
				t.Errorf("nobody: introspect: %v", err)
			}
			fb.record("marker")
			err = call(true, "Register", "aq", "0")
			switch {
			case c.writeOK && err != nil:
				t.Errorf("member: Register: %v", err)
			case !c.writeOK && (err == nil || !strings.Contains(err.Error(), "denied")):
				t.Errorf("outsider: Register: %v, want access denied", err)
			case !c.writeOK && fb.last() != "marker":
				t.Errorf("outsider's Register reached the backend")
			}
			if err := call(true, "SetPriority", "qy", "1", "5"); (err == nil) != c.writeOK {
				t.Errorf("nobody: SetPriority: %v (allowed: %v)", err, c.writeOK)
			}

			// Nobody may not take the name (were mcoad down).
			_, err = tryCmd("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "dbus-send", "--bus="+addr,
				"--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
				"org.freedesktop.DBus.RequestName", "string:"+BusName, "uint32:4")
			if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
				t.Errorf("nobody: RequestName: %v, want AccessDenied", err)
			}
		})
	}
}
