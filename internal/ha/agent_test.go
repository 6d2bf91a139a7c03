package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	haAddr = netip.MustParseAddr("2001:db8:aaaa::1")
	hoa    = netip.MustParseAddr("2001:db8:aaaa::100")
	coa1   = netip.MustParseAddr("2001:db8:1::10")
	coa2   = netip.MustParseAddr("2001:db8:2::10")
)

// fakeTransport feeds received packets from a channel and records sends.
type fakeTransport struct {
	inbox
	mu   sync.Mutex
	sent []proto.Packet
	cond chan struct{}
}

func newFake() *fakeTransport {
	return &fakeTransport{inbox: newInbox(), cond: make(chan struct{}, 64)}
}

// inbox is the receiving half of the test transports: a test puts what
// the agent receives into in.
type inbox struct{ in chan mhsock.Received }

func newInbox() inbox { return inbox{in: make(chan mhsock.Received)} }

func (b inbox) Recv(ctx context.Context, r *mhsock.Received) error {
	select {
	case v := <-b.in:
		*r = v
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeTransport) Send(p *proto.Packet, sign proto.Signer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *p
	c.MH.Options.BIDs = slices.Clone(p.MH.Options.BIDs)
	f.sent = append(f.sent, c)
	f.cond <- struct{}{}
	return nil
}

// next waits for the next sent packet.
func (f *fakeTransport) next(t *testing.T) proto.Packet {
	t.Helper()
	select {
	case <-f.cond:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.sent[0]
	f.sent = f.sent[1:]
	return p
}

type fakeProxy struct {
	mu      sync.Mutex
	set     []netip.Addr
	reached map[netip.Addr]string
}

func (p *fakeProxy) Set(h []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set = slices.Clone(h)
	return nil
}

func (p *fakeProxy) Reach(a netip.Addr, mac net.HardwareAddr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reached == nil {
		p.reached = map[netip.Addr]string{}
	}
	p.reached[a] = mac.String()
	return nil
}

func (p *fakeProxy) proxied() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.set)
}

// haText is a home agent's configuration, ending inside [home_agent].
const haText = `
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
allow_unauthenticated = true
serve = ["2001:db8:aaaa::/64"]
max_lifetime = 40
`

func haConfig(t *testing.T) *config.HA {
	t.Helper()
	return mustParseHA(t, haText)
}

// runAgent runs a until the test ends.
func runAgent(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func startAgent(t *testing.T) (*Agent, *fakeTransport, *fakeProxy, *clock.Fake) {
	t.Helper()
	tr, px := newFake(), &fakeProxy{}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	a, err := New(haConfig(t), Deps{Transport: tr, Proxy: px, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a, tr, px, clk
}

func bu(src netip.Addr, seq, life uint16, bids ...proto.BID) mhsock.Received {
	var r mhsock.Received
	r.Packet = proto.Packet{Src: src, Dst: haAddr, HomeAddress: hoa}
	r.Packet.MH = proto.Message{Type: proto.TypeBU, PayloadProto: proto.ProtoNone, Sequence: seq,
		Flags: proto.FlagA | proto.FlagH, Lifetime: life}
	r.Packet.MH.Options.BIDs = bids
	r.IfName = "ext0"
	return r
}

func TestAgentRegistersAndRefreshes(t *testing.T) {
	a, tr, px, clk := startAgent(t)

	tr.in <- bu(coa1, 7, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 5, C: true, CoA: coa2})
	ba := tr.next(t)
	if ba.MH.Type != proto.TypeBA || ba.MH.Status != proto.StatusAccepted || ba.Src != haAddr || ba.Dst != coa1 || ba.RoutingHome != hoa {
		t.Fatalf("BA = %v status %d %v->%v rh2 %v", ba.MH.Type, ba.MH.Status, ba.Src, ba.Dst, ba.RoutingHome)
	}
	if len(ba.MH.Options.BIDs) != 2 {
		t.Fatalf("BA carries %d BID sub-options, want 2", len(ba.MH.Options.BIDs))
	}
	if got := px.proxied(); !slices.Equal(got, []netip.Addr{hoa}) {
		t.Fatalf("proxied %v after registration", got)
	}
	es, err := a.Cache(context.Background())
	if err != nil || len(es) != 2 || es[0].BID != 1 || es[0].CoA != coa1 || es[1].Priority != 5 {
		t.Fatalf("cache = %+v, %v", es, err)
	}

	// 40 s granted: a BRR with the BID comes before expiry, to the CoA
	// with the home address in the type 2 routing header.
	clk.Advance(39 * time.Second)
	got := map[uint16]bool{}
	for range 2 {
		brr := tr.next(t)
		if brr.MH.Type != proto.TypeBRR || brr.Dst.IsUnspecified() || brr.RoutingHome != hoa || len(brr.MH.Options.BIDs) != 1 {
			t.Fatalf("BRR = %v to %v rh2 %v bids %v", brr.MH.Type, brr.Dst, brr.RoutingHome, brr.MH.Options.BIDs)
		}
		got[brr.MH.Options.BIDs[0].ID] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("BRRs for BIDs %v, want 1 and 2", got)
	}
	// Unanswered, the bindings expire and proxying stops.
	clk.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for len(px.proxied()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("home address still proxied after its bindings expired")
		}
		time.Sleep(time.Millisecond)
	}
	if es, _ := a.Cache(context.Background()); len(es) != 0 {
		t.Fatalf("cache after expiry = %+v", es)
	}
}

func TestAgentUnknownTypeGetsBindingError(t *testing.T) {
	_, tr, _, _ := startAgent(t)
	var r mhsock.Received
	r.Packet = proto.Packet{Src: coa1, Dst: haAddr, HomeAddress: hoa}
	r.Packet.MH.Type = 42
	r.Err = &proto.ParseError{What: "MH", Err: proto.ErrUnknownType}
	tr.in <- r
	be := tr.next(t)
	if be.MH.Type != proto.TypeBE || be.MH.Status != proto.BEUnknownType || be.Dst != coa1 || be.MH.BEHomeAddress != hoa {
		t.Fatalf("answer = %v status %d to %v home %v", be.MH.Type, be.MH.Status, be.Dst, be.MH.BEHomeAddress)
	}
	if !errors.Is(r.Err, proto.ErrUnknownType) {
		t.Fatal("test packet is not an unknown-type error")
	}
}

// A bulk BU whose second BID sub-option has a bad Length, as mhsock
// delivers it: that BID is refused with 128 and the BA says 145 (draft
// 6.2), the good one is registered.
func TestAgentBIDBadLength(t *testing.T) {
	a, tr, _, _ := startAgent(t)
	pe := &proto.ParseError{What: "option", Offset: 100, Err: proto.ErrOptionLength}
	r := bu(coa1, 7, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 5, Err: pe})
	r.Err = &proto.BIDError{Index: 1, BID: 2, Err: pe}
	tr.in <- r
	ba := tr.next(t)
	got := map[uint16]uint8{}
	for _, b := range ba.MH.Options.BIDs {
		got[b.ID] = b.PrioStatus
	}
	if ba.MH.Status != proto.StatusDraftBulkRegFail || len(got) != 2 || got[1] != 0 || got[2] != 128 {
		t.Fatalf("BA status %d BID statuses %v, want 145 with 1:0 2:128", ba.MH.Status, got)
	}
	if es, err := a.Cache(context.Background()); err != nil || len(es) != 1 || es[0].BID != 1 {
		t.Fatalf("cache %+v, %v: want BID 1 alone", es, err)
	}
}

// A mobile node back on the home link de-registers from its home address
// (no Home Address option); the answer goes to its link-layer address.
func TestAgentReturningHomeReachesMAC(t *testing.T) {
	_, tr, px, _ := startAgent(t)
	tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 1})
	tr.next(t)

	r := bu(hoa, 2, 0)
	r.Packet.HomeAddress = netip.Addr{}
	r.IfName = "home0"
	r.LinkSrc = [8]byte{2, 0, 0, 0, 0, 1}
	r.LinkSrcLen = 6
	tr.in <- r
	ba := tr.next(t)
	if ba.MH.Status != proto.StatusAccepted || ba.Dst != hoa || ba.RoutingHome.IsValid() {
		t.Fatalf("BA status %d to %v rh2 %v", ba.MH.Status, ba.Dst, ba.RoutingHome)
	}
	px.mu.Lock()
	mac := px.reached[hoa]
	px.mu.Unlock()
	if mac != "02:00:00:00:00:01" {
		t.Fatalf("home address reached at %q, want the BU's link-layer source", mac)
	}
	if got := px.proxied(); len(got) != 0 {
		t.Fatalf("still proxying %v after returning home", got)
	}
}

// A reload changes what later BUs get and keeps the bindings.
func TestAgentReload(t *testing.T) {
	a, tr, _, _ := startAgent(t)
	tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 5, C: true, CoA: coa2})
	if ba := tr.next(t); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("bulk BU before the reload: status %d", ba.MH.Status)
	}
	cfg := haConfig(t)
	cfg.HomeAgent.BulkRegistration = false
	cfg.HomeAgent.Address = netip.MustParseAddr("2001:db8:aaaa::2")
	restart, err := a.Apply(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(restart) != 1 || !strings.Contains(restart[0], "address") {
		t.Errorf("sections needing a restart: %q", restart)
	}
	if es, _ := a.Cache(context.Background()); len(es) != 2 {
		t.Fatalf("cache after the reload: %+v", es)
	}
	tr.in <- bu(coa1, 2, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1})
	ba := tr.next(t)
	if ba.MH.Status != proto.StatusDraftBulkRegNotSupported {
		t.Fatalf("bulk BU after switching bulk off: status %d, want 146", ba.MH.Status)
	}
	if ba.Src != haAddr {
		t.Fatalf("BA from %v: the address changes only on restart", ba.Src)
	}
}

// Once Run has returned, every call into the agent returns at once with
// ErrStopped (Metrics with nothing), even without a deadline.
func TestAgentCallsAfterRunReturn(t *testing.T) {
	cfg := haConfig(t)
	cfg.Correspondent.Enabled = true
	a, err := New(cfg, Deps{Transport: newFake(), Proxy: &fakeProxy{}, Clock: clock.NewFake(time.Unix(1_700_000_000, 0))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Error("a second Run returned nil")
	}
	calls := map[string]func() error{
		"Status": func() error { _, err := a.Status(context.Background()); return err },
		"Cache":  func() error { _, err := a.Cache(context.Background()); return err },
		"Reload": func() error { _, err := a.Apply(context.Background(), haConfig(t)); return err },
		"HomeAddressOption": func() error {
			_, err := a.HomeAddressOption(context.Background(), coa1, haAddr, hoa)
			return err
		},
		"Metrics": func() error {
			if ms := a.Metrics(); ms != nil {
				return fmt.Errorf("metrics %v", ms)
			}
			return ErrStopped
		},
	}
	for name, call := range calls {
		got := make(chan error, 1)
		go func() { got <- call() }()
		select {
		case err := <-got:
			if !errors.Is(err, ErrStopped) {
				t.Errorf("%s after Run returned: %v, want ErrStopped", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s after Run returned: still blocked after 5 s", name)
		}
	}
}
