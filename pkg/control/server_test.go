package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// mnConfig serves m; the test's own group is the control group, so that
// mutating calls are allowed whether or not the test runs as root.
func mnConfig(m *fakeMN) Config {
	return Config{MN: m, Group: strconv.Itoa(os.Getgid()), Events: NewEvents(0)}
}

func TestGetRoutesShapes(t *testing.T) {
	m := sampleMN()
	ts := startServer(t, mnConfig(m))

	cases := []struct {
		path string
		keys string // sorted keys of the (first) object
	}{
		{"/v1/status", "at_home bid_mode counts daemon dataplane home_address home_agent mode profile uptime version"},
		{"/v1/bindings", "bid coa expires_in interface last_status last_status_text lifetime peer priority role sequence state"},
		{"/v1/interfaces", "bid coa home_link index metered name priority state"},
		{"/v1/policies", "dst_port name prefer protocol"},
	}
	for _, c := range cases {
		code, hdr, body := raw(t, ts.sock, "GET", c.path, "")
		if code != 200 {
			t.Fatalf("GET %s: %d %s", c.path, code, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", c.path, ct)
		}
		obj := body
		if body[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(body, &arr); err != nil || len(arr) == 0 {
				t.Fatalf("GET %s: %v %s", c.path, err, body)
			}
			obj = arr[0]
		}
		if got := strings.Join(keys(t, obj), " "); got != c.keys {
			t.Errorf("GET %s keys:\n got %s\nwant %s", c.path, got, c.keys)
		}
	}

	// Exact values of one binding, and the counts object.
	_, _, body := raw(t, ts.sock, "GET", "/v1/bindings", "")
	want := `[{"peer":"2001:db8:aaaa::1","role":"ha","bid":1,"interface":"eth0","coa":"2001:db8:1::10","priority":30,"state":"registered","sequence":7,"lifetime":420,"expires_in":400,"last_status":0,"last_status_text":"accepted"},` +
		`{"peer":"2001:db8:aaaa::1","role":"ha","bid":2,"interface":"wlan0","coa":"2001:db8:2::10","priority":20,"state":"registering","sequence":3,"lifetime":420,"expires_in":0,"last_status":-1}]` + "\n"
	if string(body) != want {
		t.Errorf("bindings:\n got %s\nwant %s", body, want)
	}
	_, _, body = raw(t, ts.sock, "GET", "/v1/status", "")
	var st map[string]json.RawMessage
	json.Unmarshal(body, &st)
	if got := string(st["counts"]); got != `{"bindings":2,"registered":1,"interfaces":3,"policies":1,"cache_entries":0}` {
		t.Errorf("counts = %s", got)
	}

	// The typed client reads the same back.
	ctx := context.Background()
	bs, err := ts.client.Bindings(ctx)
	if err != nil || !reflect.DeepEqual(bs, m.bindings) {
		t.Errorf("client Bindings = %+v, %v", bs, err)
	}
	s, err := ts.client.Status(ctx)
	if err != nil || !reflect.DeepEqual(s, m.status) {
		t.Errorf("client Status = %+v, %v", s, err)
	}
	is, err := ts.client.Interfaces(ctx)
	if err != nil || !reflect.DeepEqual(is, m.ifaces) {
		t.Errorf("client Interfaces = %+v, %v", is, err)
	}
	ps, err := ts.client.Policies(ctx)
	if err != nil || !reflect.DeepEqual(ps, m.policies) {
		t.Errorf("client Policies = %+v, %v", ps, err)
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	ts := startServer(t, mnConfig(&fakeMN{}))
	for _, p := range []string{"/v1/bindings", "/v1/interfaces", "/v1/policies"} {
		if code, _, body := raw(t, ts.sock, "GET", p, ""); code != 200 || string(body) != "[]\n" {
			t.Errorf("GET %s = %d %q, want []", p, code, body)
		}
	}
}

func TestMutatingRoutes(t *testing.T) {
	m := sampleMN()
	ts := startServer(t, mnConfig(m))
	c := ts.client
	ctx := context.Background()
	steps := []struct {
		do   func() error
		call string
	}{
		{func() error { return c.Register(ctx) }, "Register []"},
		{func() error { return c.Register(ctx, 1, 3) }, "Register [1 3]"},
		{func() error { return c.Deregister(ctx, []uint16{2}, false) }, "Deregister [2] false"},
		{func() error { return c.Deregister(ctx, nil, true) }, "Deregister [] true"},
		{func() error { return c.SetPriority(ctx, 2, 0) }, "SetPriority 2 0"},
		{func() error { return c.SetPriority(ctx, 65535, 255) }, "SetPriority 65535 255"},
		{func() error {
			return c.AddPolicy(ctx, Policy{Name: "web", Protocol: "tcp", SrcPrefix: "2001:db8:bbbb::/64", DstPort: "443", DstPrefix: "2001:db8::/32", User: "alice", Cgroup: "/user.slice", SrcPort: "1000-2000", Prefer: []string{"wlan*"}})
		}, "AddPolicy {Name:web Protocol:tcp SrcPrefix:2001:db8:bbbb::/64 SrcPort:1000-2000 DstPort:443 DstPrefix:2001:db8::/32 User:alice Cgroup:/user.slice Prefer:[wlan*]}"},
		{func() error { return c.DeletePolicy(ctx, "web") }, "DeletePolicy web"},
		{func() error { return c.Reload(ctx) }, "Reload"},
		{func() error { return c.Hint(ctx, HintUp, "wlan0") }, "Hint up wlan0"},
		{func() error { return c.Hint(ctx, HintConnectivity, "") }, "Hint connectivity "},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d (%s): %v", i, s.call, err)
		}
		calls := m.Calls()
		if got := calls[len(calls)-1]; got != s.call {
			t.Errorf("step %d: backend got %q, want %q", i, got, s.call)
		}
	}

	// Raw answers: OK object, 201 with the policy echoed, empty bodies
	// allowed where the body is optional.
	if code, _, body := raw(t, ts.sock, "POST", "/v1/reload", ""); code != 200 || string(body) != `{"ok":true}`+"\n" {
		t.Errorf("reload = %d %s", code, body)
	}
	if code, _, body := raw(t, ts.sock, "POST", "/v1/register", ""); code != 200 {
		t.Errorf("register with empty body = %d %s", code, body)
	}
	code, _, body := raw(t, ts.sock, "POST", "/v1/policies", `{"name":"dns","protocol":"udp","dst_port":"53","prefer":["eth*"]}`)
	if code != 201 || string(body) != `{"name":"dns","protocol":"udp","dst_port":"53","prefer":["eth*"]}`+"\n" {
		t.Errorf("add policy = %d %s", code, body)
	}
	// The backend saw the peer: this test process.
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.peers) == 0 {
		t.Fatal("backend saw no peer credentials")
	}
	if p := m.peers[len(m.peers)-1]; p.UID != uint32(os.Getuid()) || p.PID != int32(os.Getpid()) {
		t.Errorf("peer = %+v, want uid %d pid %d", p, os.Getuid(), os.Getpid())
	}
}

func TestBadInput(t *testing.T) {
	m := sampleMN()
	ts := startServer(t, mnConfig(m))
	big := `{"bids":[` + strings.Repeat("1,", MaxBodySize/2) + `1]}`
	cases := []struct {
		method, path, body string
		code               int
		reason             string // part of the error
	}{
		{"POST", "/v1/deregister", "", 400, "empty request body"},
		{"POST", "/v1/deregister", "garbage", 400, "bad request body"},
		{"POST", "/v1/deregister", `{"bids":[1]} x`, 400, "data after"},
		{"POST", "/v1/deregister", `{"bids":"1"}`, 400, "cannot unmarshal"},
		{"POST", "/v1/deregister", `{"bids":[70000]}`, 400, "cannot unmarshal"},
		{"POST", "/v1/deregister", `{"bids":[-1]}`, 400, "cannot unmarshal"},
		{"POST", "/v1/deregister", `{"bid":[1]}`, 400, "unknown field"},
		{"POST", "/v1/deregister", `{}`, 400, "either"},
		{"POST", "/v1/deregister", `{"bids":[1],"all":true}`, 400, "either"},
		{"POST", "/v1/deregister", `{"bids":[0]}`, 400, "reserved"},
		{"POST", "/v1/deregister", `[1,2]`, 400, "cannot unmarshal"},
		{"POST", "/v1/deregister", big, 400, "larger than"},
		{"POST", "/v1/register", `{"bids":[0]}`, 400, "reserved"},
		{"POST", "/v1/register", `{"all":true}`, 400, "unknown field"},
		{"POST", "/v1/priority", `{"bid":1}`, 400, "required"},
		{"POST", "/v1/priority", `{"bid":1,"priority":256}`, 400, "cannot unmarshal"},
		{"POST", "/v1/priority", `{"bid":0,"priority":1}`, 400, "reserved"},
		{"POST", "/v1/priority", `{"bid":1.5,"priority":1}`, 400, "cannot unmarshal"},
		{"POST", "/v1/priority", `null`, 400, "required"},
		{"POST", "/v1/hint", `{"kind":"sideways"}`, 400, "hint kind"},
		{"POST", "/v1/hint", `{"kind":"up","interface":"a/b"}`, 400, "interface name"},
		{"POST", "/v1/hint", `{"kind":"up","interface":"averyveryverylongname"}`, 400, "interface name"},
		{"POST", "/v1/reload", `{"x":1}`, 400, "unknown field"},
		{"POST", "/v1/policies", `{"name":"","prefer":["eth*"]}`, 400, "name is empty"},
		{"POST", "/v1/policies", `{"name":"a b","prefer":["eth*"]}`, 400, "policy name"},
		{"POST", "/v1/policies", `{"name":"x"}`, 400, "prefer is empty"},
		{"POST", "/v1/policies", `{"name":"x","prefer":"eth*"}`, 400, "cannot unmarshal"},
		{"DELETE", "/v1/policies/", "", 400, "name is empty"},
		{"DELETE", "/v1/policies/a%20b", "", 400, "policy name"},
		{"GET", "/v1/nothing", "", 404, "no such route"},
		{"GET", "/v1/status/", "", 404, "no such route"},
		{"GET", "/v1/cache", "", 404, "no such route"}, // no HA backend here
		{"GET", "/", "", 404, "no such route"},
		{"POST", "/v1/status", "{}", 405, "not allowed"},
		{"DELETE", "/v1/bindings", "", 405, "not allowed"},
		{"GET", "/v1/register", "", 405, "not allowed"},
		{"PUT", "/v1/policies", "", 405, "not allowed"},
		{"GET", "/v1/policies/voice", "", 405, "not allowed"},
	}
	before := len(m.Calls())
	for _, c := range cases {
		code, hdr, body := raw(t, ts.sock, c.method, c.path, c.body)
		var e Error
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s %s %.40q: body not JSON: %s", c.method, c.path, c.body, body)
			continue
		}
		if code != c.code || !strings.Contains(e.Error, c.reason) {
			t.Errorf("%s %s %.40q = %d %q, want %d with %q", c.method, c.path, c.body, code, e.Error, c.code, c.reason)
		}
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
	if got := m.Calls()[before:]; len(got) != 0 {
		t.Errorf("bad requests reached the backend: %v", got)
	}
	// The server still works.
	if _, err := ts.client.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBackendErrors(t *testing.T) {
	m := sampleMN()
	ts := startServer(t, mnConfig(m))
	ctx := context.Background()
	cases := []struct {
		err  error
		code int
		is   error
	}{
		{fmt.Errorf("policy %q: %w", "x", ErrNotFound), 404, ErrNotFound},
		{fmt.Errorf("mcoad.toml:3: key lifetime: %w", ErrInvalid), 400, ErrInvalid},
		{fmt.Errorf("policy exists: %w", ErrConflict), 409, ErrConflict},
		{errors.New("engine stopped"), 500, nil},
	}
	for _, c := range cases {
		m.mu.Lock()
		m.err = c.err
		m.mu.Unlock()
		code, _, body := raw(t, ts.sock, "POST", "/v1/reload", "")
		want, _ := json.Marshal(Error{Error: c.err.Error()})
		if code != c.code || string(body) != string(want)+"\n" {
			t.Errorf("%v: %d %s, want %d %s", c.err, code, body, c.code, want)
		}
		err := ts.client.Reload(ctx)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != c.code || ae.Reason != c.err.Error() {
			t.Errorf("client: %v", err)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("client error %v is not %v", err, c.is)
		}
		if _, err := ts.client.Bindings(ctx); err == nil {
			t.Errorf("%v: GET succeeded", c.err)
		}
	}
	m.mu.Lock()
	m.err = nil
	m.mu.Unlock()
	if err := ts.client.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := (&APIError{Daemon: DaemonMN, Code: 500, Reason: "engine stopped"}).Error(); got != "mcoad failed: engine stopped" {
		t.Errorf("APIError = %q", got)
	}
}

func TestBackendPanic(t *testing.T) {
	m := sampleMN()
	m.panicky = true
	ts := startServer(t, mnConfig(m))
	code, _, body := raw(t, ts.sock, "GET", "/v1/status", "")
	if code != 500 || !strings.Contains(string(body), `"error":"internal error"`) {
		t.Errorf("panic answered %d %s", code, body)
	}
	if _, err := ts.client.Bindings(context.Background()); err != nil {
		t.Errorf("server dead after a panic: %v", err)
	}
}

func TestHARoutes(t *testing.T) {
	ha := &fakeHA{
		status: Status{Daemon: DaemonHA, HomeAgent: sampleMN().status.HomeAgent, Mode: "bulk", Profile: "draft-00", Counts: Counts{CacheEntries: 1}},
		cache: []CacheEntry{{
			HoA: sampleMN().status.HomeAddress, BID: 0, CoA: sampleMN().bindings[0].CoA,
			Priority: 0, Sequence: 9, Lifetime: 420, ExpiresIn: 12, HomeRegistration: true,
		}},
	}
	ts := startServer(t, Config{HA: ha, Socket: filepath.Join(t.TempDir(), "mcoa-ha.sock")})
	code, _, body := raw(t, ts.sock, "GET", "/v1/cache", "")
	want := `[{"hoa":"2001:db8:aaaa::100","bid":0,"coa":"2001:db8:1::10","priority":0,"sequence":9,"lifetime":420,"expires_in":12,"home_registration":true}]` + "\n"
	if code != 200 || string(body) != want {
		t.Errorf("cache = %d\n got %s\nwant %s", code, body, want)
	}
	ce, err := ts.client.Cache(context.Background())
	if err != nil || !reflect.DeepEqual(ce, ha.cache) {
		t.Errorf("client Cache = %+v, %v", ce, err)
	}
	st, err := ts.client.Status(context.Background())
	if err != nil || st.Daemon != DaemonHA || st.HomeAddress.IsValid() {
		t.Errorf("status = %+v %v", st, err)
	}
	_, _, body = raw(t, ts.sock, "GET", "/v1/status", "")
	if !strings.Contains(string(body), `"home_address":""`) {
		t.Errorf("unset address not encoded as empty string: %s", body)
	}
	for _, p := range []string{"/v1/bindings", "/v1/events", "/v1/policies"} {
		if code, _, _ := raw(t, ts.sock, "GET", p, ""); code != 404 {
			t.Errorf("mcoa-ha serves %s: %d", p, code)
		}
	}
	_, err = ts.client.Bindings(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "mcoa-ha: no such route") {
		t.Errorf("Bindings on mcoa-ha: %v", err)
	}
}

func TestMetricsRoute(t *testing.T) {
	m := sampleMN()
	cfg := mnConfig(m)
	cfg.Metrics = MetricsFunc(func() []Metric {
		return []Metric{
			{Name: "mcoad_bindings", Help: "Bindings by state.", Type: Gauge, Samples: []Sample{
				{Labels: map[string]string{"state": "registered", "role": "ha"}, Value: 2},
			}},
			{Name: "mcoad_bu_sent_total", Type: Counter, Samples: []Sample{{Value: 17}}},
		}
	})
	ts := startServer(t, cfg)
	got, err := ts.client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := `# HELP mcoad_bindings Bindings by state.
# TYPE mcoad_bindings gauge
mcoad_bindings{role="ha",state="registered"} 2
# TYPE mcoad_bu_sent_total counter
mcoad_bu_sent_total 17
# HELP mcoa_control_event_subscribers Open GET /v1/events streams.
# TYPE mcoa_control_event_subscribers gauge
mcoa_control_event_subscribers 0
# HELP mcoa_control_events_lost_total Events slow subscribers lost.
# TYPE mcoa_control_events_lost_total counter
mcoa_control_events_lost_total 0
`
	if got != want {
		t.Errorf("metrics:\n%s\nwant:\n%s", got, want)
	}
	_, hdr, _ := raw(t, ts.sock, "GET", "/metrics", "")
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestWriteMetricsEscapesAndSkips(t *testing.T) {
	var b strings.Builder
	skipped, err := writeMetrics(&b, []Metric{
		{Name: "a_b", Help: "line\nback\\slash", Samples: []Sample{
			{Labels: map[string]string{"if": "e\"t\\h\n0", "bad-label": "x"}, Value: 1.5},
		}},
		{Name: "9bad", Samples: []Sample{{Value: 1}}},
		{Name: "a_b", Samples: []Sample{{Value: 2}}},
		{Name: "c:d", Type: "weird", Samples: []Sample{{Value: 1e21}, {Value: -1}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "# HELP a_b line\\nback\\\\slash\n# TYPE a_b gauge\na_b{if=\"e\\\"t\\\\h\\n0\"} 1.5\n" +
		"# TYPE c:d gauge\nc:d 1e+21\nc:d -1\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if strings.Join(skipped, ",") != "9bad,a_b" {
		t.Errorf("skipped = %v", skipped)
	}
}

func TestServerNeedsBackendAndSocket(t *testing.T) {
	if _, err := NewServer(Config{MN: &fakeMN{}}); err == nil {
		t.Error("no socket accepted")
	}
	if _, err := NewServer(Config{Socket: "/x"}); err == nil {
		t.Error("no backend accepted")
	}
}

// The route handlers never panic and answer only 2xx or 4xx to anything.
func FuzzPostBodies(f *testing.F) {
	for _, s := range []string{`{"bids":[1,2]}`, `{"all":true}`, `{"bid":1,"priority":3}`, `{"kind":"up","interface":"eth0"}`,
		`{"name":"v","prefer":["eth*"],"dst_prefix":"2001:db8::/32"}`, `null`, `[]`, `{"bids":[0]}`, "\x00", `{"bids":[1e400]}`} {
		f.Add(s)
	}
	srv, err := NewServer(Config{Socket: "/nonexistent/x.sock", MN: sampleMN(), Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	root := &Peer{PID: 1}
	paths := []string{"/v1/register", "/v1/deregister", "/v1/priority", "/v1/hint", "/v1/policies", "/v1/reload"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			req := newRequest("POST", p, body).WithContext(context.WithValue(context.Background(), peerKey{}, root))
			rec := newRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && rec.Code != http.StatusCreated && rec.Code != http.StatusBadRequest {
				t.Fatalf("POST %s %q: %d %s", p, body, rec.Code, rec.Body)
			}
			if rec.Code == http.StatusBadRequest && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("400 without JSON: %s", rec.Body)
			}
		}
	})
}

// mcoa-ha's POST /v1/reload: served when Config.Reload is set; a refused
// file is a 400 with its errors (mcoactl reload exits 1: systemctl reload
// fails); without Reload there is no such route.
func TestHAReload(t *testing.T) {
	var refuse error
	calls := 0
	ts := startServer(t, Config{HA: &fakeHA{}, Socket: filepath.Join(t.TempDir(), "mcoa-ha.sock"),
		Reload: func(context.Context) error { calls++; return refuse }})
	if err := ts.client.Reload(context.Background()); err != nil || calls != 1 {
		t.Fatalf("reload: %v (%d calls)", err, calls)
	}
	refuse = fmt.Errorf("%w: mcoa-ha.toml:3: home_agent.address: \"x\" is not an IPv6 address", ErrInvalid)
	code, _, body := raw(t, ts.sock, "POST", "/v1/reload", "")
	if code != 400 || !strings.Contains(string(body), "mcoa-ha.toml:3") {
		t.Errorf("refused reload = %d %s", code, body)
	}
	plain := startServer(t, Config{HA: &fakeHA{}, Socket: filepath.Join(t.TempDir(), "mcoa-ha2.sock")})
	if code, _, _ := raw(t, plain.sock, "POST", "/v1/reload", ""); code != 404 {
		t.Errorf("reload without Config.Reload = %d, want 404", code)
	}
}
