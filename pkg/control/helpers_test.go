package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fakeMN records the calls it gets and answers with canned data.
type fakeMN struct {
	mu       sync.Mutex
	calls    []string
	err      error // returned by every call when set
	panicky  bool  // Status panics
	peers    []Peer
	status   Status
	bindings []Binding
	ifaces   []Interface
	policies []Policy
}

func (f *fakeMN) record(ctx context.Context, format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	if p, ok := PeerFromContext(ctx); ok {
		f.peers = append(f.peers, p)
	}
	return f.err
}

func (f *fakeMN) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeMN) Status(ctx context.Context) (Status, error) {
	if f.panicky {
		panic("backend bug")
	}
	return f.status, f.record(ctx, "Status")
}
func (f *fakeMN) Bindings(ctx context.Context) ([]Binding, error) {
	return f.bindings, f.record(ctx, "Bindings")
}
func (f *fakeMN) Interfaces(ctx context.Context) ([]Interface, error) {
	return f.ifaces, f.record(ctx, "Interfaces")
}
func (f *fakeMN) Register(ctx context.Context, bids []uint16) error {
	return f.record(ctx, "Register %v", bids)
}
func (f *fakeMN) Deregister(ctx context.Context, bids []uint16, all bool) error {
	return f.record(ctx, "Deregister %v %v", bids, all)
}
func (f *fakeMN) SetPriority(ctx context.Context, bid uint16, prio uint8) error {
	return f.record(ctx, "SetPriority %d %d", bid, prio)
}
func (f *fakeMN) Policies(ctx context.Context) ([]Policy, error) {
	return f.policies, f.record(ctx, "Policies")
}
func (f *fakeMN) AddPolicy(ctx context.Context, p Policy) error {
	return f.record(ctx, "AddPolicy %+v", p)
}
func (f *fakeMN) DeletePolicy(ctx context.Context, name string) error {
	return f.record(ctx, "DeletePolicy %s", name)
}
func (f *fakeMN) Reload(ctx context.Context) error { return f.record(ctx, "Reload") }
func (f *fakeMN) Hint(ctx context.Context, kind, iface string) error {
	return f.record(ctx, "Hint %s %s", kind, iface)
}

type fakeHA struct {
	status Status
	cache  []CacheEntry
}

func (f *fakeHA) Status(context.Context) (Status, error)      { return f.status, nil }
func (f *fakeHA) Cache(context.Context) ([]CacheEntry, error) { return f.cache, nil }

func sampleMN() *fakeMN {
	return &fakeMN{
		status: Status{
			Daemon: DaemonMN, Version: "test",
			HomeAddress: netip.MustParseAddr("2001:db8:aaaa::100"),
			HomeAgent:   netip.MustParseAddr("2001:db8:aaaa::1"),
			Mode:        "bulk", BIDMode: "interface", Profile: "draft-00", Dataplane: "tun",
			Uptime: 3723, Counts: Counts{Bindings: 2, Registered: 1, Interfaces: 3, Policies: 1},
		},
		bindings: []Binding{{
			Peer: netip.MustParseAddr("2001:db8:aaaa::1"), Role: RoleHA, BID: 1, Interface: "eth0",
			CoA: netip.MustParseAddr("2001:db8:1::10"), Priority: 30, State: "registered",
			Sequence: 7, Lifetime: 420, ExpiresIn: 400, LastStatus: 0, LastStatusText: "accepted",
		}, {
			Peer: netip.MustParseAddr("2001:db8:aaaa::1"), Role: RoleHA, BID: 2, Interface: "wlan0",
			CoA: netip.MustParseAddr("2001:db8:2::10"), Priority: 20, State: "registering",
			Sequence: 3, Lifetime: 420, LastStatus: NoStatus,
		}},
		ifaces: []Interface{{
			Name: "eth0", Index: 2, BID: 1, CoA: netip.MustParseAddr("2001:db8:1::10"),
			Priority: 30, State: "up",
		}},
		policies: []Policy{{Name: "voice", Protocol: "udp", DstPort: "5060-5061", Prefer: []string{"eth*", "wlan*"}}},
	}
}

type testServer struct {
	sock   string
	srv    *Server
	client *Client
	done   chan error
	cancel context.CancelFunc
}

// startServer runs a server on a socket in a fresh temporary directory.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(t.TempDir(), "mcoad.sock")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{sock: cfg.Socket, srv: srv, client: NewClient(cfg.Socket), done: make(chan error, 1), cancel: cancel}
	go func() { ts.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// raw makes a request with a literal body and returns status, headers and
// body.
func raw(t *testing.T, sock, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://mcoad"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// keys returns the sorted keys of a JSON object.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// requireRoot skips t unless root; with MCOA_E2E=1 it fails instead.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("MCOA_E2E") == "1" {
		t.Fatal("test needs root (MCOA_E2E=1)")
	}
	t.Skip("test needs root")
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRequest(method, path, body string) *http.Request {
	return httptest.NewRequest(method, path, strings.NewReader(body))
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
