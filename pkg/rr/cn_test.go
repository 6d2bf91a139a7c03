package rr

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

func hoti(src netip.Addr) *proto.Packet {
	return &proto.Packet{Src: src, Dst: tCN, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{1}}}
}

func coti(src netip.Addr) *proto.Packet {
	return &proto.Packet{Src: src, Dst: tCN, MH: proto.Message{Type: proto.TypeCoTI, Cookie: [8]byte{2}}}
}

func answer(t *testing.T, c *CN, in *proto.Packet) proto.Packet {
	t.Helper()
	var out proto.Packet
	if err := c.Answer(in, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Nonces: one every NonceInterval, recognised for NonceLifetime after
// they were made, never beyond MAX_NONCE_LIFETIME.
func TestCNNonceLifetime(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	first := answer(t, c, hoti(tHoA)).MH.NonceIndex
	clk.Advance(29 * time.Second)
	if got := answer(t, c, hoti(tHoA)).MH.NonceIndex; got != first {
		t.Fatalf("new nonce after 29 s: %d, %d", first, got)
	}
	clk.Advance(time.Second)
	second := answer(t, c, coti(tCoA1)).MH.NonceIndex
	if second != first+1 {
		t.Fatalf("after 30 s index %d, want %d", second, first+1)
	}
	// The first nonce stays recognised until 240 s after it was made.
	clk.Advance(MaxNonceLifetime - 30*time.Second - time.Nanosecond)
	if !c.NonceValid(first) || !c.NonceValid(second) {
		t.Fatal("nonces forgotten before MAX_NONCE_LIFETIME")
	}
	clk.Advance(time.Nanosecond)
	if c.NonceValid(first) {
		t.Fatal("nonce recognised MAX_NONCE_LIFETIME after it was made")
	}
	if !c.NonceValid(second) {
		t.Fatal("second nonce forgotten early")
	}
	if c.NonceValid(second + 1) {
		t.Fatal("a nonce index never handed out is recognised")
	}
	// A configured lifetime above the RFC's maximum is capped.
	c2 := newTestCN(t, clk, CNConfig{NonceLifetime: time.Hour})
	idx := answer(t, c2, hoti(tHoA)).MH.NonceIndex
	clk.Advance(MaxNonceLifetime)
	if c2.NonceValid(idx) {
		t.Fatal("NonceLifetime not capped at MAX_NONCE_LIFETIME")
	}
}

// Many nonces over a long time: the ring never confuses an old index with
// a new one, and the index wraps around 65535.
func TestCNNonceRing(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{NonceInterval: time.Second, NonceLifetime: 8 * time.Second})
	var live []uint16
	for i := range 70000 {
		idx := answer(t, c, hoti(tHoA)).MH.NonceIndex
		if i > 0 && idx != live[len(live)-1]+1 {
			t.Fatalf("index %d after %d", idx, live[len(live)-1])
		}
		live = append(live, idx)
		if len(live) > 20 {
			live = live[1:]
		}
		if i%997 == 0 {
			n := len(live)
			for k, x := range live {
				// Made (n-1-k) seconds ago: valid while under 8 s.
				if want := n-1-k < 8; c.NonceValid(x) != want {
					t.Fatalf("round %d: nonce %d made %d s ago valid=%v", i, x, n-1-k, !want)
				}
			}
		}
		clk.Advance(time.Second)
	}
}

// Kcn rotates; tokens of nonces made with the previous key still verify.
func TestCNKcnRotation(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{KeyLifetime: 5 * time.Minute})
	m := newTestMN(t, clk)
	old := c.kcn
	mnWithTokens(t, m, c, tCoA1)
	clk.Advance(5*time.Minute - 100*time.Second)
	m.Expire(clk.Now())
	// Fresh tokens for CoA 2 at 200 s (the key made at 0 still current).
	mnWithTokens(t, m, c, tCoA2)
	clk.Advance(100 * time.Second)
	// At 300 s: a new nonce needs a new key.
	mn2, _ := NewMN(MNConfig{HomeAddress: netip.MustParseAddr("2001:db8:aaaa::200"), Clock: clk, Rand: seeded(9)})
	pk, _ := mn2.Need(tCN, tCoA3)
	answer(t, c, &pk[0])
	if c.kcn == old {
		t.Fatal("Kcn not rotated after KeyLifetime")
	}
	// The MN's tokens from 200 s (old key) still verify at 300 s.
	p, sign, err := m.BU(BUParams{CN: tCN, CoA: tCoA2, BID: 2, Sequence: 1, Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	bu, _ := wire(t, &p, sign)
	if st, err := c.VerifyBU(bu); st != 0 || err != nil {
		t.Fatalf("BU with tokens of the previous Kcn: %v %v", st, err)
	}
}

func TestCNAnswerRefuses(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	withHAO := hoti(tCoA1)
	withHAO.HomeAddress = tHoA
	withRH := coti(tCoA1)
	withRH.RoutingHome = tHoA
	for name, p := range map[string]*proto.Packet{
		"HoTI with Home Address option": withHAO,
		"CoTI with routing header":      withRH,
		"link-local source":             hoti(netip.MustParseAddr("fe80::1")),
		"multicast source":              coti(netip.MustParseAddr("ff02::1")),
		"BU":                            {Src: tCoA1, Dst: tCN, MH: proto.Message{Type: proto.TypeBU}},
	} {
		var out proto.Packet
		if err := c.Answer(p, &out); !errors.Is(err, ErrInit) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// buFor returns a signed BU from coa as the receiver parses it.
func buFor(t *testing.T, m *MN, coa netip.Addr, life time.Duration) (*proto.Packet, []byte) {
	t.Helper()
	p, sign, err := m.BU(BUParams{CN: tCN, CoA: coa, BID: 1, Sequence: 5, Lifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	return wire(t, &p, sign)
}

func TestCNVerifyBUDrops(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	m := newTestMN(t, clk)
	mnWithTokens(t, m, c, tCoA1)

	cases := map[string]struct {
		mutate func(p *proto.Packet)
		err    error
	}{
		"H flag":           {func(p *proto.Packet) { p.MH.Flags |= proto.FlagH }, ErrHomeRegistration},
		"no nonce indices": {func(p *proto.Packet) { p.MH.Options.HasNonceIndices = false }, ErrNoNonceIndices},
		"no auth data":     {func(p *proto.Packet) { p.MH.Options.HasAuthData = false }, ErrNoAuthData},
		"not a BU":         {func(p *proto.Packet) { p.MH.Type = proto.TypeBA }, ErrNotBU},
		"auth not last":    {func(p *proto.Packet) { p.MHBytes = append(p.MHBytes, 0, 0, 0, 0, 0, 0, 0, 0) }, ErrNoAuthData},
		"alternate CoA":    {func(p *proto.Packet) { p.MH.Options.AltCoA = tCoA2 }, ErrAuthenticator},
		"other HoA":        {func(p *proto.Packet) { p.HomeAddress = netip.MustParseAddr("2001:db8:aaaa::101") }, ErrAuthenticator},
		"other CN address": {func(p *proto.Packet) { p.Dst = netip.MustParseAddr("2001:db8:cccc::2") }, ErrAuthenticator},
	}
	for name, tc := range cases {
		bu, _ := buFor(t, m, tCoA1, time.Minute)
		if st, err := c.VerifyBU(bu); st != 0 || err != nil {
			t.Fatalf("%s: unchanged BU refused: %v %v", name, st, err)
		}
		tc.mutate(bu)
		if _, err := c.VerifyBU(bu); err != tc.err {
			t.Errorf("%s: %v, want %v", name, err, tc.err)
		}
	}
	// Every byte of the MH but the checksum is covered.
	bu, b := buFor(t, m, tCoA1, time.Minute)
	mhOff := len(b) - len(bu.MHBytes)
	for i := range bu.MHBytes {
		if i == 4 || i == 5 {
			continue
		}
		c2 := append([]byte(nil), b...)
		c2[mhOff+i] ^= 0x01
		var q proto.Packet
		err := proto.ParsePacket(c2, &q, nil)
		if errors.Is(err, proto.ErrChecksum) {
			proto.SetChecksum(q.MHBytes, q.ChecksumSrc(), q.ChecksumDst())
			err = proto.ParsePacket(c2, &q, nil)
		}
		if err != nil || q.MH.Type != proto.TypeBU {
			continue // no longer a parsable BU: dropped earlier anyway
		}
		if st, err := c.VerifyBU(&q); err == nil && st == 0 {
			t.Errorf("BU with octet %d changed is accepted", i)
		}
	}
}

// A de-registration's care-of nonce index is not looked at, and its Kbm
// is the home token's alone; from the home address itself likewise.
func TestCNDeregistration(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	m := newTestMN(t, clk)
	pkts, _ := m.Need(tCN, tHoA) // home test only
	if len(pkts) != 1 || pkts[0].MH.Type != proto.TypeHoTI {
		t.Fatalf("Need for a de-registration sends %d packets", len(pkts))
	}
	hot := answer(t, c, &pkts[0])
	m.HandleHoT(&hot)
	if _, ok := m.Ready(tCN, tCoA1); ok {
		t.Fatal("registration ready without a care-of token")
	}
	for _, coa := range []netip.Addr{tCoA1, tHoA} {
		p, sign, err := m.BU(BUParams{CN: tCN, CoA: coa, BID: 1, Sequence: 9})
		if err != nil {
			t.Fatal(err)
		}
		bu, _ := wire(t, &p, sign)
		if coa == tHoA && (bu.HomeAddress.IsValid() || bu.Src != tHoA) {
			t.Fatalf("BU from home: src %v hao %v", bu.Src, bu.HomeAddress)
		}
		if st, err := c.VerifyBU(bu); st != 0 || err != nil {
			t.Fatalf("de-registration from %v: %v %v", coa, st, err)
		}
	}
	// A registration with an unknown care-of index: 137.
	p, sign, _ := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Sequence: 10})
	p.MH.Lifetime = 10
	bu, _ := wire(t, &p, sign)
	if st, err := c.VerifyBU(bu); st != proto.StatusExpiredCareofNonce || err != nil {
		t.Fatalf("registration without care-of nonce: %v %v", st, err)
	}
}

func TestCNZeroAlloc(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	m := newTestMN(t, clk)
	mnWithTokens(t, m, c, tCoA1)
	bu, _ := buFor(t, m, tCoA1, time.Minute)
	if n := testing.AllocsPerRun(100, func() {
		if st, err := c.VerifyBU(bu); st != 0 || err != nil {
			t.Fatal(st, err)
		}
	}); n != 0 {
		t.Errorf("VerifyBU allocates %v times", n)
	}
	in := hoti(tHoA)
	var out proto.Packet
	if n := testing.AllocsPerRun(100, func() {
		if err := c.Answer(in, &out); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Answer allocates %v times", n)
	}
	ba := proto.Packet{Src: tCN, Dst: tCoA1, RoutingHome: tHoA, MH: proto.Message{Type: proto.TypeBA, Options: proto.Options{HasAuthData: true}}}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := proto.AppendPacket(buf[:0], &ba, nil, c.BASigner(tCoA1, tCN)); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("signing a BA allocates %v times", n)
	}
}

// Hostile BUs never panic the correspondent, and only a right
// authenticator is accepted.
func FuzzVerifyBU(f *testing.F) {
	clk := clock.NewFake(t0)
	c := newTestCN(f, clk, CNConfig{})
	m := newTestMN(f, clk)
	pkts, _ := m.Need(tCN, tCoA1)
	for i := range pkts {
		var out proto.Packet
		if err := c.Answer(&pkts[i], &out); err != nil {
			f.Fatal(err)
		}
		m.HandleHoT(&out)
		m.HandleCoT(&out)
	}
	for _, life := range []time.Duration{time.Minute, 0} {
		p, sign, err := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Sequence: 1, Lifetime: life})
		if err != nil {
			f.Fatal(err)
		}
		b, err := proto.AppendPacket(nil, &p, nil, sign)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	valid := map[string]bool{}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p proto.Packet
		if err := proto.ParsePacket(b, &p, nil); err != nil && p.MH.Type != proto.TypeBU {
			return
		}
		st, err := c.VerifyBU(&p)
		if err != nil || st != 0 {
			return
		}
		// Accepted: it must carry the authenticator of what the MN signed
		// (the fuzzer cannot forge HMAC-SHA1), so its MH is one of the
		// seeds' up to the checksum.
		mh := append([]byte(nil), p.MHBytes...)
		mh[4], mh[5] = 0, 0
		if len(valid) == 0 {
			for _, life := range []time.Duration{time.Minute, 0} {
				q, sign, _ := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Sequence: 1, Lifetime: life})
				sb, _ := proto.AppendPacket(nil, &q, nil, sign)
				var sp proto.Packet
				_ = proto.ParsePacket(sb, &sp, nil)
				s := append([]byte(nil), sp.MHBytes...)
				s[4], s[5] = 0, 0
				valid[string(s)] = true
			}
		}
		if !valid[string(mh)] {
			t.Fatalf("accepted a BU the mobile node never signed: %x", p.MHBytes)
		}
	})
}
