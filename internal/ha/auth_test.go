package ha

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/internal/testutil"
	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

var stranger = netip.MustParseAddr("2001:db8:1::666")

// authAgent runs a home agent with the default authentication and a key
// for hoa only.
func authAgent(t *testing.T) (*Agent, *fakeTransport, *clock.Fake, *testutil.SyncBuffer) {
	t.Helper()
	cfg := mustParseHA(t, `
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
[[home_agent.mn]]
home_address = "2001:db8:aaaa::100"
spi = 300
key = "00112233445566778899aabbccddeeff"
`)
	tr, clk, log := newFake(), clock.NewFake(time.Unix(1_700_000_000, 0)), &testutil.SyncBuffer{}
	a, err := New(cfg, Deps{Transport: tr, Proxy: &fakeProxy{}, Clock: clk,
		Command: service.Command{Logger: slog.New(slog.NewTextHandler(log, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a, tr, clk, log
}

// TestAgentRefusesUnauthenticated: a home address without a key gets 129,
// a keyed one's unsigned BU is discarded; both leave the cache empty, are
// counted in mcoa_ha_bu_refused_total and logged at most once a second
// per source; the status says authentication is required.
func TestAgentRefusesUnauthenticated(t *testing.T) {
	a, tr, clk, log := authAgent(t)
	other := netip.MustParseAddr("2001:db8:aaaa::200")
	for i := range 3 {
		r := bu(stranger, uint16(10+i), 10)
		r.Packet.HomeAddress = other
		tr.in <- r
		ba := tr.next(t)
		if ba.MH.Type != proto.TypeBA || ba.MH.Status != proto.StatusAdminProhibited || ba.Dst != stranger || ba.MH.Options.HasMNHAAuth {
			t.Fatalf("answer %v status %d to %v", ba.MH.Type, ba.MH.Status, ba.Dst)
		}
	}
	// An unsigned BU for the keyed home address: no answer.
	tr.in <- bu(stranger, 20, 10)
	waitRefused(t, a, "unauthenticated", 1)
	if es, err := a.Cache(context.Background()); err != nil || len(es) != 0 {
		t.Fatalf("cache %+v, %v", es, err)
	}
	tr.mu.Lock()
	if len(tr.sent) != 0 {
		t.Errorf("answered an unsigned BU for a keyed home address: %+v", tr.sent)
	}
	tr.mu.Unlock()

	m := metricsByLabel(a.Metrics(), "mcoa_ha_bu_refused_total", "reason")
	if m["no_key"] != 3 || m["unauthenticated"] != 1 || m["bad_auth"] != 0 || len(m) != 3 {
		t.Errorf("mcoa_ha_bu_refused_total %v", m)
	}
	if n := strings.Count(log.String(), "binding update refused"); n != 1 {
		t.Errorf("%d refusal lines within a second from one source, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "reason=no_key") ||
		!strings.Contains(log.String(), "src="+stranger.String()) || !strings.Contains(log.String(), `answer="129 administratively prohibited"`) {
		t.Errorf("refusal line: %s", log.String())
	}
	// A second later the source is logged again, with what was not.
	clk.Advance(time.Second)
	tr.in <- bu(stranger, 21, 10)
	waitRefused(t, a, "unauthenticated", 2)
	if n := strings.Count(log.String(), "binding update refused"); n != 2 || !strings.Contains(log.String(), "more_from_src=3") ||
		!strings.Contains(log.String(), "reason=unauthenticated") {
		t.Errorf("after a second:\n%s", log.String())
	}
	st, err := a.Status(context.Background())
	if err != nil || st.Auth != "required" {
		t.Errorf("status auth %q, %v", st.Auth, err)
	}
}

// allow_unauthenticated: home addresses without a key register, and the
// status says authentication is off.
func TestAgentAllowUnauthenticated(t *testing.T) {
	a, tr, _, _ := startAgent(t) // haConfig: allow_unauthenticated = true
	tr.in <- bu(coa1, 7, 10)
	if ba := tr.next(t); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("status %d", ba.MH.Status)
	}
	st, err := a.Status(context.Background())
	if err != nil || st.Auth != "off" {
		t.Errorf("status auth %q, %v", st.Auth, err)
	}
	// A reload that requires authentication refuses the next BU.
	next := mustParseHA(t, `
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
[[home_agent.mn]]
home_address = "2001:db8:aaaa::300"
spi = 300
key = "00112233445566778899aabbccddeeff"
`)
	if _, err := a.Apply(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	tr.in <- bu(coa1, 8, 10)
	if ba := tr.next(t); ba.MH.Status != proto.StatusAdminProhibited {
		t.Fatalf("after the reload: status %d", ba.MH.Status)
	}
	if st, _ := a.Status(context.Background()); st.Auth != "required" {
		t.Errorf("status auth %q after the reload", st.Auth)
	}
}

// The refusal log forgets quiet sources when its table is full and counts
// the lines it could not write.
func TestRefusalLogBounded(t *testing.T) {
	log := &testutil.SyncBuffer{}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	a := &Agent{log: slog.New(slog.NewTextHandler(log, nil)), clk: clk}
	res := refusedResult()
	src := func(i int) *proto.Packet {
		b := stranger.As16()
		b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return &proto.Packet{Src: netip.AddrFrom16(b), HomeAddress: hoa}
	}
	for i := range refusalLogMax + 10 {
		a.logRefused(src(i), res)
	}
	if len(a.refusals.last) != refusalLogMax || a.refusals.suppressed != 10 {
		t.Fatalf("%d sources remembered, %d suppressed", len(a.refusals.last), a.refusals.suppressed)
	}
	clk.Advance(time.Second)
	a.logRefused(src(refusalLogMax+20), res)
	if len(a.refusals.last) != 1 || !strings.Contains(log.String(), "unlogged_other_sources=10") {
		t.Fatalf("%d sources remembered after a quiet second; last line %q", len(a.refusals.last),
			log.String()[strings.LastIndex(strings.TrimSpace(log.String()), "\n")+1:])
	}
}

// waitRefused waits until mcoa_ha_bu_refused_total{reason} is n (the
// agent takes received packets and requests in any order).
func waitRefused(t *testing.T, a *Agent, reason string, n float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for metricsByLabel(a.Metrics(), "mcoa_ha_bu_refused_total", "reason")[reason] != n {
		if time.Now().After(deadline) {
			t.Fatalf("mcoa_ha_bu_refused_total{reason=%q} never reached %v", reason, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func metricsByLabel(ms []control.Metric, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range ms {
		if m.Name == name {
			for _, s := range m.Samples {
				out[s.Labels[label]] = s.Value
			}
		}
	}
	return out
}

func refusedResult() bcache.Result {
	return bcache.Result{Send: true, Status: proto.StatusAdminProhibited, Refused: bcache.RefusedNoKey}
}
