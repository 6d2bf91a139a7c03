package proto

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// sampleMessages has one message of every type, together using every
// option.
func sampleMessages() map[string]*Message {
	return map[string]*Message{
		"BRR":  {Type: TypeBRR, Options: Options{BIDs: []BID{{ID: 9}}}},
		"HoTI": {Type: TypeHoTI, Cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		"CoTI": {Type: TypeCoTI, Cookie: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}},
		"HoT": {Type: TypeHoT, NonceIndex: 0x1234, Cookie: [8]byte{1, 1, 2, 3, 5, 8, 13, 21},
			KeygenToken: [8]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}},
		"CoT": {Type: TypeCoT, NonceIndex: 0xfffe, Cookie: [8]byte{9}, KeygenToken: [8]byte{7: 9}},
		"BU-bulk": {Type: TypeBU, Sequence: 0xfff0, Lifetime: 105, Flags: FlagA | FlagH | FlagK,
			Options: Options{BIDs: []BID{
				{ID: 1, PrioStatus: 30, C: true, CoA: tCoA1},
				{ID: 2, PrioStatus: 20, C: true, CoA: tCoA2},
				{ID: 3, PrioStatus: 10, C: true, R: true, CoA: tCoA3},
			}}},
		"BU-individual": {Type: TypeBU, Sequence: 1, Lifetime: 0, Flags: FlagA | FlagH | FlagL,
			Options: Options{BIDs: []BID{{ID: 4, PrioStatus: 255}}}},
		"BU-RR": {Type: TypeBU, Sequence: 77, Lifetime: 100, Flags: FlagA,
			Options: Options{AltCoA: tCoA2, HasNonceIndices: true, HomeNonceIndex: 3, CareofNonce: 4,
				BIDs:        []BID{{ID: 5, PrioStatus: 1}},
				HasAuthData: true, Authenticator: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}},
		"BU-NEMO": {Type: TypeBU, Sequence: 2, Lifetime: 50, Flags: FlagA | FlagH | FlagR,
			Options: Options{
				Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:bbbb::/48"), netip.MustParsePrefix("2001:db8:bbbc:1::/64")},
				HasMNID:  true, MNIDSubtype: MNIDSubtypeNAI, MNID: []byte("mn1@example.org"),
				HasMNHAAuth: true, MNHASubtype: AuthSubtypeMNHA, MNHASPI: 0x01020304,
				MNHAAuthData: []byte{0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2, 3, 4, 5, 6}}},
		"BA": {Type: TypeBA, Status: StatusDraftBulkRegFail, Flags: BAFlagK | BAFlagR, Sequence: 0xfff0, Lifetime: 100,
			Options: Options{HasRefreshAdvice: true, RefreshInterval: 90, BIDs: []BID{
				{ID: 1, PrioStatus: 0, C: true, CoA: tCoA1},
				{ID: 2, PrioStatus: 128, C: true, CoA: tCoA2},
			}}},
		"BA-auth": {Type: TypeBA, Status: StatusAccepted, Sequence: 3, Lifetime: 10,
			Options: Options{BIDs: []BID{{ID: 6}}, HasMNHAAuth: true, MNHASPI: 256}},
		"BE": {Type: TypeBE, Status: BEUnknownType, BEHomeAddress: tHoA},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	seen := map[MHType]bool{}
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			b, err := AppendMessage([]byte("prefix"), m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(b[:6]) != "prefix" {
				t.Fatalf("AppendMessage overwrote the buffer: %q", b[:6])
			}
			mh := b[6:]
			checkLayout(t, mh, Draft00)
			if mh[0] != ProtoNone || MHType(mh[2]) != m.Type || mh[3] != 0 || mh[4] != 0 || mh[5] != 0 {
				t.Errorf("header %x", mh[:6])
			}
			var got Message
			if err := ParseMessage(mh, &got, nil); err != nil {
				t.Fatalf("ParseMessage(%x): %v", mh, err)
			}
			if !sameMessage(m, &got) {
				t.Errorf("round trip:\n got %+v\nwant %+v\nwire %x", got, *m, mh)
			}
			if got.AuthOffset != m.AuthOffset {
				t.Errorf("AuthOffset parsed %d, marshalled %d", got.AuthOffset, m.AuthOffset)
			}
			seen[m.Type] = true
		})
	}
	for typ := TypeBRR; typ <= TypeBE; typ++ {
		if !seen[typ] {
			t.Errorf("no sample of %v", typ)
		}
	}
}

func TestGoldenBytes(t *testing.T) {
	auth := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for _, tc := range []struct {
		name string
		m    Message
		want string // hand-computed from the RFC and draft figures
		auth int
	}{
		{
			// Options start at 12; a BID with a CoA goes to 8n+2 = 18, so a
			// PadN of 6 octets comes first; the CoA lands on 24; the message
			// ends at 40: Header Len 4.
			name: "BU with one BID and C",
			m: Message{Type: TypeBU, Sequence: 0x1234, Flags: FlagA | FlagH, Lifetime: 105,
				Options: Options{BIDs: []BID{{ID: 3, PrioStatus: 20, C: true, CoA: tCoA1}}}},
			want: `3b 04 05 00 0000 1234 c000 0069
			       01 04 00000000
			       23 14 0003 14 80 20010db8000100000000000000000100`,
			auth: -1,
		},
		{
			// A BID without CoA at 12 (2n), then PadN(4) to 24.
			name: "BA with per-BID status",
			m: Message{Type: TypeBA, Status: StatusDraftBulkRegFail, Flags: BAFlagK, Sequence: 0x1234, Lifetime: 100,
				Options: Options{BIDs: []BID{{ID: 3, PrioStatus: 128}}}},
			want: `3b 02 06 00 0000 91 80 1234 0064
			       23 04 0003 80 00
			       01 04 00000000`,
			auth: -1,
		},
		{
			name: "BU with R (NEMO) and BID with R",
			m: Message{Type: TypeBU, Sequence: 1, Flags: FlagA | FlagR, Lifetime: 1,
				Options: Options{BIDs: []BID{{ID: 0x0102, C: true, R: true, CoA: tCoA2}}}},
			want: `3b 04 05 00 0000 0001 8400 0001
			       01 04 00000000
			       23 14 0102 00 c0 20010db8000200000000000000000100`,
			auth: -1,
		},
		{
			name: "BRR",
			m:    Message{Type: TypeBRR},
			want: `3b 00 00 00 0000 0000`,
			auth: -1,
		},
		{
			name: "HoTI",
			m:    Message{Type: TypeHoTI, Cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
			want: `3b 01 01 00 0000 0000 0102030405060708`,
			auth: -1,
		},
		{
			name: "BE",
			m:    Message{Type: TypeBE, Status: BEUnknownType, BEHomeAddress: tHoA},
			want: `3b 02 07 00 0000 02 00 20010db8aaaa00000000000000000100`,
			auth: -1,
		},
		{
			// MN-HA at 8n+5 = 13 after a Pad1: SPI on 16, authenticator at
			// 20, end at 32.
			name: "BU with MN-HA",
			m: Message{Type: TypeBU, Sequence: 1, Flags: FlagA | FlagH, Lifetime: 100,
				Options: Options{HasMNHAAuth: true, MNHASPI: 0x100, MNHAAuthData: auth}},
			want: `3b 03 05 00 0000 0001 c000 0064
			       00
			       09 11 01 00000100 0102030405060708090a0b0c`,
			auth: 20,
		},
		{
			// Nonce Indices at 12 (2n), BAD at 8n+2 = 18 directly after it,
			// ending at 32.
			name: "BU with nonces and BAD",
			m: Message{Type: TypeBU, Sequence: 1, Flags: FlagA, Lifetime: 100,
				Options: Options{HasNonceIndices: true, HomeNonceIndex: 5, CareofNonce: 6,
					HasAuthData: true, Authenticator: [12]byte(auth)}},
			want: `3b 03 05 00 0000 0001 8000 0064
			       04 04 0005 0006
			       05 0c 0102030405060708090a0b0c`,
			auth: 20,
		},
		{
			// Alternate CoA at 8n+6 = 14 after PadN(2); MNP at 8n+4 = 36
			// after PadN(4).
			name: "BU with Alternate CoA and MNP",
			m: Message{Type: TypeBU, Sequence: 9, Flags: FlagA | FlagH | FlagR, Lifetime: 100,
				Options: Options{AltCoA: tCoA1, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:bbbb::/48")}}},
			want: `3b 06 05 00 0000 0009 c400 0064
			       01 00
			       03 10 20010db8000100000000000000000100
			       01 02 0000
			       06 12 00 30 20010db8bbbb00000000000000000000`,
			auth: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.want)
			got, err := AppendMessage(nil, &tc.m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
			if tc.m.AuthOffset != tc.auth {
				t.Errorf("AuthOffset %d, want %d", tc.m.AuthOffset, tc.auth)
			}
			var m Message
			if err := ParseMessage(want, &m, nil); err != nil {
				t.Fatal(err)
			}
			if !sameMessage(&m, &tc.m) {
				t.Errorf("parsed %+v, want %+v", m, tc.m)
			}
		})
	}
}

// TestProfileBIDType checks that the BID sub-option type comes from the
// profile, on both sides.
func TestProfileBIDType(t *testing.T) {
	prof, err := ProfileByName("draft-00", 200)
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{Type: TypeBU, Sequence: 1, Options: Options{BIDs: []BID{{ID: 3}}}}
	b, err := AppendMessage(nil, m, prof)
	if err != nil {
		t.Fatal(err)
	}
	if b[12] != 200 {
		t.Fatalf("BID sub-option type %d, want 200: %x", b[12], b)
	}
	var got Message
	if err := ParseMessage(b, &got, nil); err != nil || len(got.Options.BIDs) != 0 || got.Options.Unknown != 1 {
		t.Errorf("draft-00 profile: err %v BIDs %v unknown %d, want one unknown option", err, got.Options.BIDs, got.Options.Unknown)
	}
	if err := ParseMessage(b, &got, prof); err != nil || len(got.Options.BIDs) != 1 || got.Options.BIDs[0].ID != 3 {
		t.Errorf("type-200 profile: err %v BIDs %v", err, got.Options.BIDs)
	}
	if _, err := ProfileByName("draft-00", uint8(OptAltCoA)); err == nil {
		t.Error("a BID type colliding with Alternate CoA was accepted")
	}
	if _, err := ProfileByName("rfc9999", 0); err == nil {
		t.Error("unknown profile accepted")
	}
	if p, err := ProfileByName("", 0); err != nil || p != Draft00 {
		t.Errorf("default profile %v %v", p, err)
	}
}

func TestParseReuse(t *testing.T) {
	var m Message
	msgs := sampleMessages()
	b, _ := AppendMessage(nil, msgs["BU-NEMO"], nil)
	if err := ParseMessage(b, &m, nil); err != nil {
		t.Fatal(err)
	}
	b2, _ := AppendMessage(nil, msgs["BRR"], nil)
	if err := ParseMessage(b2, &m, nil); err != nil {
		t.Fatal(err)
	}
	if !sameMessage(&m, msgs["BRR"]) {
		t.Errorf("state left over from the previous message: %+v", m)
	}
	// The MN-ID is copied, not aliased: changing the input leaves it.
	if err := ParseMessage(b, &m, nil); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("mn1@"))
	b[i] = 'X'
	if string(m.Options.MNID) != "mn1@example.org" {
		t.Errorf("MNID aliases the input: %q", m.Options.MNID)
	}
}

func TestParseBadInput(t *testing.T) {
	bid := func(id uint16, prio, flags byte, coa ...netip.Addr) []byte {
		o := []byte{35, 4, byte(id >> 8), byte(id), prio, flags}
		if len(coa) > 0 {
			o[1] = 20
			o = append(o, addr16(coa[0])...)
		}
		return o
	}
	good := rawMH(TypeBU, buFixed, bid(1, 0, 0))
	altcoa := append([]byte{3, 16}, addr16(tCoA1)...)
	for _, tc := range []struct {
		name string
		b    []byte
		want error
		typ  MHType // m.Type expected after the error
	}{
		{"empty", nil, ErrTruncated, 0},
		{"7 octets", good[:7], ErrTruncated, TypeBU},
		{"header len past the end", good[:8], ErrTruncated, TypeBU},
		{"buffer longer than header len", append(append([]byte{}, good...), make([]byte, 8)...), ErrBadLength, TypeBU},
		{"BU shorter than its fixed part", []byte{59, 0, 5, 0, 0, 0, 0, 1}, ErrBadLength, TypeBU},
		{"BE shorter than its fixed part", rawMH(TypeBE, make([]byte, 10)), ErrBadLength, TypeBE},
		{"HoT shorter than its fixed part", rawMH(TypeHoT, make([]byte, 10)), ErrBadLength, TypeHoT},
		{"unknown MH type", rawMH(200, buFixed), ErrUnknownType, 200},
		{"unknown MH type 8", rawMH(8, buFixed), ErrUnknownType, 8},
		{"option length past the end", rawMH(TypeBU, buFixed, []byte{1, 2, 0, 0, 3, 30, 0, 0, 0, 0}), ErrOptionOverrun, TypeBU},
		{"option type in the last octet", append(rawMH(TypeBU, buFixed, make([]byte, 3))[:15], 3), ErrOptionOverrun, TypeBU},
		{"Alternate CoA of 8", rawMH(TypeBU, buFixed, []byte{3, 8}, make([]byte, 8)), ErrOptionLength, TypeBU},
		{"Refresh Advice of 3", rawMH(TypeBA, buFixed, []byte{2, 3, 0, 0, 0}), ErrOptionLength, TypeBA},
		{"Nonce Indices of 2", rawMH(TypeBU, buFixed, []byte{4, 2, 0, 0}), ErrOptionLength, TypeBU},
		{"BAD of 10", rawMH(TypeBU, buFixed, []byte{5, 10}, make([]byte, 10)), ErrOptionLength, TypeBU},
		{"MNP of 16", rawMH(TypeBU, buFixed, []byte{6, 16}, make([]byte, 16)), ErrOptionLength, TypeBU},
		{"MNP length 129", rawMH(TypeBU, buFixed, []byte{6, 18, 0, 129}, make([]byte, 16)), ErrBadPrefix, TypeBU},
		{"MN-ID of 0", rawMH(TypeBU, buFixed, []byte{8, 0}), ErrOptionLength, TypeBU},
		{"MN-HA of 5", rawMH(TypeBU, buFixed, []byte{9, 5, 1, 0, 0, 0, 1}), ErrOptionLength, TypeBU},
		{"BID of 6", rawMH(TypeBU, buFixed, []byte{35, 6, 0, 1, 0, 0, 0, 0}), ErrOptionLength, TypeBU},
		{"BID of 2", rawMH(TypeBU, buFixed, []byte{35, 2, 0, 1}), ErrOptionLength, TypeBU},
		{"option after BAD", rawMH(TypeBU, buFixed, []byte{5, 12}, make([]byte, 12), altcoa), ErrOptionOrder, TypeBU},
		{"unknown option after MN-HA", rawMH(TypeBU, buFixed, []byte{9, 17, 1, 0, 0, 0, 1}, make([]byte, 12), []byte{0x7f, 0}), ErrOptionOrder, TypeBU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Message{Sequence: 99, Options: Options{BIDs: []BID{{ID: 1}}}}
			err := ParseMessage(tc.b, &m, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseMessage(%x) = %v, want %v", tc.b, err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want.Error()) {
				t.Errorf("error %v is not a *ParseError naming %v", err, tc.want)
			}
			if m.Type != tc.typ {
				t.Errorf("m.Type %v, want %v", m.Type, tc.typ)
			}
		})
	}
}

func TestParseUnknownOptionsSkipped(t *testing.T) {
	// RFC 6275 6.2.1: unknown options are skipped and the rest processed.
	b := rawMH(TypeBU, buFixed,
		[]byte{0x7f, 3, 1, 2, 3},
		[]byte{35, 4, 0, 7, 9, 0},
		[]byte{200, 0},
		[]byte{4, 4, 0, 1, 0, 2})
	var m Message
	if err := ParseMessage(b, &m, nil); err != nil {
		t.Fatal(err)
	}
	if m.Options.Unknown != 2 {
		t.Errorf("Unknown = %d, want 2", m.Options.Unknown)
	}
	if len(m.Options.BIDs) != 1 || m.Options.BIDs[0] != (BID{ID: 7, PrioStatus: 9}) {
		t.Errorf("BIDs %+v", m.Options.BIDs)
	}
	if !m.Options.HasNonceIndices || m.Options.HomeNonceIndex != 1 || m.Options.CareofNonce != 2 {
		t.Errorf("nonce indices %+v", m.Options)
	}
	if m.Sequence != 7 || m.Flags != FlagA|FlagH || m.Lifetime != 100 {
		t.Errorf("fixed part %+v", m)
	}
}

func TestParseBIDErrors(t *testing.T) {
	bid := func(id uint16, flags byte, withCoA bool) []byte {
		o := []byte{35, 4, byte(id >> 8), byte(id), 50, flags}
		if withCoA {
			o[1] = 20
			o = append(o, addr16(tCoA1)...)
		}
		return o
	}
	for _, tc := range []struct {
		name string
		bad  []byte
		want error
	}{
		{"BID 0", bid(0, 0, false), ErrBIDZero},
		{"BID 0 with CoA", bid(0, 0x80, true), ErrBIDZero},
		{"C with length 4", bid(5, 0x80, false), ErrBIDLength},
		{"length 20 without C", bid(5, 0, true), ErrBIDLength},
		{"R without C", bid(5, 0x40, false), ErrRWithoutC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The bad sub-option is the second of three, and options after
			// it are still parsed.
			b := rawMH(TypeBU, buFixed, bid(1, 0x80, true), tc.bad, bid(2, 0x80, true), []byte{4, 4, 0, 1, 0, 2})
			var m Message
			err := ParseMessage(b, &m, nil)
			var be *BIDError
			if !errors.As(err, &be) || !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want a *BIDError with %v", err, tc.want)
			}
			if be.Index != 1 || be.BID != be16(tc.bad[2:]) {
				t.Errorf("BIDError %+v, want index 1", be)
			}
			bids := m.Options.BIDs
			if len(bids) != 3 || bids[1].Err != tc.want || bids[0].Err != nil || bids[2].Err != nil {
				t.Fatalf("BIDs %+v", bids)
			}
			if bids[0].ID != 1 || bids[0].CoA != tCoA1 || !bids[0].C || bids[2].ID != 2 || bids[1].PrioStatus != 50 {
				t.Errorf("BIDs %+v", bids)
			}
			if !m.Options.HasNonceIndices || m.Sequence != 7 {
				t.Errorf("rest of the message not parsed: %+v", m)
			}
		})
	}
	// Reserved flag bits are ignored on receipt.
	var m Message
	if err := ParseMessage(rawMH(TypeBU, buFixed, bid(9, 0x3f, false)), &m, nil); err != nil || m.Options.BIDs[0] != (BID{ID: 9, PrioStatus: 50}) {
		t.Errorf("reserved bits: %v %+v", err, m.Options.BIDs)
	}
}

func TestMarshalValidates(t *testing.T) {
	many := make([]BID, 100)
	for i := range many {
		many[i] = BID{ID: uint16(i + 1), C: true, CoA: tCoA1}
	}
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"BID 0", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 0}}}}, ErrBIDZero},
		{"C without CoA", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, C: true}}}}, ErrBIDLength},
		{"CoA without C", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, CoA: tCoA1}}}}, ErrBIDLength},
		{"R without C", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, R: true}}}}, ErrRWithoutC},
		{"IPv4 BID CoA", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, C: true, CoA: netip.MustParseAddr("192.0.2.1")}}}}, ErrInvalid},
		{"IPv4 alternate CoA", Message{Type: TypeBU, Options: Options{AltCoA: netip.MustParseAddr("192.0.2.1")}}, ErrInvalid},
		{"IPv4 prefix", Message{Type: TypeBU, Options: Options{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}, ErrInvalid},
		{"invalid prefix", Message{Type: TypeBU, Options: Options{Prefixes: []netip.Prefix{{}}}}, ErrInvalid},
		{"two auth options", Message{Type: TypeBU, Options: Options{HasAuthData: true, HasMNHAAuth: true}}, ErrInvalid},
		{"100 BIDs with CoA", Message{Type: TypeBU, Options: Options{BIDs: many}}, ErrTooLong},
		{"MN-ID of 255", Message{Type: TypeBU, Options: Options{HasMNID: true, MNID: make([]byte, 255)}}, ErrTooLong},
		{"unknown type", Message{Type: 9}, ErrUnknownType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := AppendMessage([]byte{1, 2, 3}, &tc.m, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if len(b) != 3 {
				t.Errorf("a failed AppendMessage left %d octets", len(b)-3)
			}
		})
	}
	// The longest message that fits: BIDs with CoA are 22 octets at 8n+2
	// (18, 42, ...), so the 84th ends at 18+83*24+22 = 2032 (Header Len
	// 253) and the 85th would end at 2056 > 2048.
	m := Message{Type: TypeBU, Options: Options{BIDs: many[:84]}}
	b, err := AppendMessage(nil, &m, nil)
	if err != nil || len(b) != 2032 || b[1] != 253 {
		t.Errorf("84 BIDs: %v, %d octets, Header Len %d", err, len(b), b[1])
	}
	m.Options.BIDs = many[:85]
	if _, err := AppendMessage(nil, &m, nil); !errors.Is(err, ErrTooLong) {
		t.Errorf("85 BIDs: %v", err)
	}
}

// TestMarshalBAEchoesIncompliantBIDs: a BA carries the BU's sub-options
// back with per-BID status, including ones the draft calls incompliant.
func TestMarshalBAEchoesIncompliantBIDs(t *testing.T) {
	m := Message{Type: TypeBA, Status: StatusDraftBulkRegFail, Options: Options{BIDs: []BID{
		{ID: 0, PrioStatus: 128},
		{ID: 1, PrioStatus: 128, C: true}, // its CoA was missing
		{ID: 2, PrioStatus: 128, R: true},
	}}}
	b, err := AppendMessage(nil, &m, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, b, Draft00)
	var got Message
	err = ParseMessage(b, &got, nil)
	var be *BIDError
	if !errors.As(err, &be) || be.Index != 0 || !errors.Is(err, ErrBIDZero) {
		t.Fatalf("err %v", err)
	}
	bids := got.Options.BIDs
	if len(bids) != 3 || bids[1].CoA != netip.IPv6Unspecified() || !bids[1].C || bids[2].Err != ErrRWithoutC {
		t.Errorf("BIDs %+v", bids)
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[MHType]string{TypeBU: "BU", TypeBE: "BE", 9: "MHType(9)"} {
		if v.String() != want {
			t.Errorf("%d: %q want %q", v, v.String(), want)
		}
	}
	for v, want := range map[Status]string{0: "accepted", 145: "bulk registration fail", 250: "status 250"} {
		if v.String() != want {
			t.Errorf("%d: %q want %q", v, v.String(), want)
		}
	}
	if !Status(1).Accepted() || Status(128).Accepted() {
		t.Error("Accepted")
	}
}

func TestSeq(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		less bool
	}{
		{1, 2, true},
		{2, 1, false},
		{5, 5, false},
		{65535, 0, true}, // wrap-around
		{0, 65535, false},
		{65000, 10, true},
		{10, 65000, false},
		{0, 32767, true},
		{0, 32769, false}, // more than half the space ahead: behind
		{32769, 0, true},
	} {
		if got := SeqLess(tc.a, tc.b); got != tc.less {
			t.Errorf("SeqLess(%d, %d) = %v", tc.a, tc.b, got)
		}
		if got := SeqAfter(tc.b, tc.a); got != tc.less {
			t.Errorf("SeqAfter(%d, %d) = %v", tc.b, tc.a, got)
		}
	}
}
