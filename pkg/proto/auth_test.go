package proto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"net/netip"
	"testing"
)

// refAuth computes First(96, HMAC_SHA1(key, a1 | a2 | covered)) with the
// checksum of covered zeroed, independently of auth.go.
func refAuth(key []byte, a1, a2 netip.Addr, covered []byte) []byte {
	c := append([]byte{}, covered...)
	c[4], c[5] = 0, 0
	mac := hmac.New(sha1.New, key)
	mac.Write(addr16(a1))
	mac.Write(addr16(a2))
	mac.Write(c)
	return mac.Sum(nil)[:12]
}

func TestMNHASignVerify(t *testing.T) {
	key := []byte("0123456789abcdef")
	p := buPacket()
	p.MH.Options.HasMNHAAuth = true
	p.MH.Options.MNHASPI = 0x1000
	x := NewMNHA(key)
	b, err := AppendPacket(nil, p, nil, x.Signer(tCoA1, tHoA))
	if err != nil {
		t.Fatal(err)
	}
	var got Packet
	if err := ParsePacket(b, &got, nil); err != nil {
		t.Fatal(err) // the checksum was computed after signing
	}
	mh, off := got.MHBytes, got.MH.AuthOffset
	if !got.MH.Options.HasMNHAAuth || got.MH.Options.MNHASPI != 0x1000 || got.MH.Options.MNHASubtype != AuthSubtypeMNHA || off < 0 {
		t.Fatalf("option %+v at %d", got.MH.Options, off)
	}
	// RFC 4285 5.1: the MH up to and including the SPI, checksum zero.
	if !bytes.Equal(mh[off-4:off], []byte{0, 0, 0x10, 0}) {
		t.Fatalf("AuthOffset %d does not follow the SPI: %x", off, mh[off-7:off])
	}
	want := refAuth(key, tCoA1, tHoA, mh[:off])
	if !bytes.Equal(got.MH.Options.MNHAAuthData, want) {
		t.Errorf("authenticator %x, want %x", got.MH.Options.MNHAAuthData, want)
	}
	if !x.Verify(mh, off, tCoA1, tHoA) || !NewMNHA(key).Verify(mh, off, tCoA1, tHoA) {
		t.Error("Verify rejects the right authenticator")
	}
	// The key-built signer gives the same result.
	b2, err := AppendPacket(nil, p, nil, MNHASigner{Key: key, CoA: tCoA1, HoA: tHoA})
	if err != nil || !bytes.Equal(b, b2) {
		t.Errorf("MNHASigner differs: %v", err)
	}
	for name, ok := range map[string]bool{
		"wrong key":  NewMNHA([]byte("other")).Verify(mh, off, tCoA1, tHoA),
		"wrong CoA":  x.Verify(mh, off, tCoA2, tHoA),
		"wrong HoA":  x.Verify(mh, off, tCoA1, tHA),
		"swapped":    x.Verify(mh, off, tHoA, tCoA1),
		"bad offset": x.Verify(mh, off-1, tCoA1, tHoA),
		"past end":   x.Verify(mh, len(mh)-4, tCoA1, tHoA),
		"negative":   x.Verify(mh, -5, tCoA1, tHoA),
		"huge":       x.Verify(mh, 1<<30, tCoA1, tHoA),
		"max int":    x.Verify(mh, int(^uint(0)>>1), tCoA1, tHoA),
		"nil":        x.Verify(nil, off, tCoA1, tHoA),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
	// Every covered octet but the checksum matters; the checksum does not.
	for i := range off {
		c := append([]byte{}, mh...)
		c[i] ^= 0x01
		if v := x.Verify(c, off, tCoA1, tHoA); v != (i == 4 || i == 5) {
			t.Errorf("octet %d changed: Verify %v", i, v)
		}
	}
	c := append([]byte{}, mh...)
	c[off+3] ^= 1
	if x.Verify(c, off, tCoA1, tHoA) {
		t.Error("a changed authenticator verifies")
	}
	if err := x.Sign(mh[:off], off, tCoA1, tHoA); err == nil {
		t.Error("Sign past the end")
	}
}

func TestBADSign(t *testing.T) {
	kbm := bytes.Repeat([]byte{0x5a}, 20)
	p := &Packet{Src: tCoA1, Dst: tCN, HomeAddress: tHoA,
		MH: Message{Type: TypeBU, Sequence: 9, Lifetime: 100, Flags: FlagA,
			Options: Options{HasNonceIndices: true, HomeNonceIndex: 1, CareofNonce: 2,
				BIDs:        []BID{{ID: 4, PrioStatus: 7}},
				HasAuthData: true, Authenticator: [12]byte{0xff, 0xff}}}} // overwritten by the signer
	b, err := AppendPacket(nil, p, nil, BADSigner{Kbm: kbm, CoA: tCoA1, Correspondent: tCN})
	if err != nil {
		t.Fatal(err)
	}
	var got Packet
	if err := ParsePacket(b, &got, nil); err != nil {
		t.Fatal(err)
	}
	mh, off := got.MHBytes, got.MH.AuthOffset
	if off+12 != len(mh) || mh[off-2] != 5 || mh[off-1] != 12 {
		t.Fatalf("BAD at %d of %d: %x", off, len(mh), mh)
	}
	// RFC 6275 5.2.6: the MH except the authenticator, checksum zero.
	want := refAuth(kbm, tCoA1, tCN, mh[:off])
	if !bytes.Equal(got.MH.Options.Authenticator[:], want) {
		t.Errorf("authenticator %x, want %x", got.MH.Options.Authenticator, want)
	}
	// Anywhere but on the option's authenticator, Sign refuses (and
	// does not panic).
	s := BADSigner{Kbm: kbm, CoA: tCoA1, Correspondent: tCN}
	for _, o := range []int{off - 2, off + 1, len(mh) - 4, -5, 1 << 30, int(^uint(0) >> 1)} {
		if err := s.Sign(bytes.Clone(mh), o); err == nil {
			t.Errorf("Sign at %d of %d: no error", o, len(mh))
		}
	}
	if _, err := AppendPacket(nil, p, nil, BADSigner{CoA: tCoA1, Correspondent: tCN}); err == nil {
		t.Error("BADSigner without a key signed")
	}
}
