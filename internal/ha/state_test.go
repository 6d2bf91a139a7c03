package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/internal/testutil"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane/correspondent"
	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	mnpA = netip.MustParsePrefix("2001:db8:aaab::/64")
	t0   = time.Unix(1_700_000_000, 0)
)

// nemoHA is a home agent whose hoa is a mobile router for mnpA.
func nemoHA(t *testing.T) *config.HA {
	return mustParseHA(t, `
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
allow_unauthenticated = true
max_lifetime = 40
[[home_agent.mn]]
home_address = "2001:db8:aaaa::100"
prefixes = ["2001:db8:aaab::/64"]
`)
}

// stateAgent is one run of a home agent with a state directory.
type stateAgent struct {
	a     *Agent
	tr    *fakeTransport
	px    *fakeProxy
	pl    *bindingsPlane
	clk   *clock.Fake
	log   *testutil.SyncBuffer
	stop  func() // cancels Run and waits for it (the final write included)
	dir   string
	epoch time.Time
}

func startStateAgent(t *testing.T, cfg *config.HA, dir string, now time.Time) *stateAgent {
	t.Helper()
	s := &stateAgent{tr: newFake(), px: &fakeProxy{}, pl: &bindingsPlane{}, clk: clock.NewFake(now), log: &testutil.SyncBuffer{}, dir: dir, epoch: now}
	var err error
	cfg.HomeAgent.StateDir = dir
	s.a, err = New(cfg, Deps{Transport: s.tr, Proxy: s.px, Plane: s.pl, Clock: s.clk,
		Command: service.Command{Logger: slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.a.Run(ctx) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	// The first request is served once the restore is over.
	if _, err := s.a.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// writes returns how many copies the agent wrote.
func (s *stateAgent) writes() uint64 { return s.a.persist.store.writes.Load() }

// waitWrites waits until the agent wrote n copies.
func (s *stateAgent) waitWrites(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.writes() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d copies written, want %d; log:\n%s", s.writes(), n, s.log)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *stateAgent) readFile(t *testing.T) stateFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	return f
}

// crashImage copies the state directory as a crash would leave it (the
// running agent never stops cleanly).
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, stateFileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStateRestoreAfterCrash: every accepted BU reaches the file without a
// clean stop; a new agent restores the bindings before it serves, with
// their proxy neighbour entry, data plane (NEMO prefixes included),
// remaining lifetime and sequence numbers.
func TestStateRestoreAfterCrash(t *testing.T) {
	s := startStateAgent(t, nemoHA(t), t.TempDir(), t0)
	r := bu(coa1, 700, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 5, C: true, CoA: coa2})
	r.Packet.MH.Flags |= proto.FlagR
	r.Packet.MH.Options.Prefixes = []netip.Prefix{mnpA}
	s.tr.in <- r
	if ba := s.tr.next(t); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("BA status %d", ba.MH.Status)
	}
	s.waitWrites(t, 1)
	f := s.readFile(t)
	if f.Format != stateFormat || f.Version != stateVersion || len(f.HomeAgent) != 1 || len(f.HomeAgent[0].Bindings) != 2 ||
		f.HomeAgent[0].LastSequence != 700 || !slices.Equal(f.HomeAgent[0].Prefixes, []netip.Prefix{mnpA}) ||
		!f.HomeAgent[0].Bindings[1].MobileRouter || f.HomeAgent[0].Bindings[1].Lifetime != 40 {
		t.Fatalf("file: %+v", f)
	}
	dir := crashImage(t, s.dir)

	// Restarted 12 s later.
	n := startStateAgent(t, nemoHA(t), dir, t0.Add(12*time.Second))
	if got := n.px.proxied(); !slices.Equal(got, []netip.Addr{hoa}) {
		t.Fatalf("proxied %v after the restore", got)
	}
	bs := n.pl.last()
	if len(bs) != 2 || bs[0].CoA != coa1 || bs[1].CoA != coa2 || bs[0].Priority != 9 || !slices.Equal(bs[1].Prefixes, []netip.Prefix{mnpA}) {
		t.Fatalf("data plane after the restore: %+v", bs)
	}
	es, err := n.a.Cache(context.Background())
	if err != nil || len(es) != 2 || es[0].ExpiresIn != 28 || es[1].Sequence != 700 || !slices.Equal(es[0].Prefixes, []netip.Prefix{mnpA}) {
		t.Fatalf("cache after the restore: %+v, %v", es, err)
	}
	if !strings.Contains(n.log.String(), "bindings restored") {
		t.Errorf("log:\n%s", n.log)
	}

	// A replayed BU is refused with the last sequence number; the mobile
	// node's next is a refresh.
	n.tr.in <- bu(coa1, 700, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1})
	if ba := n.tr.next(t); ba.MH.Status != proto.StatusSequenceOutOfWindow || ba.MH.Sequence != 700 {
		t.Fatalf("replayed BU: BA status %d sequence %d", ba.MH.Status, ba.MH.Sequence)
	}
	r = bu(coa1, 701, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 5, C: true, CoA: coa2})
	r.Packet.MH.Flags |= proto.FlagR
	n.tr.in <- r
	if ba := n.tr.next(t); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("next BU: BA status %d", ba.MH.Status)
	}

	// The restored timers run: a BRR before the saved expiry, then the
	// bindings go and so do the proxy entry and the routes.
	m := startStateAgent(t, nemoHA(t), crashImage(t, s.dir), t0.Add(12*time.Second))
	m.clk.Advance(27 * time.Second) // BRR 4 s before expiry (28 s left)
	for range 2 {
		if p := m.tr.next(t); p.MH.Type != proto.TypeBRR {
			t.Fatalf("sent %v, want BRRs", p.MH.Type)
		}
	}
	m.clk.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for len(m.px.proxied()) != 0 || len(m.pl.last()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the restored expiry: proxied %v, plane %+v", m.px.proxied(), m.pl.last())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStateExpiredNotRestored: bindings whose lifetime ended while the
// agent was down are not restored.
func TestStateExpiredNotRestored(t *testing.T) {
	s := startStateAgent(t, haConfig(t), t.TempDir(), t0)
	s.tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
	s.tr.next(t)
	s.stop() // a clean stop writes the cache too
	n := startStateAgent(t, haConfig(t), s.dir, t0.Add(41*time.Second))
	if es, _ := n.a.Cache(context.Background()); len(es) != 0 {
		t.Fatalf("cache: %+v", es)
	}
	if len(n.px.proxied()) != 0 || n.pl.last() != nil {
		t.Fatalf("proxied %v, plane %+v", n.px.proxied(), n.pl.last())
	}
	if !strings.Contains(n.log.String(), "expired=1") {
		t.Errorf("log:\n%s", n.log)
	}
}

// TestStateCorrupt: an unreadable file, a foreign format or another
// version are logged, set aside, and the agent starts empty and works.
func TestStateCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "{\"format\": \"mcoa-ha bindings\", \"version\": 1, \"home_agent\": [{\"hoa\": 5",
		"empty":     "",
		"format":    `{"format": "something else", "version": 1}`,
		"version":   `{"format": "mcoa-ha bindings", "version": 2, "home_agent": []}`,
		"bad field": `{"format": "mcoa-ha bindings", "version": 1, "home_agent": [{"hoa": "2001:db8:aaaa::100", "bindings": [{"coa": "x"}]}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, stateFileName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := startStateAgent(t, haConfig(t), dir, t0)
			if !strings.Contains(s.log.String(), "saved bindings unreadable: starting with an empty binding cache") {
				t.Errorf("log:\n%s", s.log)
			}
			if b, err := os.ReadFile(path + ".bad"); err != nil || string(b) != content {
				t.Errorf("set aside: %q, %v", b, err)
			}
			s.tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
			if ba := s.tr.next(t); ba.MH.Status != proto.StatusAccepted {
				t.Fatalf("BA status %d", ba.MH.Status)
			}
			s.waitWrites(t, 1)
			if f := s.readFile(t); len(f.HomeAgent) != 1 {
				t.Fatalf("new file: %+v", f)
			}
		})
	}
}

// TestStateCoalesced: a burst of BUs makes one write at once and one when
// the interval is over, not one per BU; what is written is the latest.
func TestStateCoalesced(t *testing.T) {
	s := startStateAgent(t, haConfig(t), t.TempDir(), t0)
	const n = 30
	for i := range n {
		r := bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
		r.Packet.HomeAddress = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xaa, 15: byte(i + 2)})
		s.tr.in <- r
		if ba := s.tr.next(t); ba.MH.Status != proto.StatusAccepted {
			t.Fatalf("BU %d: BA status %d", i, ba.MH.Status)
		}
	}
	s.waitWrites(t, 1)
	time.Sleep(20 * time.Millisecond)
	if w := s.writes(); w != 1 {
		t.Fatalf("%d writes before the interval is over, want 1", w)
	}
	s.clk.Advance(time.Second) // the interval, or the first write's duration if longer
	s.waitWrites(t, 2)
	if f := s.readFile(t); len(f.HomeAgent) != n {
		t.Fatalf("file holds %d home addresses, want %d", len(f.HomeAgent), n)
	}
	if m := metric(s.a, "mcoa_ha_state_writes_total"); m != 2 {
		t.Errorf("mcoa_ha_state_writes_total %v", m)
	}
	// Nothing changed: no write, even on stop.
	s.clk.Advance(time.Second)
	s.stop()
	if w := s.writes(); w != 2 {
		t.Fatalf("%d writes, want 2", w)
	}
}

func metric(a *Agent, name string) float64 {
	for _, m := range a.Metrics() {
		if m.Name == name && len(m.Samples) == 1 {
			return m.Samples[0].Value
		}
	}
	return -1
}

// TestStateRefreshSaved: a refresh changes no binding but moves the expiry
// and the sequence number, which the file must follow.
func TestStateRefreshSaved(t *testing.T) {
	s := startStateAgent(t, haConfig(t), t.TempDir(), t0)
	s.tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
	s.tr.next(t)
	s.waitWrites(t, 1)
	s.clk.Advance(20 * time.Second)
	s.tr.in <- bu(coa1, 2, 10, proto.BID{ID: 1, PrioStatus: 1})
	s.tr.next(t)
	s.waitWrites(t, 2)
	f := s.readFile(t)
	if h := f.HomeAgent[0]; h.LastSequence != 2 || !h.Bindings[0].Expires.Equal(t0.Add(60*time.Second)) {
		t.Fatalf("after the refresh: %+v", h)
	}
}

// TestStateWriteFails: a state directory that cannot be written is
// logged once; the agent goes on serving.
func TestStateWriteFails(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "file")
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // not a directory
		t.Fatal(err)
	}
	s := startStateAgent(t, haConfig(t), dir, t0)
	s.tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
	s.tr.next(t)
	deadline := time.Now().Add(5 * time.Second)
	for s.a.persist.store.failures.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failed write")
		}
		time.Sleep(time.Millisecond)
	}
	s.tr.in <- bu(coa1, 2, 10, proto.BID{ID: 1, PrioStatus: 2})
	if ba := s.tr.next(t); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("BA status %d", ba.MH.Status)
	}
	if c := strings.Count(s.log.String(), "binding cache not saved"); c != 1 {
		t.Errorf("%d error lines:\n%s", c, s.log)
	}
}

// TestStateLeftoverTemp: a temporary file of a write cut short by a crash
// is removed at start; the saved file is restored.
func TestStateLeftoverTemp(t *testing.T) {
	s := startStateAgent(t, haConfig(t), t.TempDir(), t0)
	s.tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
	s.tr.next(t)
	s.stop()
	tmp := filepath.Join(s.dir, stateFileName+".tmp-123")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startStateAgent(t, haConfig(t), s.dir, t0.Add(time.Second))
	if es, _ := n.a.Cache(context.Background()); len(es) != 1 {
		t.Fatalf("cache: %+v", es)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file still there: %v", err)
	}
}

// TestStateForeignNamespace: a file written in this boot from another
// network namespace is not restored; after a reboot it is.
func TestStateForeignNamespace(t *testing.T) {
	st := &stateStore{boot: "b1", netns: "net:[1]"}
	data := func(boot, ns string) []byte {
		return fmt.Appendf(nil, `{"format": %q, "version": %d, "boot_id": %q, "netns": %q, "home_agent": []}`, stateFormat, stateVersion, boot, ns)
	}
	if _, err := st.parse(data("b1", "net:[2]")); err == nil || !strings.Contains(err.Error(), "another network namespace") {
		t.Errorf("same boot, other namespace: %v", err)
	}
	for _, d := range [][]byte{data("b1", "net:[1]"), data("b0", "net:[2]"), data("", "")} {
		if _, err := st.parse(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}

// cnPlane records the correspondent data plane's bindings.
type cnPlane struct {
	mu  sync.Mutex
	got []correspondent.Binding
}

func (p *cnPlane) SetBindings(ctx context.Context, bs []correspondent.Binding) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = slices.Clone(bs)
	return nil
}

// TestStateCorrespondent: with both roles, correspondent bindings come
// back with the address they were registered with (to its data plane),
// not into the home agent; those registered with an address the
// correspondent no longer answers on do not.
func TestStateCorrespondent(t *testing.T) {
	dir := t.TempDir()
	exp := t0.Add(100 * time.Second).UTC().Format(time.RFC3339Nano)
	file := fmt.Sprintf(`{"format": %q, "version": %d, "saved": %q, "home_agent": [],
 "correspondent": [
  {"hoa": "2001:db8:aaaa::100", "last_sequence": 9, "local": "2001:db8:cccc::1",
   "bindings": [{"bid": 1, "coa": "2001:db8:1::10", "priority": 3, "sequence": 9, "lifetime": 120, "expires": %q}]},
  {"hoa": "2001:db8:aaaa::200", "last_sequence": 9, "local": "2001:db8:cccc::2",
   "bindings": [{"bid": 1, "coa": "2001:db8:1::10", "sequence": 9, "lifetime": 120, "expires": %q}]}]}`,
		stateFormat, stateVersion, t0.UTC().Format(time.RFC3339Nano), exp, exp)
	if err := os.WriteFile(filepath.Join(dir, stateFileName), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := &cnPlane{}
	tr := newFake()
	log := &testutil.SyncBuffer{}
	cfg := cnConfig(t, true)
	cfg.HomeAgent.StateDir = dir
	a, err := New(cfg, Deps{Transport: tr, Proxy: &fakeProxy{}, CNPlane: cp,
		Clock: clock.NewFake(t0.Add(time.Second)), Command: service.Command{Logger: slog.New(slog.NewTextHandler(log, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	es, err := a.Cache(context.Background())
	if err != nil || len(es) != 1 || es[0].HomeRegistration || es[0].ExpiresIn != 99 || es[0].Priority != 3 {
		t.Fatalf("cache: %+v, %v\n%s", es, err, log)
	}
	cp.mu.Lock()
	got := slices.Clone(cp.got)
	cp.mu.Unlock()
	want := []correspondent.Binding{{HoA: hoa, BID: 1, CoA: coa1, Priority: 3, Local: netip.MustParseAddr("2001:db8:cccc::1")}}
	if !slices.Equal(got, want) {
		t.Fatalf("correspondent data plane %+v, want %+v", got, want)
	}
	if !strings.Contains(log.String(), "no longer answers on") {
		t.Errorf("log:\n%s", log)
	}
}

// A home agent without a state directory, and a correspondent node alone,
// keep nothing.
func TestStateNotKept(t *testing.T) {
	a, err := New(haConfig(t), Deps{Transport: newFake(), Proxy: &fakeProxy{}})
	if err != nil || a.persist != nil {
		t.Fatalf("no state_dir: %v %v", a.persist, err)
	}
	cnCfg := mustParseHA(t, cnAlone)
	cnCfg.HomeAgent.StateDir = t.TempDir()
	a, err = New(cnCfg, Deps{Transport: newFake()})
	if err != nil || a.persist != nil {
		t.Fatalf("correspondent alone: %v %v", a.persist, err)
	}
}

// A reload keeps the state directory: it changes on restart.
func TestStateDirReload(t *testing.T) {
	s := startStateAgent(t, haConfig(t), t.TempDir(), t0)
	next := haConfig(t)
	next.HomeAgent.StateDir = "/elsewhere"
	restart, err := s.a.Apply(context.Background(), next)
	if err != nil || !slices.Contains(restart, "home_agent.state_dir") {
		t.Fatalf("restart %q, %v", restart, err)
	}
	s.tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
	s.tr.next(t)
	s.waitWrites(t, 1)
	if f := s.readFile(t); len(f.HomeAgent) != 1 {
		t.Fatalf("file in the old directory: %+v", f)
	}
}
