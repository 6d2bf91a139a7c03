package rr

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// cnNode is a correspondent node in memory: the CN of this package in
// front of a correspondent binding cache, as mcoa-ha wires them.
type cnNode struct {
	t       *testing.T
	clk     *clock.Fake
	cn      *CN
	cache   *bcache.Cache
	ba      proto.Message
	dropped int
}

func newCNNode(t *testing.T, clk *clock.Fake, cfg CNConfig) *cnNode {
	return &cnNode{t: t, clk: clk, cn: newTestCN(t, clk, cfg),
		cache: bcache.New(bcache.Config{Role: bcache.RoleCN}, clk)}
}

// recv takes a packet as wire bytes and returns the answer's, or nil.
func (n *cnNode) recv(b []byte) []byte {
	t := n.t
	t.Helper()
	var p proto.Packet
	if err := proto.ParsePacket(b, &p, nil); err != nil {
		t.Fatalf("CN cannot parse: %v", err)
	}
	var out proto.Packet
	var sign proto.Signer
	switch p.MH.Type {
	case proto.TypeHoTI, proto.TypeCoTI:
		if err := n.cn.Answer(&p, &out); err != nil {
			n.dropped++
			return nil
		}
	case proto.TypeBU:
		st, err := n.cn.VerifyBU(&p)
		if err != nil {
			n.dropped++
			return nil
		}
		in := bcache.BUInput{Src: p.Src, Dst: p.Dst, HoA: p.HomeAddress, Msg: &p.MH, MH: p.MHBytes, Reject: st}
		res := n.cache.ProcessBU(&in, &n.ba)
		if !res.Send {
			n.dropped++
			return nil
		}
		out = proto.Packet{Src: p.Dst, Dst: res.Dst, RoutingHome: res.RoutingHome, MH: n.ba}
		if NeedsAuthData(res.Status) {
			out.MH.Options.HasAuthData = true
			sign = n.cn.BASigner(Addrs(&p).Auth, p.Dst)
		}
	default:
		t.Fatalf("CN got %v", p.MH.Type)
	}
	ob, err := proto.AppendPacket(nil, &out, nil, sign)
	if err != nil {
		t.Fatalf("CN marshal %v: %v", out.MH.Type, err)
	}
	n.ba = out.MH
	return ob
}

// mnNode drives an MN against a cnNode.
type mnNode struct {
	t    *testing.T
	m    *MN
	cn   *cnNode
	seq  uint16
	sent map[proto.MHType]int
}

// rr runs Need for coa and delivers what it returns and the answers.
func (x *mnNode) rr(coa netip.Addr) []proto.MHType {
	t := x.t
	t.Helper()
	pkts, err := x.m.Need(tCN, coa)
	if err != nil {
		t.Fatal(err)
	}
	var types []proto.MHType
	for i := range pkts {
		types = append(types, pkts[i].MH.Type)
		x.sent[pkts[i].MH.Type]++
		if pkts[i].MH.Type == proto.TypeHoTI && pkts[i].Src != tHoA {
			t.Fatalf("HoTI from %v", pkts[i].Src)
		}
		if pkts[i].MH.Type == proto.TypeCoTI && pkts[i].Src != coa {
			t.Fatalf("CoTI from %v for %v", pkts[i].Src, coa)
		}
		b, err := proto.AppendPacket(nil, &pkts[i], nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ans := x.cn.recv(b)
		if ans == nil {
			t.Fatalf("no answer to %v", pkts[i].MH.Type)
		}
		var p proto.Packet
		if err := proto.ParsePacket(ans, &p, nil); err != nil {
			t.Fatal(err)
		}
		if !x.m.HandleHoT(&p) && !x.m.HandleCoT(&p) {
			t.Fatalf("MN ignored the %v", p.MH.Type)
		}
	}
	return types
}

// bu sends one BU and returns the BA the MN accepted, or nil when the CN
// said nothing.
func (x *mnNode) bu(coa netip.Addr, bid uint16, life time.Duration, mutate func(p *proto.Packet, b []byte) []byte) *proto.Packet {
	t := x.t
	t.Helper()
	x.seq++
	p, sign, err := x.m.BU(BUParams{CN: tCN, CoA: coa, BID: bid, Priority: uint8(bid), Sequence: x.seq, Lifetime: life})
	if err != nil {
		t.Fatalf("BU for BID %d: %v", bid, err)
	}
	b, err := proto.AppendPacket(nil, &p, nil, sign)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		b = mutate(&p, b)
	}
	ans := x.cn.recv(b)
	if ans == nil {
		return nil
	}
	ba := new(proto.Packet)
	if err := proto.ParsePacket(ans, ba, nil); err != nil {
		t.Fatal(err)
	}
	if ba.MH.Type != proto.TypeBA || ba.Src != tCN || ba.Dst != coa || ba.RoutingHome != tHoA {
		t.Fatalf("answer %v %v->%v rh2 %v", ba.MH.Type, ba.Src, ba.Dst, ba.RoutingHome)
	}
	if err := x.m.VerifyBA(ba); err != nil {
		t.Fatalf("MN refuses the BA (status %d): %v", ba.MH.Status, err)
	}
	if ba.MH.Options.HasAuthData != NeedsAuthData(ba.MH.Status) {
		t.Fatalf("BA status %d with Binding Authorization Data %v", ba.MH.Status, ba.MH.Options.HasAuthData)
	}
	if x.m.Rejected(tCN, coa, ba.MH.Status) != (ba.MH.Status >= 136 && ba.MH.Status <= 138) {
		t.Fatalf("Rejected(%d) disagrees", ba.MH.Status)
	}
	return ba
}

func (x *mnNode) cacheCoAs() map[uint16]netip.Addr {
	out := map[uint16]netip.Addr{}
	for _, e := range x.cn.cache.Entries(x.cn.clk.Now()) {
		if e.HoA != tHoA || e.HomeRegistration {
			x.t.Fatalf("cache entry %+v", e)
		}
		out[e.BID] = e.CoA
	}
	return out
}

func TestExchangeThreeCoAs(t *testing.T) {
	clk := clock.NewFake(t0)
	// A correspondent that forgets nonces after 60 s (new ones every
	// 10 s), so that the mobile node's tokens (210 s) outlive them and
	// the expiry statuses come up.
	cn := newCNNode(t, clk, CNConfig{NonceLifetime: 60 * time.Second, NonceInterval: 10 * time.Second})
	x := &mnNode{t: t, m: newTestMN(t, clk), cn: cn, sent: map[proto.MHType]int{}}

	// One HoTI for the correspondent, one CoTI per care-of address.
	for _, coa := range tCoAs {
		x.rr(coa)
	}
	if x.sent[proto.TypeHoTI] != 1 || x.sent[proto.TypeCoTI] != 3 {
		t.Fatalf("sent %v, want 1 HoTI and 3 CoTIs", x.sent)
	}
	for _, coa := range tCoAs {
		if got := x.rr(coa); len(got) != 0 {
			t.Fatalf("Need(%v) again with valid tokens: %v", coa, got)
		}
	}

	// One BU per BID, each from its CoA.
	for i, coa := range tCoAs {
		ba := x.bu(coa, uint16(i+1), 600*time.Second, nil)
		if ba == nil || ba.MH.Status != 0 || ba.MH.Lifetime != 105 || len(ba.MH.Options.BIDs) != 1 ||
			ba.MH.Options.BIDs[0].ID != uint16(i+1) || ba.MH.Options.BIDs[0].PrioStatus != 0 {
			t.Fatalf("BA for BID %d: %+v", i+1, ba)
		}
		clk.Advance(time.Second)
	}
	want := map[uint16]netip.Addr{1: tCoA1, 2: tCoA2, 3: tCoA3}
	if got := x.cacheCoAs(); !mapsEqual(got, want) {
		t.Fatalf("cache %v, want %v", got, want)
	}

	// A forged authenticator, or a BU changed after signing, changes
	// nothing and gets no answer.
	before := cn.cache.Entries(clk.Now())
	forgeries := map[string]func(p *proto.Packet, b []byte) []byte{
		"flipped authenticator": func(p *proto.Packet, b []byte) []byte {
			b[len(b)-3] ^= 0x10
			return b
		},
		"BID changed": func(p *proto.Packet, b []byte) []byte {
			mh := reparse(t, b).MHBytes // aliases b
			i := bytes.Index(mh[12:], []byte{byte(proto.OptBIDDefault), 4}) + 12
			if i < 12 || mh[i+3] != 1 {
				t.Fatalf("no BID sub-option for BID 1 in %x", mh)
			}
			mh[i+3] = 3 // BID 1 -> 3
			return b
		},
		"other care-of address": func(p *proto.Packet, b []byte) []byte {
			copy(b[8:24], tCoA2.AsSlice()) // source rewritten: another CoA
			return b
		},
	}
	for name, f := range forgeries {
		n := cn.dropped
		if ba := x.bu(tCoA1, 1, 420*time.Second, func(p *proto.Packet, b []byte) []byte {
			b = f(p, b)
			reparse(t, b) // fix the checksum: only the authenticator can catch it
			return b
		}); ba != nil {
			t.Fatalf("%s: answered with status %d", name, ba.MH.Status)
		}
		if cn.dropped != n+1 {
			t.Fatalf("%s: not dropped", name)
		}
		clk.Advance(time.Second)
	}
	if after := cn.cache.Entries(clk.Now()); !slices.EqualFunc(before, after, func(a, b bcache.Entry) bool {
		return a.BID == b.BID && a.CoA == b.CoA && a.Sequence == b.Sequence && a.Priority == b.Priority
	}) {
		t.Fatalf("forged BUs changed the cache:\n%+v\n%+v", before, after)
	}

	// A bulk BU (C flag), properly authorised, is refused with 146.
	bulk := x.bu(tCoA1, 1, 420*time.Second, func(p *proto.Packet, _ []byte) []byte {
		k, _ := x.m.Ready(tCN, tCoA1)
		p.MH.Options.BIDs = []proto.BID{{ID: 1, C: true, CoA: tCoA1}, {ID: 2, C: true, CoA: tCoA2}}
		b, err := proto.AppendPacket(nil, p, nil, proto.BADSigner{Kbm: k.Kbm[:], CoA: tCoA1, Correspondent: tCN})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
	if bulk == nil || bulk.MH.Status != proto.StatusDraftBulkRegNotSupported {
		t.Fatalf("bulk BU answered %+v", bulk)
	}
	if got := x.cacheCoAs(); !mapsEqual(got, want) {
		t.Fatalf("cache after bulk BU %v", got)
	}
	clk.Advance(time.Second)

	// t ≈ 65 s: every nonce of the first exchange is forgotten; the MN's
	// tokens are still within their 210 s. Both expired: 138, and return
	// routability again for that CoA (home and care-of).
	clk.Advance(65*time.Second - clk.Now().Sub(t0))
	if ba := x.bu(tCoA1, 1, 420*time.Second, nil); ba == nil || ba.MH.Status != proto.StatusExpiredNonces {
		t.Fatalf("BU with forgotten nonces: %+v", ba)
	}
	if got := x.rr(tCoA1); !slices.Equal(got, []proto.MHType{proto.TypeHoTI, proto.TypeCoTI}) {
		t.Fatalf("after 138 the MN sends %v", got)
	}
	if ba := x.bu(tCoA1, 1, 420*time.Second, nil); ba == nil || ba.MH.Status != 0 {
		t.Fatalf("BU after new tokens: %+v", ba)
	}
	clk.Advance(time.Second)

	// CoA 2: fresh home token, stale care-of token: 137, then a CoTI only.
	if ba := x.bu(tCoA2, 2, 420*time.Second, nil); ba == nil || ba.MH.Status != proto.StatusExpiredCareofNonce {
		t.Fatalf("BU with a forgotten care-of nonce: %+v", ba)
	}
	if got := x.rr(tCoA2); !slices.Equal(got, []proto.MHType{proto.TypeCoTI}) {
		t.Fatalf("after 137 the MN sends %v", got)
	}
	if ba := x.bu(tCoA2, 2, 420*time.Second, nil); ba == nil || ba.MH.Status != 0 {
		t.Fatalf("BU after a new care-of token: %+v", ba)
	}

	// t ≈ 100 s: a fresh care-of token for CoA 3 (after its 137).
	clk.Advance(100*time.Second - clk.Now().Sub(t0))
	if ba := x.bu(tCoA3, 3, 420*time.Second, nil); ba == nil || ba.MH.Status != proto.StatusExpiredCareofNonce {
		t.Fatalf("CoA 3 at 100 s: %+v", ba)
	}
	x.rr(tCoA3)
	if ba := x.bu(tCoA3, 3, 420*time.Second, nil); ba == nil || ba.MH.Status != 0 {
		t.Fatalf("CoA 3 after a new care-of token: %+v", ba)
	}
	// t ≈ 130 s: the home nonce (65 s) is forgotten, CoA 3's care-of
	// nonce (100 s) is not: 136, then a HoTI only.
	clk.Advance(130*time.Second - clk.Now().Sub(t0))
	if ba := x.bu(tCoA3, 3, 420*time.Second, nil); ba == nil || ba.MH.Status != proto.StatusExpiredHomeNonce {
		t.Fatalf("BU with a forgotten home nonce: %+v", ba)
	}
	if got := x.rr(tCoA3); !slices.Equal(got, []proto.MHType{proto.TypeHoTI}) {
		t.Fatalf("after 136 the MN sends %v", got)
	}
	if ba := x.bu(tCoA3, 3, 420*time.Second, nil); ba == nil || ba.MH.Status != 0 {
		t.Fatalf("BU after a new home token: %+v", ba)
	}
	if got := x.cacheCoAs(); !mapsEqual(got, want) {
		t.Fatalf("cache %v, want %v", got, want)
	}
	clk.Advance(time.Second)

	// De-registration of BID 2 with the home keygen token alone: the
	// care-of nonce index it carries is stale and not looked at.
	if ba := x.bu(tCoA2, 2, 0, nil); ba == nil || ba.MH.Status != 0 {
		t.Fatalf("de-registration: %+v", ba)
	}
	delete(want, 2)
	if got := x.cacheCoAs(); !mapsEqual(got, want) {
		t.Fatalf("cache after de-registration %v, want %v", got, want)
	}

	// Tokens run out after MAX_TOKEN_LIFETIME: no BU without new tests,
	// and Need asks for both again.
	clk.Advance(MaxTokenLifetime)
	x.m.Expire(clk.Now())
	if _, _, err := x.m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Sequence: 1000, Lifetime: time.Minute}); err != ErrNotReady {
		t.Fatalf("BU with expired tokens: %v", err)
	}
	if got := x.rr(tCoA1); !slices.Equal(got, []proto.MHType{proto.TypeHoTI, proto.TypeCoTI}) {
		t.Fatalf("after expiry the MN sends %v", got)
	}
	if ba := x.bu(tCoA1, 1, 420*time.Second, nil); ba == nil || ba.MH.Status != 0 {
		t.Fatalf("refresh after new tokens: %+v", ba)
	}
}

func mapsEqual(a, b map[uint16]netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
