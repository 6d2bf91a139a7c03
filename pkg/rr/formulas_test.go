package rr

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// The reference computations of RFC 6275 5.2.5 and 5.2.6, written from the
// RFC with crypto/hmac and crypto/sha1 directly, octet by octet, and not
// through this package's helpers.

func refToken(kcn []byte, addr netip.Addr, nonce []byte, which byte) []byte {
	var msg []byte
	a := addr.As16()
	msg = append(msg, a[:]...) // 16 octets of address
	msg = append(msg, nonce...)
	msg = append(msg, which) // 0: home, 1: care-of
	mac := hmac.New(sha1.New, kcn)
	mac.Write(msg)
	return mac.Sum(nil)[:8] // First(64, ...)
}

func refKbm(home, careof []byte) []byte {
	s := sha1.Sum(append(append([]byte{}, home...), careof...))
	return s[:]
}

// refAuth is First(96, HMAC_SHA1(Kbm, care-of | correspondent | MH Data))
// where MH Data is the MH with the checksum octets zero and without the
// 12 authenticator octets.
func refAuth(kbm []byte, coa, cn netip.Addr, mh []byte, authOff int) []byte {
	data := bytes.Clone(mh)
	data[4], data[5] = 0, 0
	data = append(data[:authOff], data[authOff+12:]...)
	c, n := coa.As16(), cn.As16()
	msg := append(append(append([]byte{}, c[:]...), n[:]...), data...)
	mac := hmac.New(sha1.New, kbm)
	mac.Write(msg)
	return mac.Sum(nil)[:12]
}

// countingRand hands out 0x00, 0x01, 0x02, ... so that the test knows Kcn,
// the first nonce index and the nonces the CN draws.
type countingRand struct{ n byte }

func (r *countingRand) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = r.n
		r.n++
	}
	return len(b), nil
}

func TestKeygenTokensMatchReference(t *testing.T) {
	clk := clock.NewFake(t0)
	cn := newTestCN(t, clk, CNConfig{Rand: &countingRand{}})
	// Draw order: Kcn (20 octets), first nonce index (2), then the nonce
	// (8) on the first init.
	kcn := make([]byte, 20)
	for i := range kcn {
		kcn[i] = byte(i)
	}
	wantIdx := uint16(20)<<8 | 21
	nonce := []byte{22, 23, 24, 25, 26, 27, 28, 29}

	var hot, cot proto.Packet
	hoti := &proto.Packet{Src: tHoA, Dst: tCN, MH: proto.Message{Type: proto.TypeHoTI, Cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}}
	if err := cn.Answer(hoti, &hot); err != nil {
		t.Fatal(err)
	}
	coti := &proto.Packet{Src: tCoA2, Dst: tCN, MH: proto.Message{Type: proto.TypeCoTI, Cookie: [8]byte{9, 9, 9, 9, 9, 9, 9, 9}}}
	if err := cn.Answer(coti, &cot); err != nil {
		t.Fatal(err)
	}
	if hot.MH.Type != proto.TypeHoT || hot.Src != tCN || hot.Dst != tHoA || hot.MH.Cookie != hoti.MH.Cookie || hot.MH.NonceIndex != wantIdx {
		t.Fatalf("HoT = %v %v->%v cookie %x index %d, want index %d", hot.MH.Type, hot.Src, hot.Dst, hot.MH.Cookie, hot.MH.NonceIndex, wantIdx)
	}
	if cot.MH.Type != proto.TypeCoT || cot.Src != tCN || cot.Dst != tCoA2 || cot.MH.Cookie != coti.MH.Cookie || cot.MH.NonceIndex != wantIdx {
		t.Fatalf("CoT = %v %v->%v cookie %x index %d", cot.MH.Type, cot.Src, cot.Dst, cot.MH.Cookie, cot.MH.NonceIndex)
	}
	if want := refToken(kcn, tHoA, nonce, 0); !bytes.Equal(hot.MH.KeygenToken[:], want) {
		t.Errorf("home keygen token %x, reference %x", hot.MH.KeygenToken, want)
	}
	if want := refToken(kcn, tCoA2, nonce, 1); !bytes.Equal(cot.MH.KeygenToken[:], want) {
		t.Errorf("care-of keygen token %x, reference %x", cot.MH.KeygenToken, want)
	}
}

// mnWithTokens runs the home and care-of tests of coa between m and c.
func mnWithTokens(t *testing.T, m *MN, c *CN, coa netip.Addr) {
	t.Helper()
	pkts, err := m.Need(tCN, coa)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pkts {
		in, _ := wire(t, &pkts[i], nil)
		var out proto.Packet
		if err := c.Answer(in, &out); err != nil {
			t.Fatal(err)
		}
		got, _ := wire(t, &out, nil)
		if !m.HandleHoT(got) && !m.HandleCoT(got) {
			t.Fatalf("%v not taken", got.MH.Type)
		}
	}
	if _, ok := m.Ready(tCN, coa); !ok {
		t.Fatal("not ready after the tests")
	}
}

// tokensOnTheWay runs the home and care-of tests of tCoA1 between m and c
// and returns the keygen tokens and nonce indices the CN sent.
func tokensOnTheWay(t *testing.T, m *MN, c *CN) (ht, ct [8]byte, hi, ci uint16) {
	t.Helper()
	pkts, _ := m.Need(tCN, tCoA1)
	for i := range pkts {
		var out proto.Packet
		if err := c.Answer(&pkts[i], &out); err != nil {
			t.Fatal(err)
		}
		if out.MH.Type == proto.TypeHoT {
			ht, hi = out.MH.KeygenToken, out.MH.NonceIndex
			m.HandleHoT(&out)
		} else {
			ct, ci = out.MH.KeygenToken, out.MH.NonceIndex
			m.HandleCoT(&out)
		}
	}
	return
}

// The MN's BU carries the reference authenticator over the whole MH, BID
// sub-option included, with the Kbm of the two tokens the CN sent; a BU
// built and signed only by the reference is accepted by the CN; the CN's
// BA carries the reference authenticator.
func TestAuthenticatorsMatchReference(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	m := newTestMN(t, clk)

	ht, ct, hi, ci := tokensOnTheWay(t, m, c)
	p, sign, err := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 7, Priority: 3, Sequence: 99, Lifetime: 600e9})
	if err != nil {
		t.Fatal(err)
	}
	bu, _ := wire(t, &p, sign)
	mh := bu.MHBytes
	kbm := refKbm(ht[:], ct[:])
	off := bu.MH.AuthOffset
	if want := refAuth(kbm, tCoA1, tCN, mh, off); !bytes.Equal(mh[off:off+12], want) {
		t.Fatalf("BU authenticator %x, reference %x", mh[off:off+12], want)
	}
	// What the BU must carry (draft 5.2, RFC 6275 11.7.2).
	if bu.Src != tCoA1 || bu.Dst != tCN || bu.HomeAddress != tHoA || bu.MH.Flags != proto.FlagA ||
		bu.MH.Lifetime != 105 || !bu.MH.Options.HasNonceIndices || bu.MH.Options.HomeNonceIndex != hi ||
		bu.MH.Options.CareofNonce != ci || len(bu.MH.Options.BIDs) != 1 || bu.MH.Options.BIDs[0] != (proto.BID{ID: 7, PrioStatus: 3}) {
		t.Fatalf("BU %v->%v hao %v flags %#x life %d opts %+v", bu.Src, bu.Dst, bu.HomeAddress, bu.MH.Flags, bu.MH.Lifetime, bu.MH.Options)
	}
	if off+12 != len(mh) {
		t.Fatalf("authenticator at %d of %d: not last", off, len(mh))
	}
	if st, err := c.VerifyBU(bu); err != nil || st != 0 {
		t.Fatalf("CN: %v %v", st, err)
	}

	// A BU assembled octet by octet and signed by the reference only.
	raw := []byte{
		proto.ProtoNone, 0, byte(proto.TypeBU), 0, 0, 0, // checksum later
		0, 100, 0x80, 0, 0, 50, // seq 100, A, lifetime 50
		byte(proto.OptNonceIndices), 4, byte(hi >> 8), byte(hi), byte(ci >> 8), byte(ci),
		byte(proto.OptBIDDefault), 4, 0, 2, 9, 0, // BID 2, priority 9, no flags
		byte(proto.OptPadN), 0, // to 8n+2
		byte(proto.OptAuthData), 12, // offset 26 = 8*3+2
	}
	authOff := len(raw)
	raw = append(raw, make([]byte, 12)...)
	raw[1] = byte(len(raw)/8 - 1)
	if len(raw)%8 != 0 {
		t.Fatalf("reference BU of %d octets", len(raw))
	}
	copy(raw[authOff:], refAuth(kbm, tCoA1, tCN, raw, authOff))
	proto.SetChecksum(raw, tHoA, tCN)
	pkt := proto.Packet{Src: tCoA1, Dst: tCN, HomeAddress: tHoA, MHBytes: raw}
	if err := proto.ParseMessage(raw, &pkt.MH, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := c.VerifyBU(&pkt); err != nil || st != 0 {
		t.Fatalf("CN refuses the reference BU: %v %v", st, err)
	}
	raw[authOff+5] ^= 1
	if _, err := c.VerifyBU(&pkt); err != ErrAuthenticator {
		t.Fatalf("CN takes a reference BU with a flipped authenticator bit: %v", err)
	}
	raw[authOff+5] ^= 1
	raw[22] = 10 // the priority is covered
	if _, err := c.VerifyBU(&pkt); err != ErrAuthenticator {
		t.Fatalf("CN takes a BU whose BID sub-option changed: %v", err)
	}
	raw[22] = 9

	// De-registration from a foreign link: Kbm = SHA1(home keygen token),
	// and the authenticator covers the home address, not the care-of
	// address it is sent from (RFC 6275 5.2.6).
	dp, dsign, err := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 7, Sequence: 101})
	if err != nil {
		t.Fatal(err)
	}
	dbu, _ := wire(t, &dp, dsign)
	doff := dbu.MH.AuthOffset
	if want := refAuth(refKbm(ht[:], nil), tHoA, tCN, dbu.MHBytes, doff); !bytes.Equal(dbu.MHBytes[doff:doff+12], want) {
		t.Fatalf("de-registration authenticator %x, reference %x", dbu.MHBytes[doff:doff+12], want)
	}
	if dbu.MH.Lifetime != 0 || dbu.Src != tCoA1 || dbu.HomeAddress != tHoA {
		t.Fatalf("de-registration %v hao %v lifetime %d", dbu.Src, dbu.HomeAddress, dbu.MH.Lifetime)
	}
	if st, err := c.VerifyBU(dbu); err != nil || st != 0 {
		t.Fatalf("CN refuses the de-registration: %v %v", st, err)
	}
	// Its BA covers the home address too, and the MN takes it.
	dba := proto.Packet{Src: tCN, Dst: tCoA1, RoutingHome: tHoA, MH: proto.Message{Type: proto.TypeBA,
		Sequence: 101, Options: proto.Options{HasAuthData: true}}}
	gotDBA, _ := wire(t, &dba, c.BASigner(Addrs(dbu).Auth, tCN))
	dbo := gotDBA.MH.AuthOffset
	if want := refAuth(refKbm(ht[:], nil), tHoA, tCN, gotDBA.MHBytes, dbo); !bytes.Equal(gotDBA.MHBytes[dbo:dbo+12], want) {
		t.Fatalf("de-registration BA authenticator %x, reference %x", gotDBA.MHBytes[dbo:dbo+12], want)
	}
	if err := m.VerifyBA(gotDBA); err != nil {
		t.Fatalf("MN refuses the de-registration's BA: %v", err)
	}
	// The old form (authenticated over the care-of address) is refused.
	old := bytes.Clone(dbu.MHBytes)
	copy(old[doff:], refAuth(refKbm(ht[:], nil), tCoA1, tCN, old, doff))
	oldPkt := *dbu
	oldPkt.MHBytes = old
	if _, err := c.VerifyBU(&oldPkt); err != ErrAuthenticator {
		t.Fatalf("CN takes a de-registration authenticated over the care-of address: %v", err)
	}

	// The CN's BA for the reference BU.
	if st, err := c.VerifyBU(&pkt); err != nil || st != 0 {
		t.Fatal(st, err)
	}
	ba := proto.Packet{Src: tCN, Dst: tCoA1, RoutingHome: tHoA, MH: proto.Message{Type: proto.TypeBA,
		Sequence: 100, Lifetime: 50, Options: proto.Options{BIDs: []proto.BID{{ID: 2}}, HasAuthData: true}}}
	gotBA, _ := wire(t, &ba, c.BASigner(tCoA1, tCN))
	bo := gotBA.MH.AuthOffset
	if want := refAuth(kbm, tCoA1, tCN, gotBA.MHBytes, bo); !bytes.Equal(gotBA.MHBytes[bo:bo+12], want) {
		t.Fatalf("BA authenticator %x, reference %x", gotBA.MHBytes[bo:bo+12], want)
	}
}

// The RFC 6275 5.2.6 reference for the remaining forms, each assembled octet
// by octet and signed by the reference only: a de-registration sent from
// the home link (source and care-of address the home address, no Home
// Address option) and a registration whose care-of address is named by an
// Alternate Care-of Address option (sent from another care-of address),
// both with a BID sub-option inside.
func TestDeregAtHomeAndAltCoAReference(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newTestCN(t, clk, CNConfig{})
	m := newTestMN(t, clk)
	ht, ct, hi, ci := tokensOnTheWay(t, m, c)
	// sign assembles a BU with opts (whole options, before the
	// authenticator's), pads to 8n+2 and signs it with the reference.
	build := func(seq uint16, lifetime uint16, kbm []byte, authAddr netip.Addr, opts ...byte) ([]byte, int) {
		raw := []byte{proto.ProtoNone, 0, byte(proto.TypeBU), 0, 0, 0, byte(seq >> 8), byte(seq), 0x80, 0, byte(lifetime >> 8), byte(lifetime)}
		raw = append(raw, opts...)
		for len(raw)%8 != 2 {
			if (2-len(raw)%8+8)%8 == 1 {
				raw = append(raw, byte(proto.OptPad1))
				continue
			}
			n := (2 - len(raw)%8 + 8) % 8
			raw = append(raw, byte(proto.OptPadN), byte(n-2))
			raw = append(raw, make([]byte, n-2)...)
		}
		raw = append(raw, byte(proto.OptAuthData), 12)
		off := len(raw)
		raw = append(raw, make([]byte, 12)...)
		raw[1] = byte(len(raw)/8 - 1)
		copy(raw[off:], refAuth(kbm, authAddr, tCN, raw, off))
		return raw, off
	}
	bid := []byte{byte(proto.OptBIDDefault), 4, 0, 4, 0, 0} // BID 4
	nonces := func(careof uint16) []byte {
		return []byte{byte(proto.OptNonceIndices), 4, byte(hi >> 8), byte(hi), byte(careof >> 8), byte(careof)}
	}

	// De-registration at home: the packet comes from the home address.
	raw, _ := build(200, 0, refKbm(ht[:], nil), tHoA, append(nonces(0), bid...)...)
	proto.SetChecksum(raw, tHoA, tCN)
	home := proto.Packet{Src: tHoA, Dst: tCN, MHBytes: raw}
	if err := proto.ParseMessage(raw, &home.MH, nil); err != nil {
		t.Fatal(err)
	}
	if a := Addrs(&home); !a.Dereg || a.Auth != tHoA {
		t.Fatalf("addresses %+v: want a de-registration covering the home address", a)
	}
	if st, err := c.VerifyBU(&home); err != nil || st != 0 {
		t.Fatalf("CN refuses the reference de-registration from home: %v %v", st, err)
	}

	// Registration of tCoA1 through tCoA2 with the Alternate CoA option.
	alt := tCoA1.As16()
	opts := append(nonces(ci), bid...)
	opts = append(opts, byte(proto.OptAltCoA), 16)
	opts = append(opts, alt[:]...)
	raw, off := build(201, 50, refKbm(ht[:], ct[:]), tCoA1, opts...)
	proto.SetChecksum(raw, tHoA, tCN)
	reg := proto.Packet{Src: tCoA2, Dst: tCN, HomeAddress: tHoA, MHBytes: raw}
	if err := proto.ParseMessage(raw, &reg.MH, nil); err != nil {
		t.Fatal(err)
	}
	if a := Addrs(&reg); a.Dereg || a.Auth != tCoA1 || a.CareOf != tCoA1 {
		t.Fatalf("addresses %+v: want the alternate care-of address", a)
	}
	if st, err := c.VerifyBU(&reg); err != nil || st != 0 {
		t.Fatalf("CN refuses the reference registration with an Alternate CoA: %v %v", st, err)
	}
	// Covering the source instead is refused.
	copy(raw[off:], refAuth(refKbm(ht[:], ct[:]), tCoA2, tCN, raw, off))
	if _, err := c.VerifyBU(&reg); err != ErrAuthenticator {
		t.Fatalf("CN takes an authenticator over the source, not the alternate care-of address: %v", err)
	}
}
