package ha

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
	"github.com/mcoad/mcoad/pkg/rr"
)

var (
	cnAddr = netip.MustParseAddr("2001:db8:cccc::1")
	coa3   = netip.MustParseAddr("2001:db8:3::10")
)

// wireTransport is agent_test.go's fake transport at the wire level: what
// the agent sends is marshalled (and signed) as mhsock would, and parsed
// back, so that authenticators are real.
type wireTransport struct {
	t *testing.T
	inbox
	mu   sync.Mutex
	sent []*proto.Packet
	cond chan struct{}
}

func newWire(t *testing.T) *wireTransport {
	return &wireTransport{t: t, inbox: newInbox(), cond: make(chan struct{}, 256)}
}

func (f *wireTransport) Send(p *proto.Packet, sign proto.Signer) error {
	b, err := proto.AppendPacket(nil, p, nil, sign)
	if err != nil {
		return err
	}
	q := new(proto.Packet)
	if err := proto.ParsePacket(b, q, nil); err != nil {
		return err
	}
	f.mu.Lock()
	f.sent = append(f.sent, q)
	f.mu.Unlock()
	f.cond <- struct{}{}
	return nil
}

// tryNext returns the next sent packet, or nil.
func (f *wireTransport) tryNext() *proto.Packet {
	select {
	case <-f.cond:
	default:
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.sent[0]
	f.sent = f.sent[1:]
	return p
}

func (f *wireTransport) next() *proto.Packet {
	f.t.Helper()
	select {
	case <-f.cond:
	case <-time.After(5 * time.Second):
		f.t.Fatal("nothing sent")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.sent[0]
	f.sent = f.sent[1:]
	return p
}

// deliver hands the agent a packet as the transport would receive it.
func (f *wireTransport) deliver(p *proto.Packet, sign proto.Signer) {
	f.t.Helper()
	b, err := proto.AppendPacket(nil, p, nil, sign)
	if err != nil {
		f.t.Fatal(err)
	}
	f.deliverRaw(b)
}

func (f *wireTransport) deliverRaw(b []byte) {
	f.t.Helper()
	var r mhsock.Received
	if err := proto.ParsePacket(b, &r.Packet, nil); err != nil {
		f.t.Fatal(err)
	}
	r.Raw, r.IfName = b, "ext0"
	f.in <- r
}

func cnConfig(t *testing.T, enabled bool) *config.HA {
	t.Helper()
	e := "false"
	if enabled {
		e = "true"
	}
	return mustParseHA(t, `
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
allow_unauthenticated = true
max_lifetime = 420

[correspondent]
enabled = `+e+`
address = "2001:db8:cccc::1"
`)
}

func mustParseHA(t *testing.T, text string) *config.HA {
	t.Helper()
	cfg, err := config.ParseHA("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing of the host's: no state directory (tests that want one set
	// it) and no data planes (tests give fakes).
	cfg.HomeAgent.StateDir = ""
	cfg.Dataplane.Backend = config.BackendNone
	return cfg
}

// cnAlone is a correspondent node alone at cnAddr.
const cnAlone = `
[correspondent]
enabled = true
address = "2001:db8:cccc::1"
`

func startCN(t *testing.T, enabled bool) (*Agent, *wireTransport, *clock.Fake) {
	t.Helper()
	return startCNWith(t, cnConfig(t, enabled), Deps{Proxy: &fakeProxy{}})
}

// startCNWith runs an agent with cfg and deps, the wire transport and a
// fake clock.
func startCNWith(t *testing.T, cfg *config.HA, deps Deps) (*Agent, *wireTransport, *clock.Fake) {
	t.Helper()
	tr := newWire(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	deps.Transport, deps.Clock = tr, clk
	a, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a, tr, clk
}

// mobile is a mobile node talking to the agent as correspondent.
type mobile struct {
	t   *testing.T
	m   *rr.MN
	tr  *wireTransport
	seq uint16
}

func newMobile(t *testing.T, tr *wireTransport, clk clock.Clock) *mobile {
	m, err := rr.NewMN(rr.MNConfig{HomeAddress: hoa, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &mobile{t: t, m: m, tr: tr, seq: 10}
}

// rr runs the tests for coa through the agent.
func (x *mobile) rr(coa netip.Addr) {
	x.t.Helper()
	pkts, err := x.m.Need(cnAddr, coa)
	if err != nil {
		x.t.Fatal(err)
	}
	pkts = slices.Clone(pkts)
	for i := range pkts {
		x.tr.deliver(&pkts[i], nil)
		ans := x.tr.next()
		if !x.m.HandleHoT(ans) && !x.m.HandleCoT(ans) {
			x.t.Fatalf("answer %v %v->%v not taken", ans.MH.Type, ans.Src, ans.Dst)
		}
	}
	if _, ok := x.m.Ready(cnAddr, coa); !ok {
		x.t.Fatal("not ready")
	}
}

func (x *mobile) buBytes(coa netip.Addr, bid uint16, life time.Duration) []byte {
	x.t.Helper()
	x.seq++
	p, sign, err := x.m.BU(rr.BUParams{CN: cnAddr, CoA: coa, BID: bid, Priority: uint8(10 * bid), Sequence: x.seq, Lifetime: life})
	if err != nil {
		x.t.Fatal(err)
	}
	b, err := proto.AppendPacket(nil, &p, nil, sign)
	if err != nil {
		x.t.Fatal(err)
	}
	return b
}

// ba checks the BA that answers a BU from coa.
func (x *mobile) ba(coa netip.Addr) *proto.Packet {
	x.t.Helper()
	ba := x.tr.next()
	if ba.MH.Type != proto.TypeBA || ba.Src != cnAddr || ba.Dst != coa || ba.RoutingHome != hoa {
		x.t.Fatalf("answer %v %v->%v rh2 %v", ba.MH.Type, ba.Src, ba.Dst, ba.RoutingHome)
	}
	if err := x.m.VerifyBA(ba); err != nil {
		x.t.Fatalf("BA status %d: %v", ba.MH.Status, err)
	}
	return ba
}

func cnEntriesOf(t *testing.T, a *Agent) map[uint16]control.CacheEntry {
	t.Helper()
	es, err := a.Cache(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint16]control.CacheEntry{}
	for _, e := range es {
		if !e.HomeRegistration {
			out[e.BID] = e
		}
	}
	return out
}

func TestCorrespondentRegistersEachCoA(t *testing.T) {
	a, tr, clk := startCN(t, true)
	x := newMobile(t, tr, clk)
	coas := []netip.Addr{coa1, coa2, coa3}
	for _, c := range coas {
		x.rr(c)
	}
	for i, c := range coas {
		tr.deliverRaw(x.buBytes(c, uint16(i+1), 600*time.Second))
		ba := x.ba(c)
		if ba.MH.Status != 0 || !ba.MH.Options.HasAuthData || ba.MH.Lifetime != 105 ||
			len(ba.MH.Options.BIDs) != 1 || ba.MH.Options.BIDs[0].ID != uint16(i+1) {
			t.Fatalf("BA for BID %d: status %d auth %v life %d bids %+v", i+1, ba.MH.Status,
				ba.MH.Options.HasAuthData, ba.MH.Lifetime, ba.MH.Options.BIDs)
		}
		clk.Advance(time.Second)
	}
	es := cnEntriesOf(t, a)
	for i, c := range coas {
		e, ok := es[uint16(i+1)]
		if !ok || e.CoA != c || e.HoA != hoa || e.Priority != uint8(10*(i+1)) || e.Lifetime != 420 {
			t.Fatalf("BID %d: %+v", i+1, e)
		}
	}

	// A forged authenticator changes nothing and gets no answer: the
	// HoT sent after it is the next thing the agent sends.
	b := x.buBytes(coa1, 1, 420*time.Second)
	b[len(b)-1] ^= 0x80
	var r proto.Packet
	_ = proto.ParsePacket(b, &r, nil) // the checksum is now wrong: fix it
	proto.SetChecksum(r.MHBytes, r.ChecksumSrc(), r.ChecksumDst())
	tr.deliverRaw(b)
	x.tr.deliver(&proto.Packet{Src: hoa, Dst: cnAddr, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{7}}}, nil)
	if p := tr.next(); p.MH.Type != proto.TypeHoT || p.MH.Cookie != [8]byte{7} {
		t.Fatalf("after a forged BU the agent sent %v", p.MH.Type)
	}
	if got := cnEntriesOf(t, a); len(got) != 3 || got[1].Sequence != es[1].Sequence {
		t.Fatalf("forged BU changed the cache: %+v", got)
	}

	// A bulk BU, authorised: 146 with Binding Authorization Data.
	x.seq++
	k, _ := x.m.Ready(cnAddr, coa1)
	bulk := proto.Packet{Src: coa1, Dst: cnAddr, HomeAddress: hoa, MH: proto.Message{Type: proto.TypeBU,
		Sequence: x.seq, Flags: proto.FlagA, Lifetime: 50, Options: proto.Options{
			HasNonceIndices: true, HomeNonceIndex: k.HomeNonceIndex, CareofNonce: k.CareofNonceIndex,
			BIDs:        []proto.BID{{ID: 1, C: true, CoA: coa1}, {ID: 2, C: true, CoA: coa2}},
			HasAuthData: true}}}
	tr.deliver(&bulk, proto.BADSigner{Kbm: k.Kbm[:], CoA: coa1, Correspondent: cnAddr})
	if ba := x.ba(coa1); ba.MH.Status != proto.StatusDraftBulkRegNotSupported || !ba.MH.Options.HasAuthData {
		t.Fatalf("bulk BU: status %d auth %v", ba.MH.Status, ba.MH.Options.HasAuthData)
	}

	// A home registration still goes to the home agent.
	h := bu(coa1, 1, 10, proto.BID{ID: 1, C: true, CoA: coa1})
	tr.deliver(&h.Packet, nil)
	if ba := tr.next(); ba.MH.Status != proto.StatusAccepted || ba.Src != haAddr || ba.MH.Options.HasAuthData {
		t.Fatalf("home registration: status %d from %v", ba.MH.Status, ba.Src)
	}

	// Binding Refresh Requests with the BID before expiry (420 s granted,
	// 30 s ahead), from the correspondent's address, then expiry. The
	// fake clock moves a second at a time, and a control request after
	// each step lets the owner goroutine catch up.
	ctx := context.Background()
	got := map[uint16]time.Duration{}
	start := clk.Now()
	for step := 0; step < 420 && len(got) < 3; step++ {
		clk.Advance(time.Second)
		if _, err := a.Cache(ctx); err != nil {
			t.Fatal(err)
		}
		for p := tr.tryNext(); p != nil; p = tr.tryNext() {
			if p.MH.Type != proto.TypeBRR || p.Src == haAddr {
				continue // the home registration's
			}
			if p.Src != cnAddr || p.RoutingHome != hoa || len(p.MH.Options.BIDs) != 1 {
				t.Fatalf("BRR from %v rh2 %v bids %+v", p.Src, p.RoutingHome, p.MH.Options.BIDs)
			}
			bid := p.MH.Options.BIDs[0].ID
			if bid < 1 || bid > 3 || p.Dst != coas[bid-1] {
				t.Fatalf("BRR for BID %d to %v", bid, p.Dst)
			}
			got[bid] = clk.Now().Sub(start)
		}
	}
	if len(got) != 3 {
		t.Fatalf("BRRs for %v", got)
	}
	for bid, at := range got {
		// Registered at about 1, 2, 3 s before start: due 30 s before
		// the 420 s run out.
		if at < 380*time.Second || at > 400*time.Second {
			t.Errorf("BRR for BID %d at %v", bid, at)
		}
	}
	for step := 0; len(cnEntriesOf(t, a)) != 0; step++ {
		if step > 60 {
			t.Fatalf("correspondent bindings left after expiry: %+v", cnEntriesOf(t, a))
		}
		clk.Advance(time.Second)
	}
	if at := clk.Now().Sub(start); at < 415*time.Second {
		t.Fatalf("bindings gone at %v, before their lifetime", at)
	}
}

func TestCorrespondentExpiredNoncesAndDeregistration(t *testing.T) {
	a, tr, clk := startCN(t, true)
	x := newMobile(t, tr, clk)
	x.rr(coa1)
	tr.deliverRaw(x.buBytes(coa1, 1, time.Minute))
	if ba := x.ba(coa1); ba.MH.Status != 0 {
		t.Fatalf("status %d", ba.MH.Status)
	}
	// A BU naming a nonce index the node never made: 136, no
	// authenticator, nothing changed.
	x.seq++
	k, _ := x.m.Ready(cnAddr, coa1)
	p := proto.Packet{Src: coa1, Dst: cnAddr, HomeAddress: hoa, MH: proto.Message{Type: proto.TypeBU,
		Sequence: x.seq, Flags: proto.FlagA, Lifetime: 10, Options: proto.Options{
			HasNonceIndices: true, HomeNonceIndex: k.HomeNonceIndex + 100, CareofNonce: k.CareofNonceIndex,
			BIDs: []proto.BID{{ID: 1}}, HasAuthData: true}}}
	clk.Advance(time.Second)
	tr.deliver(&p, proto.BADSigner{Kbm: k.Kbm[:], CoA: coa1, Correspondent: cnAddr})
	ba := x.ba(coa1)
	if ba.MH.Status != proto.StatusExpiredHomeNonce || ba.MH.Options.HasAuthData {
		t.Fatalf("unknown home nonce index: status %d auth %v", ba.MH.Status, ba.MH.Options.HasAuthData)
	}
	if e := cnEntriesOf(t, a); len(e) != 1 || e[1].Lifetime != 60 {
		t.Fatalf("cache after 136: %+v", e)
	}
	// De-registration with the home token alone.
	clk.Advance(time.Second)
	tr.deliverRaw(x.buBytes(coa1, 1, 0))
	if ba := x.ba(coa1); ba.MH.Status != 0 {
		t.Fatalf("de-registration: %d", ba.MH.Status)
	}
	if e := cnEntriesOf(t, a); len(e) != 0 {
		t.Fatalf("cache after de-registration: %+v", e)
	}
}

// Section 6.5: a data packet with a Home Address option from an unbound
// source gets a Binding Error, status 1, without BID sub-option.
func TestCorrespondentBindingErrorForUnknownHAO(t *testing.T) {
	a, tr, clk := startCN(t, true)
	x := newMobile(t, tr, clk)
	x.rr(coa1)
	tr.deliverRaw(x.buBytes(coa1, 1, time.Minute))
	x.ba(coa1)
	ctx := context.Background()
	if due, err := a.HomeAddressOption(ctx, coa1, cnAddr, hoa); due || err != nil {
		t.Fatalf("bound source: %v %v", due, err)
	}
	due, err := a.HomeAddressOption(ctx, coa2, cnAddr, hoa)
	if !due || err != nil {
		t.Fatalf("unbound source: %v %v", due, err)
	}
	be := tr.next()
	if be.MH.Type != proto.TypeBE || be.MH.Status != proto.BEUnknownHAO || be.Src != cnAddr || be.Dst != coa2 ||
		be.MH.BEHomeAddress != hoa || len(be.MH.Options.BIDs) != 0 || be.RoutingHome.IsValid() {
		t.Fatalf("BE %v status %d %v->%v home %v bids %v", be.MH.Type, be.MH.Status, be.Src, be.Dst, be.MH.BEHomeAddress, be.MH.Options.BIDs)
	}
	// Past its lifetime (before the tick removes it) the binding no
	// longer counts.
	clk.Advance(time.Minute)
	if due, _ := a.HomeAddressOption(ctx, coa1, cnAddr, hoa); !due {
		t.Fatal("expired binding still counts")
	}
}

func TestCorrespondentDisabled(t *testing.T) {
	a, tr, _ := startCN(t, false)
	tr.deliver(&proto.Packet{Src: hoa, Dst: cnAddr, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{1}}}, nil)
	h := bu(coa1, 1, 10, proto.BID{ID: 1, C: true, CoA: coa1})
	tr.deliver(&h.Packet, nil)
	if p := tr.next(); p.MH.Type != proto.TypeBA {
		t.Fatalf("without [correspondent] the agent answered a HoTI: %v", p.MH.Type)
	}
	if _, err := a.HomeAddressOption(context.Background(), coa1, cnAddr, hoa); err != ErrNotCorrespondent {
		t.Fatalf("HomeAddressOption: %v", err)
	}
}

// countingPlane counts the home agent data plane updates it gets.
type countingPlane struct {
	mu sync.Mutex
	n  int
}

func (p *countingPlane) SetBindings([]bcache.Binding) error {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return nil
}

// A correspondent node alone (no [home_agent]): return routability and
// correspondent BUs as with a home agent, a home registration answered 131
// with nothing cached, no proxy neighbour advertisements nor home agent
// data plane, and only its own address answered.
func TestCorrespondentAlone(t *testing.T) {
	cfg := mustParseHA(t, cnAlone)
	px, pl := &fakeProxy{}, &countingPlane{}
	a, tr, clk := startCNWith(t, cfg, Deps{Proxy: px, Plane: pl})
	ctx := context.Background()

	// Home registrations, bulk or not, with or without a BID: 131 from
	// the correspondent's address, no authorization data, nothing kept.
	for i, bids := range [][]proto.BID{{{ID: 1, C: true, CoA: coa1}}, nil} {
		h := bu(coa1, uint16(1+i), 10, bids...)
		h.Packet.Dst = cnAddr
		tr.deliver(&h.Packet, nil)
		ba := tr.next()
		if ba.MH.Type != proto.TypeBA || ba.MH.Status != proto.StatusHomeRegNotSupported || ba.Src != cnAddr ||
			ba.Dst != coa1 || ba.RoutingHome != hoa || ba.MH.Options.HasAuthData || ba.MH.Lifetime != 0 {
			t.Fatalf("home registration %d: %v status %d %v->%v rh2 %v auth %v life %d", i, ba.MH.Type, ba.MH.Status,
				ba.Src, ba.Dst, ba.RoutingHome, ba.MH.Options.HasAuthData, ba.MH.Lifetime)
		}
		if len(bids) > 0 && (len(ba.MH.Options.BIDs) != 1 || ba.MH.Options.BIDs[0].PrioStatus != uint8(proto.StatusHomeRegNotSupported)) {
			t.Fatalf("home registration %d: BID sub-options %+v", i, ba.MH.Options.BIDs)
		}
	}
	if es, err := a.Cache(ctx); err != nil || len(es) != 0 {
		t.Fatalf("cache after home registrations: %+v, %v", es, err)
	}

	// A HoTI, a home registration and a correspondent BU to another
	// address of the node: not the correspondent's, nothing answered.
	other := netip.MustParseAddr("2001:db8:cccc::2")
	tr.deliver(&proto.Packet{Src: hoa, Dst: other, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{9}}}, nil)
	h := bu(coa1, 5, 10)
	h.Packet.Dst = other
	tr.deliver(&h.Packet, nil)

	// Return routability and a correspondent registration work as with
	// a home agent; the first answer is the HoT for the HoTI to cnAddr.
	x := newMobile(t, tr, clk)
	x.rr(coa1)
	tr.deliverRaw(x.buBytes(coa1, 1, time.Minute))
	if ba := x.ba(coa1); ba.MH.Status != 0 || !ba.MH.Options.HasAuthData {
		t.Fatalf("correspondent BU: status %d auth %v", ba.MH.Status, ba.MH.Options.HasAuthData)
	}
	if e := cnEntriesOf(t, a); len(e) != 1 || e[1].CoA != coa1 || e[1].HoA != hoa {
		t.Fatalf("correspondent cache: %+v", e)
	}

	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Roles, []string{"correspondent"}) || st.HomeAgent.IsValid() ||
		!slices.Equal(st.Correspondent, []netip.Addr{cnAddr}) || st.Counts.CacheEntries != 1 || st.Mode != "individual" {
		t.Fatalf("status %+v", st)
	}
	if got := px.proxied(); len(got) != 0 {
		t.Errorf("proxy neighbour advertisements: %v", got)
	}
	pl.mu.Lock()
	if pl.n != 0 {
		t.Errorf("home agent data plane updated %d times", pl.n)
	}
	pl.mu.Unlock()

	// Adding a home agent takes a restart; the correspondent's lifetime
	// cap changes at once.
	next := mustParseHA(t, `
[home_agent]
address = "2001:db8:aaaa::1"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
allow_unauthenticated = true
`+cnAlone)
	restart, err := a.Apply(ctx, next)
	if err != nil || len(restart) != 1 || !strings.Contains(restart[0], "home_agent") {
		t.Fatalf("reload adding a home agent: %q, %v", restart, err)
	}
	cfg2 := *cfg
	cfg2.Correspondent.MaxLifetime = 20 * time.Second
	if restart, err := a.Apply(ctx, &cfg2); err != nil || len(restart) != 0 {
		t.Fatalf("reload of the lifetime cap: %q, %v", restart, err)
	}
	if st, _ := a.Status(ctx); !slices.Equal(st.Roles, []string{"correspondent"}) {
		t.Fatalf("roles after reload: %v", st.Roles)
	}
	h = bu(coa1, 9, 10)
	h.Packet.Dst = cnAddr
	tr.deliver(&h.Packet, nil)
	if ba := tr.next(); ba.MH.Status != proto.StatusHomeRegNotSupported {
		t.Fatalf("home registration after reload: status %d", ba.MH.Status)
	}
	clk.Advance(time.Second)
	tr.deliverRaw(x.buBytes(coa1, 1, time.Minute))
	if ba := x.ba(coa1); ba.MH.Status != 0 || ba.MH.Lifetime != 5 {
		t.Fatalf("correspondent BU after reload: status %d lifetime %d units, want 5 (20 s)", ba.MH.Status, ba.MH.Lifetime)
	}
}

// With both roles, the correspondent answers on its own address only.
func TestCorrespondentAnswersOnItsAddress(t *testing.T) {
	_, tr, _ := startCN(t, true)
	tr.deliver(&proto.Packet{Src: hoa, Dst: haAddr, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{1}}}, nil)
	tr.deliver(&proto.Packet{Src: hoa, Dst: cnAddr, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{2}}}, nil)
	if p := tr.next(); p.MH.Type != proto.TypeHoT || p.MH.Cookie != [8]byte{2} || p.Src != cnAddr {
		t.Fatalf("answered %v cookie %v from %v; want the HoT for the HoTI to %v only", p.MH.Type, p.MH.Cookie, p.Src, cnAddr)
	}
}

func TestNewWithoutRole(t *testing.T) {
	cfg := config.DefaultHA()
	if _, err := New(cfg, Deps{Transport: newWire(t)}); err == nil {
		t.Fatal("an agent with neither role was made")
	}
}
