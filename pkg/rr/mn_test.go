package rr

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

func types(pkts []proto.Packet) []proto.MHType {
	var out []proto.MHType
	for _, p := range pkts {
		out = append(out, p.MH.Type)
	}
	return out
}

func need(t *testing.T, m *MN, coa netip.Addr) []proto.Packet {
	t.Helper()
	pkts, err := m.Need(tCN, coa)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(pkts)
}

func TestMNNewRefusesBadHomeAddress(t *testing.T) {
	for _, a := range []string{"", "fe80::1", "192.0.2.1", "ff02::1"} {
		var hoa netip.Addr
		if a != "" {
			hoa = netip.MustParseAddr(a)
		}
		if _, err := NewMN(MNConfig{HomeAddress: hoa}); err == nil {
			t.Errorf("home address %q accepted", a)
		}
	}
}

// HoT/CoT are taken only from the correspondent, to the right address,
// with the cookie of the init in flight; anything else is ignored.
func TestMNCookies(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})
	pkts := need(t, m, tCoA1)
	if !slices.Equal(types(pkts), []proto.MHType{proto.TypeHoTI, proto.TypeCoTI}) {
		t.Fatalf("Need = %v", types(pkts))
	}
	if pkts[0].Src != tHoA || pkts[0].Dst != tCN || pkts[1].Src != tCoA1 || pkts[1].Dst != tCN {
		t.Fatalf("inits %v->%v, %v->%v", pkts[0].Src, pkts[0].Dst, pkts[1].Src, pkts[1].Dst)
	}
	if pkts[0].MH.Cookie == pkts[1].MH.Cookie || pkts[0].MH.Cookie == ([8]byte{}) {
		t.Fatalf("cookies %x %x", pkts[0].MH.Cookie, pkts[1].MH.Cookie)
	}
	hot := answer(t, c, &pkts[0])
	cot := answer(t, c, &pkts[1])

	bad := func(name string, p proto.Packet, f func(*proto.Packet) bool) {
		t.Helper()
		if f(&p) {
			t.Errorf("%s taken", name)
		}
	}
	h := hot
	h.MH.Cookie[0] ^= 1
	bad("HoT with unknown cookie", h, m.HandleHoT)
	h = hot
	h.Src = netip.MustParseAddr("2001:db8:cccc::9")
	bad("HoT from another node", h, m.HandleHoT)
	h = hot
	h.Dst = tCoA1
	bad("HoT to a care-of address", h, m.HandleHoT)
	h = hot
	h.RoutingHome = tHoA
	bad("HoT with a routing header", h, m.HandleHoT)
	bad("CoT as HoT", cot, m.HandleHoT)
	x := cot
	x.MH.Cookie = hot.MH.Cookie
	bad("CoT with the HoTI's cookie", x, m.HandleCoT)
	x = cot
	x.Dst = tCoA2
	bad("CoT to another care-of address", x, m.HandleCoT)
	if _, ok := m.Ready(tCN, tCoA1); ok {
		t.Fatal("ready after bogus answers")
	}

	if !m.HandleHoT(&hot) || !m.HandleCoT(&cot) {
		t.Fatal("right answers ignored")
	}
	// An answer is taken once.
	if m.HandleHoT(&hot) || m.HandleCoT(&cot) {
		t.Fatal("a replayed answer taken again")
	}
	k, ok := m.Ready(tCN, tCoA1)
	if !ok || k.HomeNonceIndex != hot.MH.NonceIndex || k.CareofNonceIndex != cot.MH.NonceIndex {
		t.Fatalf("Ready = %+v %v", k, ok)
	}
	ht, ct := hot.MH.KeygenToken, cot.MH.KeygenToken
	if !bytes.Equal(k.Kbm[:], refKbm(ht[:], ct[:])) {
		t.Fatal("Kbm is not SHA1(home token | care-of token)")
	}
	if _, ok := m.Ready(tCN, tCoA2); ok {
		t.Fatal("ready for a CoA without care-of test")
	}
}

// Unanswered inits are sent again after 1, 2, 4 ... 32 s, with the same
// cookie (a late answer to the first still counts).
func TestMNRetransmission(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	first := need(t, m, tCoA1)
	if got := need(t, m, tCoA1); len(got) != 0 {
		t.Fatalf("sent again at once: %v", types(got))
	}
	var gaps []time.Duration
	last := clk.Now()
	for clk.Now().Sub(t0) < 90*time.Second {
		next := m.Expire(clk.Now())
		if next.IsZero() {
			t.Fatal("nothing scheduled while inits are in flight")
		}
		clk.Advance(next.Sub(clk.Now()))
		got := need(t, m, tCoA1)
		if len(got) != 2 {
			t.Fatalf("at %v: %v", clk.Now().Sub(t0), types(got))
		}
		if got[0].MH.Cookie != first[0].MH.Cookie || got[1].MH.Cookie != first[1].MH.Cookie {
			t.Fatal("retransmission with a new cookie")
		}
		gaps = append(gaps, clk.Now().Sub(last))
		last = clk.Now()
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(gaps, want) {
		t.Fatalf("retransmission gaps %v, want %v", gaps, want)
	}
	// The late answer to the first HoTI is taken.
	c := newTestCN(t, clk, CNConfig{})
	hot := answer(t, c, &first[0])
	if !m.HandleHoT(&hot) {
		t.Fatal("late HoT ignored")
	}
	// Given up after a whole token lifetime: a new cookie next time.
	clk.Advance(MaxTokenLifetime)
	m.Expire(clk.Now())
	if got := need(t, m, tCoA1); len(got) != 2 || got[1].MH.Cookie == first[1].MH.Cookie {
		t.Fatalf("after giving up: %v", types(got))
	}
}

// Tokens are reused while valid, fetched again RefreshAhead before they
// expire (still usable meanwhile), and unusable after MAX_TOKEN_LIFETIME
// counted from when the init was sent.
func TestMNTokenLifetime(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})
	pkts := need(t, m, tCoA1)
	clk.Advance(2 * time.Second) // the answers take a while
	for i := range pkts {
		a := answer(t, c, &pkts[i])
		if !m.HandleHoT(&a) && !m.HandleCoT(&a) {
			t.Fatal("answer ignored")
		}
	}
	if next := m.Expire(clk.Now()); next != t0.Add(MaxTokenLifetime-30*time.Second) {
		t.Fatalf("next due %v after start, want the refresh time", next.Sub(t0))
	}
	clk.Advance(MaxTokenLifetime - 30*time.Second - 2*time.Second - time.Nanosecond)
	if got := need(t, m, tCoA1); len(got) != 0 {
		t.Fatalf("refresh too early: %v", types(got))
	}
	clk.Advance(time.Nanosecond)
	if got := need(t, m, tCoA1); len(got) != 2 {
		t.Fatalf("no refresh %v before expiry: %v", 30*time.Second, types(got))
	}
	if _, ok := m.Ready(tCN, tCoA1); !ok {
		t.Fatal("tokens unusable during the refresh")
	}
	clk.Advance(30*time.Second - time.Nanosecond)
	if _, ok := m.Ready(tCN, tCoA1); !ok {
		t.Fatal("tokens unusable before MAX_TOKEN_LIFETIME")
	}
	clk.Advance(time.Nanosecond)
	if _, ok := m.Ready(tCN, tCoA1); ok {
		t.Fatal("tokens usable MAX_TOKEN_LIFETIME after the init was sent")
	}
	if _, ok := m.ReadyDereg(tCN, tCoA1); ok {
		t.Fatal("de-registration keys without a valid home token")
	}
}

func TestMNRejectedAndForget(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})
	mnWithTokens(t, m, c, tCoA1)
	mnWithTokens(t, m, c, tCoA2)
	if m.Rejected(tCN, tCoA1, proto.StatusSequenceOutOfWindow) || m.Rejected(tCN, tCoA1, 0) {
		t.Fatal("Rejected dropped tokens for a status other than 136-138")
	}
	if _, ok := m.Ready(tCN, tCoA1); !ok {
		t.Fatal("tokens lost")
	}
	m.Rejected(tCN, tCoA1, proto.StatusExpiredCareofNonce)
	if got := types(need(t, m, tCoA1)); !slices.Equal(got, []proto.MHType{proto.TypeCoTI}) {
		t.Fatalf("after 137: %v", got)
	}
	if _, ok := m.Ready(tCN, tCoA2); !ok {
		t.Fatal("137 for CoA 1 dropped CoA 2's token")
	}
	m.Forget(tCN, tCoA2)
	if _, ok := m.Ready(tCN, tCoA2); ok {
		t.Fatal("ready after Forget")
	}
	m.ForgetCN(tCN)
	if len(m.States()) != 0 {
		t.Fatalf("state after ForgetCN: %+v", m.States())
	}
}

func TestMNBU(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})
	if _, _, err := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Lifetime: time.Minute}); !errors.Is(err, ErrNotReady) {
		t.Fatalf("BU without tokens: %v", err)
	}
	mnWithTokens(t, m, c, tCoA1)
	for _, tc := range []struct {
		life  time.Duration
		units uint16
	}{{time.Hour, 105}, {420 * time.Second, 105}, {7 * time.Second, 1}, {time.Second, 1}, {0, 0}} {
		p, _, err := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 4, Lifetime: tc.life})
		if err != nil {
			t.Fatal(err)
		}
		if p.MH.Lifetime != tc.units {
			t.Errorf("lifetime %v sent as %d units, want %d", tc.life, p.MH.Lifetime, tc.units)
		}
		if p.MH.Flags&proto.FlagH != 0 || p.MH.Flags&proto.FlagA == 0 {
			t.Errorf("flags %#x", p.MH.Flags)
		}
		if b := p.MH.Options.BIDs; len(b) != 1 || b[0].C || b[0].R || b[0].ID != 4 {
			t.Errorf("BID sub-options %+v", b)
		}
	}
	// BID 0: an RFC 6275 BU without sub-option.
	p, _, _ := m.BU(BUParams{CN: tCN, CoA: tCoA1, Lifetime: time.Minute})
	if len(p.MH.Options.BIDs) != 0 {
		t.Fatal("BID sub-option for BID 0")
	}
}

func TestMNVerifyBA(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})
	mnWithTokens(t, m, c, tCoA1)
	p, sign, _ := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Sequence: 3, Lifetime: time.Minute})
	bu, _ := wire(t, &p, sign)
	if st, err := c.VerifyBU(bu); st != 0 || err != nil {
		t.Fatal(st, err)
	}
	mk := func(status proto.Status, auth bool, dst netip.Addr) proto.Packet {
		return proto.Packet{Src: tCN, Dst: dst, RoutingHome: tHoA, MH: proto.Message{Type: proto.TypeBA, Status: status,
			Sequence: 3, Options: proto.Options{BIDs: []proto.BID{{ID: 1}}, HasAuthData: auth}}}
	}
	good := mk(0, true, tCoA1)
	ba, _ := wire(t, &good, c.BASigner(tCoA1, tCN))
	if err := m.VerifyBA(ba); err != nil {
		t.Fatalf("good BA: %v", err)
	}
	noAuth := mk(0, false, tCoA1)
	if ba, _ := wire(t, &noAuth, nil); !errors.Is(m.VerifyBA(ba), ErrBAAuth) {
		t.Error("BA without authenticator accepted")
	}
	forged := mk(0, true, tCoA1)
	if ba, _ := wire(t, &forged, proto.BADSigner{Kbm: make([]byte, 20), CoA: tCoA1, Correspondent: tCN}); !errors.Is(m.VerifyBA(ba), ErrBAAuth) {
		t.Error("BA with a forged authenticator accepted")
	}
	expired := mk(proto.StatusExpiredNonces, false, tCoA1)
	if ba, _ := wire(t, &expired, nil); m.VerifyBA(ba) != nil {
		t.Error("138 without authenticator refused")
	}
	other := mk(0, true, tCoA2)
	if ba, _ := wire(t, &other, c.BASigner(tCoA2, tCN)); !errors.Is(m.VerifyBA(ba), ErrBAAuth) {
		t.Error("BA to a CoA that sent no BU accepted")
	}
}
