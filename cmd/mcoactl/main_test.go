package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"

	"github.com/mcoad/mcoad/pkg/control"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC // monitor prints local time; keep the goldens fixed
	os.Exit(m.Run())
}

var (
	ha   = netip.MustParseAddr("2001:db8:aaaa::1")
	hoa  = netip.MustParseAddr("2001:db8:aaaa::100")
	coa1 = netip.MustParseAddr("2001:db8:1::10")
	coa2 = netip.MustParseAddr("2001:db8:2::10")
	cn   = netip.MustParseAddr("2001:db8:cccc::1")
)

type fakeMN struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeMN) rec(s string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(s, args...))
	return f.err
}

func (f *fakeMN) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeMN) Status(context.Context) (control.Status, error) { return testStatus, nil }
func (f *fakeMN) Bindings(context.Context) ([]control.Binding, error) {
	return testBindings, nil
}
func (f *fakeMN) Interfaces(context.Context) ([]control.Interface, error) {
	return testInterfaces, nil
}
func (f *fakeMN) Policies(context.Context) ([]control.Policy, error) { return testPolicies, nil }
func (f *fakeMN) Register(_ context.Context, bids []uint16) error {
	return f.rec("Register %v", bids)
}
func (f *fakeMN) Deregister(_ context.Context, bids []uint16, all bool) error {
	return f.rec("Deregister %v %v", bids, all)
}
func (f *fakeMN) SetPriority(_ context.Context, bid uint16, prio uint8) error {
	return f.rec("SetPriority %d %d", bid, prio)
}
func (f *fakeMN) AddPolicy(_ context.Context, p control.Policy) error {
	return f.rec("AddPolicy %+v", p)
}
func (f *fakeMN) DeletePolicy(_ context.Context, name string) error {
	return f.rec("DeletePolicy %s", name)
}
func (f *fakeMN) Reload(context.Context) error { return f.rec("Reload") }
func (f *fakeMN) Hint(_ context.Context, kind, iface string) error {
	return f.rec("Hint %s %q", kind, iface)
}

type fakeHA struct{}

func (fakeHA) Status(context.Context) (control.Status, error) {
	return control.Status{Daemon: control.DaemonHA, HomeAgent: ha, Mode: "bulk", Profile: "draft-00", Uptime: 59, Counts: control.Counts{CacheEntries: 2}}, nil
}
func (fakeHA) Cache(context.Context) ([]control.CacheEntry, error) { return testCache, nil }

var (
	testStatus = control.Status{
		Daemon: control.DaemonMN, Version: "0.1", HomeAddress: hoa, HomeAgent: ha, Mode: "bulk",
		BIDMode: "interface", Profile: "draft-00", Dataplane: "tun", Uptime: 3723,
		Counts: control.Counts{Bindings: 3, Registered: 2, Interfaces: 3, Policies: 1},
	}
	testBindings = []control.Binding{
		{Peer: ha, Role: control.RoleHA, BID: 1, Interface: "eth0", CoA: coa1, Priority: 30, State: "registered",
			Sequence: 7, Lifetime: 420, ExpiresIn: 398, LastStatus: 0, LastStatusText: "accepted",
			Health: control.Health{Liveness: "alive", RTTMs: 0.31, Loss: 0.0625}},
		{Peer: ha, Role: control.RoleHA, BID: 2, Interface: "wlan0", CoA: coa2, Priority: 20, State: "registering",
			Sequence: 12, Lifetime: 420, LastStatus: control.NoStatus},
		{Peer: cn, Role: control.RoleCN, BID: 1, Interface: "eth0", CoA: coa1, Priority: 30, State: "failed",
			Sequence: 3, LastStatus: 144, LastStatusText: "MCOA CONFLICT", LastError: "rejected: MCOA CONFLICT"},
	}
	testInterfaces = []control.Interface{
		{Name: "eth0", Index: 2, BID: 1, CoA: coa1, Priority: 30, State: "up"},
		{Name: "wlan0", Index: 3, BID: 2, CoA: coa2, Priority: 20, State: "up", Metered: true,
			Health: control.Health{Liveness: "suspect", RTTMs: 12.5, Loss: 0.5}},
		{Name: "wwan0", Index: 14, BID: 3, Priority: 10, State: "no-coa"},
	}
	testPolicies = []control.Policy{
		{Name: "voice", Protocol: "udp", DstPort: "5060-5061", Prefer: []string{"eth*", "wlan*", "wwan*"}},
		{Name: "backup", DstPrefix: "2001:db8:cccc::/48", User: "backup", Cgroup: "/system.slice/backup.service", Prefer: []string{"3"}},
	}
	testCache = []control.CacheEntry{
		{HoA: hoa, BID: 1, CoA: coa1, Priority: 30, Sequence: 7, Lifetime: 420, ExpiresIn: 401, HomeRegistration: true},
		{HoA: hoa, BID: 0, CoA: coa2, Sequence: 2, Lifetime: 60, ExpiresIn: 59},
	}
)

type server struct {
	sock   string
	mn     *fakeMN
	events *control.Events
}

func startServer(t *testing.T, name string, cfg control.Config) *server {
	t.Helper()
	cfg.Socket = filepath.Join(t.TempDir(), name)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Group = strconv.Itoa(os.Getgid())
	srv, err := control.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s := &server{sock: cfg.Socket, events: cfg.Events}
	s.mn, _ = cfg.MN.(*fakeMN)
	return s
}

func startMN(t *testing.T) *server {
	return startServer(t, "mcoad.sock", control.Config{MN: &fakeMN{}, Events: control.NewEvents(0)})
}

// mcoactl runs the command line and returns exit code, stdout and stderr.
func mcoactl(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

const (
	goldenStatus = `daemon:        mcoad 0.1
home address:  2001:db8:aaaa::100
home agent:    2001:db8:aaaa::1
registration:  bulk
bid mode:      interface
profile:       draft-00
dataplane:     tun
at home:       no
uptime:        1h2m3s
bindings:      3 (2 registered)
interfaces:    3
policies:      1

health: ok
`
	goldenBindings = `BID  INTERFACE  COA             PRIO  STATE        PATH   RTT     LOSS  SEQ  LIFETIME  EXPIRES  STATUS               ROLE  PEER
1    eth0       2001:db8:1::10  30    registered   alive  0.31ms  6%    7    7m0s      6m38s    0 (accepted)         ha    2001:db8:aaaa::1
2    wlan0      2001:db8:2::10  20    registering  -      -       -     12   7m0s      -        -                    ha    2001:db8:aaaa::1
1    eth0       2001:db8:1::10  30    failed       -      -       -     3    -         -        144 (MCOA CONFLICT)  cn    2001:db8:cccc::1

Last errors:
  BID 1 cn 2001:db8:cccc::1: rejected: MCOA CONFLICT
`
	goldenInterfaces = `NAME   INDEX  BID  COA             PRIO  STATE   PATH     RTT      LOSS  HOME  METERED
eth0   2      1    2001:db8:1::10  30    up      -        -        -     -     -
wlan0  3      2    2001:db8:2::10  20    up      suspect  12.50ms  50%   -     yes
wwan0  14     3    -               10    no-coa  -        -        -     -     -
`
	goldenPolicies = `NAME    PROTO  SRC-PORT  DST-PORT   DST-PREFIX          USER    CGROUP                        PREFER
voice   udp    -         5060-5061  -                   -       -                             eth*,wlan*,wwan*
backup  -      -         -          2001:db8:cccc::/48  backup  /system.slice/backup.service  3
`
	goldenCache = `HOA                 BID  COA             PRIO  SEQ  LIFETIME  EXPIRES  TYPE
2001:db8:aaaa::100  1    2001:db8:1::10  30    7    7m0s      6m41s    home
2001:db8:aaaa::100  -    2001:db8:2::10  0     2    1m0s      59s      cn
`
	goldenHAStatus = `daemon:         mcoa-ha
home agent:     2001:db8:aaaa::1
registration:   bulk
profile:        draft-00
uptime:         59s
cache entries:  2
`
)

func TestTables(t *testing.T) {
	s := startMN(t)
	for _, c := range []struct {
		cmd  string
		want string
	}{
		{"status", goldenStatus},
		{"bindings", goldenBindings},
		{"interfaces", goldenInterfaces},
		{"policy", goldenPolicies},
		{"policy list", goldenPolicies},
	} {
		code, out, errs := mcoactl(append([]string{"-socket", s.sock}, strings.Fields(c.cmd)...)...)
		if code != 0 || out != c.want || errs != "" {
			t.Errorf("mcoactl %s = %d, stderr %q, stdout:\n%s\nwant:\n%s", c.cmd, code, errs, out, c.want)
		}
	}
	h := startServer(t, "mcoa-ha.sock", control.Config{HA: fakeHA{}})
	for _, c := range []struct {
		cmd  string
		want string
	}{
		{"cache", goldenCache},
		{"status", goldenHAStatus},
	} {
		code, out, errs := mcoactl("-socket", h.sock, c.cmd)
		if code != 0 || out != c.want || errs != "" {
			t.Errorf("mcoactl %s = %d, stderr %q, stdout:\n%s\nwant:\n%s", c.cmd, code, errs, out, c.want)
		}
	}
}

func TestEmptyTables(t *testing.T) {
	for _, c := range []struct {
		render func(io.Writer) error
		want   string
	}{
		{func(w io.Writer) error { return writeBindings(w, nil) }, "no bindings\n"},
		{func(w io.Writer) error { return writeInterfaces(w, nil) }, "no interfaces\n"},
		{func(w io.Writer) error { return writePolicies(w, nil) }, "no policies\n"},
		{func(w io.Writer) error { return writeCache(w, nil) }, "binding cache is empty\n"},
	} {
		var b bytes.Buffer
		if err := c.render(&b); err != nil || b.String() != c.want {
			t.Errorf("got %q %v, want %q", b.String(), err, c.want)
		}
	}
}

func TestJSONOutput(t *testing.T) {
	s := startMN(t)
	h := startServer(t, "mcoa-ha.sock", control.Config{HA: fakeHA{}})
	check := func(args []string, into, want any) {
		t.Helper()
		code, out, errs := mcoactl(args...)
		if code != 0 || errs != "" {
			t.Fatalf("%v: %d %s", args, code, errs)
		}
		if err := json.Unmarshal([]byte(out), into); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if got := reflect.ValueOf(into).Elem().Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%v: got %+v, want %+v", args, got, want)
		}
	}
	check([]string{"-socket", s.sock, "--json", "bindings"}, new([]control.Binding), testBindings)
	check([]string{"-socket", s.sock, "-json", "interfaces"}, new([]control.Interface), testInterfaces)
	check([]string{"-socket", s.sock, "--json", "status"}, new(control.Status), testStatus)
	check([]string{"-socket", s.sock, "--json", "policy", "list"}, new([]control.Policy), testPolicies)
	check([]string{"-socket", h.sock, "--json", "cache"}, new([]control.CacheEntry), testCache)
	check([]string{"-socket", s.sock, "--json", "reload"}, new(control.OK), control.OK{OK: true})

	// The API's field names, not Go's.
	_, out, _ := mcoactl("-socket", s.sock, "--json", "bindings")
	for _, f := range []string{`"peer"`, `"role"`, `"bid"`, `"interface"`, `"coa"`, `"priority"`, `"state"`, `"sequence"`, `"lifetime"`, `"expires_in"`, `"last_status"`} {
		if !strings.Contains(out, f+":") {
			t.Errorf("--json bindings lacks %s", f)
		}
	}
}

func TestMutatingCommands(t *testing.T) {
	s := startMN(t)
	for _, c := range []struct {
		args string
		call string
		out  string
	}{
		{"register", "Register []", "registration started for all bindings\n"},
		{"register 1 3", "Register [1 3]", "registration started for BIDs 1, 3\n"},
		{"deregister 2", "Deregister [2] false", "de-registration started for BID 2\n"},
		{"deregister --all", "Deregister [] true", "de-registration started for all bindings\n"},
		{"priority 2 5", "SetPriority 2 5", "BID 2: priority 5\n"},
		{"policy add voice -protocol udp -dst-port 5060-5061 -prefer eth*,wlan*", "AddPolicy {Name:voice Protocol:udp SrcPrefix: SrcPort: DstPort:5060-5061 DstPrefix: User: Cgroup: Prefer:[eth* wlan*]}", "policy voice added (kept across reloads, not across a restart)\n"},
		{"policy add -name bulk -dst-prefix 2001:db8::/32 -user 1000 -cgroup /a -src-port 1 -prefer 3", "AddPolicy {Name:bulk Protocol: SrcPrefix: SrcPort:1 DstPort: DstPrefix:2001:db8::/32 User:1000 Cgroup:/a Prefer:[3]}", "policy bulk added (kept across reloads, not across a restart)\n"},
		{"policy delete voice", "DeletePolicy voice", "policy voice deleted\n"},
		{"reload", "Reload", "configuration reloaded\n"},
		{"hint up wlan0", `Hint up "wlan0"`, "hint sent: up wlan0\n"},
		{"hint connectivity", `Hint connectivity ""`, "hint sent: connectivity\n"},
	} {
		code, out, errs := mcoactl(append([]string{"-socket", s.sock}, strings.Fields(c.args)...)...)
		if code != 0 || errs != "" || out != c.out {
			t.Errorf("%s: %d %q %q", c.args, code, out, errs)
		}
		if got := s.mn.last(); got != c.call {
			t.Errorf("%s: backend got %q, want %q", c.args, got, c.call)
		}
	}
	// --json on policy add prints the policy as the API returns it.
	code, out, _ := mcoactl("-socket", s.sock, "--json", "policy", "add", "v", "-prefer", "eth*")
	if code != 0 || out != "{\n  \"name\": \"v\",\n  \"prefer\": [\n    \"eth*\"\n  ]\n}\n" {
		t.Errorf("--json policy add: %d %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	s := startMN(t)
	calls := len(s.mn.calls)
	for _, args := range []string{
		"", "frobnicate", "-nosuchflag status", "status extra",
		"deregister", "deregister 1 --all", "deregister 0", "deregister x",
		"register 70000", "priority 1", "priority x 5", "priority 1 256", "priority 0 1",
		"hint", "hint sideways", "hint up a b",
		"policy add", "policy add x", "policy add x -prefer a extra", "policy delete", "policy frob",
		"monitor now",
	} {
		code, out, errs := mcoactl(append([]string{"-socket", s.sock}, strings.Fields(args)...)...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage: mcoactl") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if len(s.mn.calls) != calls {
		t.Errorf("usage errors reached the daemon: %v", s.mn.calls[calls:])
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		if code, out, _ := mcoactl(args...); code != 0 || !strings.HasPrefix(out, "usage: mcoactl") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
}

func TestDaemonErrors(t *testing.T) {
	s := startMN(t)
	s.mn.err = fmt.Errorf("no binding with BID 9: %w", control.ErrNotFound)
	code, out, errs := mcoactl("-socket", s.sock, "priority", "9", "1")
	if code != 1 || out != "" || errs != "mcoactl: mcoad: no binding with BID 9: not found\n" {
		t.Errorf("backend error: %d %q %q", code, out, errs)
	}
	// The server's own validation reason comes through too.
	code, _, errs = mcoactl("-socket", s.sock, "policy", "add", "bad name!", "-prefer", "x")
	if code != 1 || !strings.Contains(errs, `mcoactl: mcoad: policy name "bad name!"`) {
		t.Errorf("server validation: %d %q", code, errs)
	}
	// mcoa-ha does not serve mcoad's routes.
	h := startServer(t, "mcoa-ha.sock", control.Config{HA: fakeHA{}})
	code, _, errs = mcoactl("-socket", h.sock, "bindings")
	if code != 1 || errs != "mcoactl: mcoa-ha: no such route /v1/bindings on mcoa-ha\n" {
		t.Errorf("bindings on mcoa-ha: %d %q", code, errs)
	}
}

func TestNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mcoad.sock")
	code, out, errs := mcoactl("-socket", sock, "status")
	if want := "mcoactl: mcoad is not running (no socket at " + sock + ")\n"; code != 1 || out != "" || errs != want {
		t.Errorf("got %d %q %q, want %q", code, out, errs, want)
	}
	code, _, errs = mcoactl("-socket", sock, "monitor")
	if code != 1 || !strings.Contains(errs, "mcoad is not running") {
		t.Errorf("monitor: %d %q", code, errs)
	}
	// cache goes to mcoa-ha's socket unless told otherwise.
	if _, err := os.Stat(control.DefaultHASocket); err == nil {
		t.Skip("a real mcoa-ha runs here")
	}
	code, _, errs = mcoactl("cache")
	if want := "mcoactl: mcoa-ha is not running (no socket at /run/mcoad/mcoa-ha.sock)\n"; code != 1 || errs != want {
		t.Errorf("cache: %d %q, want %q", code, errs, want)
	}
}

type syncBuffer = testutil.SyncBuffer

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, "the condition", cond)
}

func publishSample(e *control.Events) {
	when := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	b := testBindings[0]
	b3 := testBindings[2]
	i := testInterfaces[1]
	p := testPolicies[0]
	ce := testCache[0]
	e.Publish(control.Event{Time: when, Kind: control.EventBinding, Binding: &b})
	e.Publish(control.Event{Time: when, Kind: control.EventBinding, Binding: &b3})
	e.Publish(control.Event{Time: when, Kind: control.EventInterface, Interface: &i})
	e.Publish(control.Event{Time: when, Kind: control.EventPolicy, Policy: &p})
	e.Publish(control.Event{Time: when, Kind: control.EventPolicy, Policy: &p, Removed: true})
	e.Publish(control.Event{Time: when, Kind: control.EventCache, Cache: &ce})
	e.Publish(control.Event{Time: when, Kind: control.EventReload, Message: "configuration reloaded"})
	e.Publish(control.Event{Time: when, Kind: control.EventLost, Lost: 12})
}

const goldenMonitor = `2026-03-04 05:06:07.890 binding ha 2001:db8:aaaa::1 bid 1 eth0 2001:db8:1::10 registered prio 30 seq 7 lifetime 7m0s status 0 (accepted) path alive rtt 0.31ms loss 6%
2026-03-04 05:06:07.890 binding cn 2001:db8:cccc::1 bid 1 eth0 2001:db8:1::10 failed prio 30 seq 3 lifetime - status 144 (MCOA CONFLICT) error: rejected: MCOA CONFLICT
2026-03-04 05:06:07.890 interface wlan0 up bid 2 2001:db8:2::10 prio 20 path suspect rtt 12.50ms loss 50% metered
2026-03-04 05:06:07.890 policy voice prefer eth*,wlan*,wwan*
2026-03-04 05:06:07.890 policy removed voice
2026-03-04 05:06:07.890 cache 2001:db8:aaaa::100 bid 1 2001:db8:1::10 prio 30 seq 7 lifetime 7m0s
2026-03-04 05:06:07.890 reload configuration reloaded
2026-03-04 05:06:07.890 lost 12 events (this monitor fell behind)
`

func TestMonitor(t *testing.T) {
	s := startMN(t)
	var out, errs syncBuffer
	codec := make(chan int, 1)
	go func() { codec <- runContext(context.Background(), []string{"-socket", s.sock, "monitor"}, &out, &errs) }()
	waitFor(t, func() bool { return s.events.Subscribers() == 1 })
	publishSample(s.events)
	s.events.Close() // the daemon going away ends the stream after these
	code := <-codec
	if out.String() != goldenMonitor {
		t.Errorf("monitor:\n%s\nwant:\n%s", out.String(), goldenMonitor)
	}
	if code != 1 || errs.String() != "mcoactl: the daemon ended the event stream\n" {
		t.Errorf("end of stream: %d %q", code, errs.String())
	}
}

func TestMonitorJSONAndInterrupt(t *testing.T) {
	s := startMN(t)
	var out, errs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codec := make(chan int, 1)
	go func() { codec <- runContext(ctx, []string{"-socket", s.sock, "--json", "monitor"}, &out, &errs) }()
	waitFor(t, func() bool { return s.events.Subscribers() == 1 })
	publishSample(s.events)
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 8 })
	cancel() // Ctrl-C: a normal end
	if code := <-codec; code != 0 || errs.String() != "" {
		t.Errorf("interrupted monitor: %d %q", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	first := `{"seq":1,"time":"2026-03-04T05:06:07.89Z","kind":"binding","binding":{"peer":"2001:db8:aaaa::1","role":"ha","bid":1,"interface":"eth0","coa":"2001:db8:1::10","priority":30,"state":"registered","sequence":7,"lifetime":420,"expires_in":398,"last_status":0,"last_status_text":"accepted","liveness":"alive","rtt_ms":0.31,"loss":0.0625}}`
	if lines[0] != first {
		t.Errorf("first line:\n%s\nwant\n%s", lines[0], first)
	}
	for i, l := range lines {
		var ev control.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Seq != uint64(i+1) {
			t.Errorf("line %d: %v %s", i, err, l)
		}
	}
}
