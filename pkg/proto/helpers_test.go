package proto

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/testutil"
)

var (
	tHoA  = netip.MustParseAddr("2001:db8:aaaa::100")
	tHA   = netip.MustParseAddr("2001:db8:aaaa::1")
	tCN   = netip.MustParseAddr("2001:db8:cccc::1")
	tCoA1 = netip.MustParseAddr("2001:db8:1::100")
	tCoA2 = netip.MustParseAddr("2001:db8:2::100")
	tCoA3 = netip.MustParseAddr("2001:db8:3::100")
)

// refSum is an independent Internet checksum (RFC 1071).
var refSum = testutil.Sum

// refPseudo is the IPv6 pseudo-header of RFC 8200 8.1 for an MH of n octets.
func refPseudo(src, dst netip.Addr, n int) []byte {
	s, d := src.As16(), dst.As16()
	return testutil.Pseudo(s[:], d[:], 135, n)
}

// refChecksum computes the checksum to put into mh (its own checksum field
// zeroed in a copy).
func refChecksum(mh []byte, src, dst netip.Addr) uint16 {
	c := append([]byte{}, mh...)
	c[4], c[5] = 0, 0
	return ^refSum(refPseudo(src, dst, len(mh)), c)
}

// refValid reports whether mh's checksum field is right.
func refValid(mh []byte, src, dst netip.Addr) bool {
	return refSum(refPseudo(src, dst, len(mh)), mh) == 0xffff
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// rawMH assembles a Mobility Header by hand: header, fixed part, option
// bytes, Pad1 up to a multiple of 8, and Header Len. Checksum zero.
func rawMH(typ MHType, fixed []byte, opts ...[]byte) []byte {
	b := []byte{ProtoNone, 0, byte(typ), 0, 0, 0}
	b = append(b, fixed...)
	for _, o := range opts {
		b = append(b, o...)
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	b[1] = byte(len(b)/8 - 1)
	return b
}

// buFixed is a BU's fixed part: sequence 7, A|H, lifetime 100.
var buFixed = []byte{0, 7, 0xc0, 0, 0, 100}

func addr16(a netip.Addr) []byte { b := a.As16(); return b[:] }

// normalized returns a copy of m with what a round trip does not keep set
// to canonical values: the default PayloadProto and subtypes, AuthOffset,
// the count of skipped unknown options, nil/empty slices.
func normalized(m *Message) Message {
	c := *m
	if c.PayloadProto == 0 {
		c.PayloadProto = ProtoNone
	}
	c.AuthOffset = 0
	c.Options.Unknown = 0
	o := &c.Options
	if o.HasMNID && o.MNIDSubtype == 0 {
		o.MNIDSubtype = MNIDSubtypeNAI
	}
	if o.HasMNHAAuth && o.MNHASubtype == 0 {
		o.MNHASubtype = AuthSubtypeMNHA
	}
	if o.HasMNHAAuth && len(o.MNHAAuthData) == 0 {
		o.MNHAAuthData = make([]byte, AuthenticatorLen)
	}
	o.BIDs = append([]BID{}, o.BIDs...)
	o.Prefixes = append([]netip.Prefix{}, o.Prefixes...)
	o.MNID = append([]byte{}, o.MNID...)
	o.MNHAAuthData = append([]byte{}, o.MNHAAuthData...)
	if c.Type == TypeBE && !c.BEHomeAddress.IsValid() {
		c.BEHomeAddress = netip.IPv6Unspecified()
	}
	return c
}

// sameMessage reports whether a and b carry the same values.
func sameMessage(a, b *Message) bool {
	x, y := normalized(a), normalized(b)
	return reflect.DeepEqual(x, y)
}

// walkOptions calls f for every option of the MH b (a well-formed one),
// with its offset from the start of the MH.
func walkOptions(t *testing.T, b []byte, f func(off int, typ OptionType, data []byte)) {
	t.Helper()
	off := optStart[MHType(b[2])]
	for off < len(b) {
		if b[off] == 0 {
			f(off, OptPad1, nil)
			off++
			continue
		}
		l := int(b[off+1])
		f(off, OptionType(b[off]), b[off+2:off+2+l])
		off += 2 + l
	}
	if off != len(b) {
		t.Fatalf("options end at %d, message at %d", off, len(b))
	}
}

// checkLayout checks the alignment rules of RFC 6275 6.2, RFC 3963, RFC
// 4285 and the draft, that padding is zero, the Header Len, and that the
// authentication option comes last.
func checkLayout(t *testing.T, b []byte, prof *Profile) {
	t.Helper()
	if len(b)%8 != 0 || (int(b[1])+1)*8 != len(b) {
		t.Fatalf("length %d, Header Len %d", len(b), b[1])
	}
	authSeen := false
	walkOptions(t, b, func(off int, typ OptionType, d []byte) {
		align := func(n, k int) {
			if off%n != k {
				t.Errorf("option %d at offset %d, want %dn+%d", typ, off, n, k)
			}
		}
		if typ != OptPad1 && typ != OptPadN && authSeen {
			t.Errorf("option %d after the authentication option", typ)
		}
		switch typ {
		case OptPadN:
			if !bytes.Equal(d, make([]byte, len(d))) {
				t.Errorf("PadN at %d not zero: %x", off, d)
			}
		case OptRefreshAdvice, OptNonceIndices:
			align(2, 0)
		case OptAltCoA:
			align(8, 6)
		case OptAuthData:
			align(8, 2)
			authSeen = true
		case OptMobileNetPrefix:
			align(8, 4)
		case OptMNHAAuth:
			align(4, 1)
			authSeen = true
		case prof.BIDOptionType:
			// draft 4.3.1, RFC 5648 4.3: 8n+2 with a Care-of Address
			// field (IPv6, or IPv4 in rfc5648), else 2n.
			if len(d) == int(prof.BIDLenCoA) || (prof.BIDLenCoA4 != 0 && len(d) == int(prof.BIDLenCoA4)) {
				align(8, 2)
			} else {
				align(2, 0)
			}
			if d[3]&^(prof.FlagCoA|prof.FlagRemove|prof.FlagHome) != 0 {
				t.Errorf("BID reserved bits set: %x", d[3])
			}
		}
	})
}
