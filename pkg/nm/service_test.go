package nm

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/mcoad/mcoad/pkg/control"
)

// fakeBackend records the calls it gets.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string
	bs    []control.Binding
}

func (f *fakeBackend) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fakeBackend) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeBackend) Status(ctx context.Context) (control.Status, error) {
	f.record("Status")
	return control.Status{Daemon: control.DaemonMN, Version: "test-1", HomeAddress: netip.MustParseAddr("2001:db8:aaaa::100"),
		Mode: "bulk", Counts: control.Counts{Bindings: len(f.bs)}}, nil
}

func (f *fakeBackend) Bindings(ctx context.Context) ([]control.Binding, error) {
	f.record("Bindings")
	return f.bs, nil
}

func (f *fakeBackend) Interfaces(ctx context.Context) ([]control.Interface, error) {
	f.record("Interfaces")
	return nil, nil
}

func (f *fakeBackend) Register(ctx context.Context, bids []uint16) error {
	f.record("Register %v", bids)
	return nil
}

func (f *fakeBackend) Deregister(ctx context.Context, bids []uint16, all bool) error {
	f.record("Deregister %v %v", bids, all)
	return nil
}

func (f *fakeBackend) SetPriority(ctx context.Context, bid uint16, prio uint8) error {
	f.record("SetPriority %d %d", bid, prio)
	for _, b := range f.bs {
		if b.BID == bid {
			return nil
		}
	}
	return fmt.Errorf("%w: no BID %d", control.ErrNotFound, bid)
}

func (f *fakeBackend) Reload(ctx context.Context) error {
	f.record("Reload")
	return fmt.Errorf("%w: /etc/mcoad/mcoad.toml:3: mobile_node.lifetime: not a number", control.ErrInvalid)
}

func (f *fakeBackend) Hint(ctx context.Context, kind, iface string) error {
	f.record("Hint %s %s", kind, iface)
	return nil
}

var testBindings = []control.Binding{
	{Peer: netip.MustParseAddr("2001:db8:aaaa::1"), Role: control.RoleHA, BID: 1, Interface: "eth0",
		CoA: netip.MustParseAddr("2001:db8:1::2"), Priority: 30, State: "registered", Sequence: 7, Lifetime: 420},
	{Peer: netip.MustParseAddr("2001:db8:aaaa::1"), Role: control.RoleHA, BID: 2, Interface: "wwan0",
		CoA: netip.MustParseAddr("2001:db8:3::2"), Priority: 10, State: "registering", Sequence: 8, Lifetime: 420},
}

// startService runs Serve on a private bus against a fake backend.
func startService(t *testing.T) (addr string, fb *fakeBackend, ev *control.Events) {
	t.Helper()
	addr = startBus(t, "", openBusConfig)
	fb = &fakeBackend{bs: testBindings}
	ev = control.NewEvents(0)
	conn := connect(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ServiceConfig{Conn: conn, Backend: fb, Events: ev, Logger: testLogger(t)}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ev.Close()
	})
	// The name is owned once Serve is ready.
	eventually(t, "the bus name", func() bool {
		var owner string
		err := conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&owner)
		return err == nil && owner != ""
	})
	return addr, fb, ev
}

// busctlJSON calls a method with busctl and decodes its --json reply.
func busctlJSON(t *testing.T, addr string, method string, args ...string) []any {
	t.Helper()
	out := runCmd(t, "busctl", append([]string{"--address=" + addr, "--json=short", "call", BusName, string(ObjectPath), Interface, method}, args...)...)
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var reply struct {
		Type string `json:"type"`
		Data []any  `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil {
		t.Fatalf("busctl %s: %v: %q", method, err, out)
	}
	return reply.Data
}

func TestServiceMethods(t *testing.T) {
	needTools(t, "busctl", "dbus-send")
	addr, fb, _ := startService(t)

	data := busctlJSON(t, addr, "Status")
	var st control.Status
	if len(data) != 1 || json.Unmarshal([]byte(data[0].(string)), &st) != nil {
		t.Fatalf("Status reply %v", data)
	}
	if st.Daemon != control.DaemonMN || st.Version != "test-1" || st.Counts.Bindings != 2 || st.HomeAddress.String() != "2001:db8:aaaa::100" {
		t.Errorf("Status %+v", st)
	}

	data = busctlJSON(t, addr, "Bindings")
	var bs []control.Binding
	if len(data) != 1 || json.Unmarshal([]byte(data[0].(string)), &bs) != nil {
		t.Fatalf("Bindings reply %v", data)
	}
	if !reflect.DeepEqual(bs, testBindings) {
		t.Errorf("Bindings %+v", bs)
	}
	if data = busctlJSON(t, addr, "Interfaces"); len(data) != 1 || data[0] != "[]" {
		t.Errorf("Interfaces (none) = %v, want []", data)
	}

	for _, c := range []struct {
		method string
		args   []string
		want   string
	}{
		{"Register", []string{"aq", "0"}, "Register []"},
		{"Register", []string{"aq", "2", "1", "2"}, "Register [1 2]"},
		{"Deregister", []string{"aqb", "0", "true"}, "Deregister [] true"},
		{"Deregister", []string{"aqb", "1", "2", "false"}, "Deregister [2] false"},
		{"SetPriority", []string{"qy", "2", "5"}, "SetPriority 2 5"},
		{"Hint", []string{"ss", "up", "wwan0"}, "Hint up wwan0"},
		{"Hint", []string{"ss", "connectivity", ""}, "Hint connectivity "},
	} {
		busctlJSON(t, addr, c.method, c.args...)
		if got := fb.last(); got != c.want {
			t.Errorf("%s %v: backend got %q, want %q", c.method, c.args, got, c.want)
		}
	}

	// Errors keep the control API's meaning, by name; bad arguments never
	// reach the backend.
	for _, c := range []struct {
		args    []string
		want    string
		reaches bool
	}{
		{[]string{"org.mcoad.MobileNode1.SetPriority", "uint16:9", "byte:3"}, "Error org.mcoad.MobileNode1.Error.NotFound: not found: no BID 9", true},
		{[]string{"org.mcoad.MobileNode1.Reload"}, "Error org.freedesktop.DBus.Error.InvalidArgs: invalid request: /etc/mcoad/mcoad.toml:3: mobile_node.lifetime", true},
		{[]string{"org.mcoad.MobileNode1.SetPriority", "uint16:0", "byte:3"}, "Error org.freedesktop.DBus.Error.InvalidArgs: BID 0 is reserved", false},
		{[]string{"org.mcoad.MobileNode1.Hint", "string:sideways", "string:eth0"}, `Error org.freedesktop.DBus.Error.InvalidArgs: unknown hint "sideways"`, false},
		{[]string{"org.mcoad.MobileNode1.Deregister", "array:uint16:1", "boolean:true"}, "Error org.freedesktop.DBus.Error.InvalidArgs: give BIDs or all", false},
		{[]string{"org.mcoad.MobileNode1.Hint", "string:up"}, "Error org.freedesktop.DBus.Error.InvalidArgs", false},
	} {
		fb.record("marker")
		_, err := tryCmd("dbus-send", append([]string{"--bus=" + addr, "--print-reply", "--dest=" + BusName, string(ObjectPath)}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dbus-send %v: %v, want %q", c.args, err, c.want)
		}
		if reached := fb.last() != "marker"; reached != c.reaches {
			t.Errorf("dbus-send %v: reached the backend: %v, want %v", c.args, reached, c.reaches)
		}
	}
}

func TestServiceSignal(t *testing.T) {
	needTools(t, "dbus-monitor")
	addr, _, ev := startService(t)

	// With dbus-monitor, as a person would.
	var out syncBuffer
	mon := exec.Command("dbus-monitor", "--address", addr, "type='signal',interface='"+Interface+"'")
	mon.Stdout = &out
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Process.Kill(); mon.Wait() })

	// And with a client that checks the types.
	client := connect(t, addr)
	if err := client.AddMatchSignal(dbus.WithMatchInterface(Interface), dbus.WithMatchMember("BindingChanged")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 16)
	client.Signal(sigs)

	b := testBindings[1]
	b.State = "registered"
	// dbus-monitor subscribes on its own time: publish until it has seen
	// one (each publish is a new signal).
	eventually(t, "dbus-monitor to see BindingChanged", func() bool {
		ev.Publish(control.Event{Kind: control.EventBinding, Binding: &b})
		ev.Publish(control.Event{Kind: control.EventReload, Message: "reloaded"}) // not signalled
		return strings.Contains(out.String(), "member=BindingChanged")
	})
	o := out.String()
	for _, want := range []string{"path=/org/mcoad/MobileNode1; interface=org.mcoad.MobileNode1; member=BindingChanged",
		"uint16 2", `string "registered"`, "boolean false", `\"interface\":\"wwan0\"`} {
		if !strings.Contains(o, want) && !strings.Contains(o, strings.ReplaceAll(want, `\"`, `"`)) {
			t.Errorf("dbus-monitor output lacks %q:\n%s", want, o)
		}
	}

	var sig *dbus.Signal
	for sig = range sigs {
		if sig.Name == SignalBindingChanged {
			break
		}
	}
	var (
		bid     uint16
		state   string
		removed bool
		js      string
	)
	if err := dbus.Store(sig.Body, &bid, &state, &removed, &js); err != nil {
		t.Fatalf("BindingChanged body %v: %v", sig.Body, err)
	}
	var got control.Binding
	if err := json.Unmarshal([]byte(js), &got); err != nil || bid != 2 || state != "registered" || removed || !reflect.DeepEqual(got, b) {
		t.Errorf("BindingChanged(%d, %q, %v, %s) err %v", bid, state, removed, js, err)
	}

	// A removal says so.
	ev.Publish(control.Event{Kind: control.EventBinding, Removed: true, Binding: &testBindings[0]})
	for sig = range sigs {
		if err := dbus.Store(sig.Body, &bid, &state, &removed, &js); err == nil && bid == 1 {
			break
		}
	}
	if !removed {
		t.Errorf("removal signalled with removed=false")
	}
}

// introspection XML as busctl prints it.
type xmlNode struct {
	Interfaces []struct {
		Name    string `xml:"name,attr"`
		Methods []struct {
			Name string `xml:"name,attr"`
			Args []struct {
				Name      string `xml:"name,attr"`
				Type      string `xml:"type,attr"`
				Direction string `xml:"direction,attr"`
			} `xml:"arg"`
		} `xml:"method"`
		Signals []struct {
			Name string `xml:"name,attr"`
			Args []struct {
				Type string `xml:"type,attr"`
			} `xml:"arg"`
		} `xml:"signal"`
	} `xml:"interface"`
	Children []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

func TestServiceIntrospection(t *testing.T) {
	needTools(t, "busctl")
	addr, _, _ := startService(t)

	out := runCmd(t, "busctl", "--address="+addr, "introspect", "--xml-interface", BusName, string(ObjectPath))
	var n xmlNode
	if err := xml.Unmarshal([]byte(out), &n); err != nil {
		t.Fatalf("introspection XML: %v\n%s", err, out)
	}
	sigs := map[string]string{}
	var ifaces []string
	for _, i := range n.Interfaces {
		ifaces = append(ifaces, i.Name)
		if i.Name != Interface {
			continue
		}
		for _, m := range i.Methods {
			var in, out string
			for _, a := range m.Args {
				if a.Direction == "out" {
					out += a.Type
				} else {
					in += a.Type
				}
			}
			sigs[m.Name] = in + "->" + out
		}
		for _, s := range i.Signals {
			var ts string
			for _, a := range s.Args {
				ts += a.Type
			}
			sigs["signal "+s.Name] = ts
		}
	}
	want := map[string]string{
		"Status": "->s", "Bindings": "->s", "Interfaces": "->s", "Register": "aq->", "Deregister": "aqb->",
		"SetPriority": "qy->", "Reload": "->", "Hint": "ss->", "signal BindingChanged": "qsbs",
	}
	if !reflect.DeepEqual(sigs, want) {
		t.Errorf("introspected %v, want %v", sigs, want)
	}
	for _, i := range []string{"org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer", Interface} {
		if !slices.Contains(ifaces, i) {
			t.Errorf("introspection lacks %s (has %v)", i, ifaces)
		}
	}

	// The table busctl prints (what `busctl introspect` users see).
	out = runCmd(t, "busctl", "--address="+addr, "introspect", BusName, string(ObjectPath), Interface)
	if !strings.Contains(out, ".SetPriority") || !strings.Contains(out, "qy") || !strings.Contains(out, ".BindingChanged") {
		t.Errorf("busctl introspect:\n%s", out)
	}
	// busctl tree walks down from "/".
	out = runCmd(t, "busctl", "--address="+addr, "tree", BusName)
	if !strings.Contains(out, "/org/mcoad/MobileNode1") {
		t.Errorf("busctl tree:\n%s", out)
	}
}

// The method table and the introspection data must agree: a method added
// to one and not the other would be invisible or uncallable.
func TestIntrospectionMatchesMethods(t *testing.T) {
	s := &service{}
	table := s.methods()
	var iface introspect.Interface
	for _, i := range introspectNode().Interfaces {
		if i.Name == Interface {
			iface = i
		}
	}
	if len(iface.Methods) != len(table) {
		t.Errorf("%d methods introspected, %d exported", len(iface.Methods), len(table))
	}
	senderType := reflect.TypeOf(dbus.Sender(""))
	for _, m := range iface.Methods {
		fn, ok := table[m.Name]
		if !ok {
			t.Errorf("introspected method %s is not exported", m.Name)
			continue
		}
		ft := reflect.TypeOf(fn)
		var in, out string
		for i := range ft.NumIn() {
			if ft.In(i) != senderType {
				in += dbus.SignatureOfType(ft.In(i)).String()
			}
		}
		for i := range ft.NumOut() - 1 { // the last is *dbus.Error
			out += dbus.SignatureOfType(ft.Out(i)).String()
		}
		var wantIn, wantOut string
		for _, a := range m.Args {
			if a.Direction == "out" {
				wantOut += a.Type
			} else {
				wantIn += a.Type
			}
		}
		if in != wantIn || out != wantOut {
			t.Errorf("%s: exported (%s)->(%s), introspected (%s)->(%s)", m.Name, in, out, wantIn, wantOut)
		}
	}
}

func TestServeNameTaken(t *testing.T) {
	addr, fb, _ := startService(t)
	conn := connect(t, addr)
	err := Serve(context.Background(), ServiceConfig{Conn: conn, Backend: fb, Logger: testLogger(t)})
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second Serve: %v, want ErrNameTaken", err)
	}
	if err := Serve(context.Background(), ServiceConfig{Backend: fb}); err == nil {
		t.Errorf("Serve without a connection: no error")
	}
}

func TestServeEndsWithConnection(t *testing.T) {
	addr := startBus(t, "", openBusConfig)
	conn, err := Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), ServiceConfig{Conn: conn, Backend: &fakeBackend{}, Events: control.NewEvents(0), Logger: testLogger(t)})
	}()
	watcher := connect(t, addr)
	eventually(t, "the bus name", func() bool {
		var has bool
		return watcher.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has) == nil && has
	})
	conn.Close()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Serve after the connection closed: %v", err)
	}
}

// BenchmarkServiceCall is one D-Bus method call (Hint, as the
// NetworkManager hook would make it) through a private dbus-daemon.
func BenchmarkServiceCall(b *testing.B) {
	addr := startBus(b, "", openBusConfig)
	conn := connect(b, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ServiceConfig{Conn: conn, Backend: &fakeBackend{}}) }()
	b.Cleanup(func() { cancel(); <-done })
	client := connect(b, addr)
	obj := client.Object(BusName, ObjectPath)
	eventually(b, "the service", func() bool { return obj.Call(Interface+".Hint", 0, "up", "eth0").Err == nil })
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := obj.Call(Interface+".Hint", 0, "up", "eth0").Err; err != nil {
			b.Fatal(err)
		}
	}
}
