package proto

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Tests of the rfc5648 profile: RFC 5648 "Multiple Care-of Addresses
// Registration", section 4.2 (the Binding Update's O flag), 4.3 (the
// Binding Identifier mobility option) and 4.4/11 (BA status codes).

var tCoA4 = netip.MustParseAddr("192.0.2.1")

// TestRFC5648ProfileTable checks the profile's codepoints against the
// numbers of RFC 5648, written here by hand from the RFC's text.
func TestRFC5648ProfileTable(t *testing.T) {
	p, err := ProfileByName("rfc5648", 0)
	if err != nil || p != RFC5648 {
		t.Fatalf("ProfileByName(rfc5648) = %v, %v", p, err)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"BID option type (4.3, 11)", int(p.BIDOptionType), 35},
		{"Length without CoA (4.3)", int(p.BIDLenNoCoA), 4},
		{"Length with IPv4 CoA (4.3)", int(p.BIDLenCoA4), 8},
		{"Length with IPv6 CoA (4.3)", int(p.BIDLenCoA), 20},
		{"H flag (4.3: first bit after Status)", int(p.FlagHome), 0x80},
		{"no C flag", int(p.FlagCoA), 0},
		{"no R flag", int(p.FlagRemove), 0},
		{"BU O flag (4.2: |A|H|L|K|M|R|P|F|T|O|)", int(p.BUFlagOverwrite), 0x0040},
		{"MCOA NOTCOMPLETE", int(p.StatusBulkRegFail), 4},
		{"MCOA RETURNHOME WO/NDP", int(p.StatusReturnHomeWoNDP), 5},
		{"MCOA MALFORMED", int(p.StatusMCoAMalformed), 164},
		{"MCOA MALFORMED per BID", int(p.BIDStatusIncompliant), 164},
		{"MCOA NON-MCOA BINDING EXISTS", int(p.StatusMCoAConflict), 165},
		{"MCOA PROHIBITED", int(p.StatusMCoAProhibited), 166},
		{"MCOA UNKNOWN COA", int(p.StatusMCoAUnknownCoA), 167},
		{"MCOA BULK REGISTRATION PROHIBITED", int(p.StatusBulkNotSupported), 168},
		{"MCOA SIMULTANEOUS HOME AND FOREIGN PROHIBITED", int(p.StatusSimHomeForeignProhibited), 169},
		{"BID status 0: the BA's status applies (4.3)", int(p.BIDStatusAccepting), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	// Draft-00 defines none of RFC 5648's additions.
	d := Draft00
	if d.FlagHome != 0 || d.BIDLenCoA4 != 0 || d.BUFlagOverwrite != 0 || d.StatusMCoAMalformed != 0 ||
		d.StatusReturnHomeWoNDP != 0 || d.StatusMCoAProhibited != 0 || d.StatusMCoAUnknownCoA != 0 || d.StatusSimHomeForeignProhibited != 0 {
		t.Errorf("draft-00 profile has RFC 5648 codepoints: %+v", *d)
	}
	// A custom BID type keeps the rest of the profile.
	p200, err := ProfileByName("rfc5648", 200)
	if err != nil || p200.BIDOptionType != 200 || p200.FlagHome != 0x80 || p200.BIDLenCoA4 != 8 || p200.Name != "rfc5648" {
		t.Errorf("rfc5648 with type 200: %+v %v", p200, err)
	}
	if p200.StatusString(164) != "MCOA MALFORMED" {
		t.Errorf("copied profile loses its status names: %q", p200.StatusString(164))
	}
	if RFC5648.BIDOptionType != 35 {
		t.Error("ProfileByName changed the shared profile")
	}
	if _, err := ProfileByName("rfc5648", uint8(OptNonceIndices)); err == nil {
		t.Error("a BID type colliding with Nonce Indices was accepted")
	}
}

func TestRFC5648StatusNames(t *testing.T) {
	for _, c := range []struct {
		p    *Profile
		s    Status
		want string
	}{
		// RFC 5648 section 11 (IANA) names.
		{RFC5648, 4, "MCOA NOTCOMPLETE"},
		{RFC5648, 5, "MCOA RETURNHOME WO/NDP"},
		{RFC5648, 164, "MCOA MALFORMED"},
		{RFC5648, 165, "MCOA NON-MCOA BINDING EXISTS"},
		{RFC5648, 166, "MCOA PROHIBITED"},
		{RFC5648, 167, "MCOA UNKNOWN COA"},
		{RFC5648, 168, "MCOA BULK REGISTRATION PROHIBITED"},
		{RFC5648, 169, "MCOA SIMULTANEOUS HOME AND FOREIGN PROHIBITED"},
		{RFC5648, 0, "accepted"},
		{RFC5648, 133, "not home agent for this mobile node"},
		// Draft-00's codes mean nothing under rfc5648, and the reverse.
		{RFC5648, 144, "status 144"},
		{RFC5648, 145, "status 145"},
		{RFC5648, 146, "status 146"},
		{Draft00, 145, "bulk registration fail"},
		{Draft00, 4, "status 4"},
		{Draft00, 164, "status 164"},
		{nil, 144, "MCoA conflict"},
		{RFC5648, 250, "status 250"},
	} {
		if got := c.p.StatusString(c.s); got != c.want {
			t.Errorf("%v.StatusString(%d) = %q, want %q", c.p, c.s, got, c.want)
		}
	}
	// Status.String knows every code of either profile.
	for s, want := range map[Status]string{4: "MCOA NOTCOMPLETE", 169: "MCOA SIMULTANEOUS HOME AND FOREIGN PROHIBITED",
		144: "MCoA conflict", 146: "bulk registration not supported", 3: "status 3", 170: "status 170"} {
		if s.String() != want {
			t.Errorf("Status(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
	if !StatusMCoANotComplete.Accepted() || !StatusMCoAReturnHomeWoNDP.Accepted() || StatusMCoAMalformed.Accepted() {
		t.Error("RFC 5648 4 and 5 are successful codes, 164 is not")
	}
}

// rfcSamples has the rfc5648 forms: BU without CoA, with an IPv6 CoA, with
// the H flag, with the O flag, a de-registration, BAs with per-BID status
// with and without CoA, and the other messages that carry the option (RFC
// 5648 4.3: BRR, CoTI, CoT).
func rfcSamples() map[string]*Message {
	return map[string]*Message{
		"BU-refresh": {Type: TypeBU, Sequence: 3, Lifetime: 100, Flags: FlagA | FlagH,
			Options: Options{BIDs: []BID{{ID: 1}}}},
		"BU-v6": {Type: TypeBU, Sequence: 4, Lifetime: 100, Flags: FlagA | FlagH,
			Options: Options{BIDs: []BID{{ID: 1, C: true, CoA: tCoA1}}}},
		"BU-bulk-O": {Type: TypeBU, Sequence: 0xfff0, Lifetime: 105, Flags: FlagA | FlagH | FlagK | FlagO,
			Options: Options{BIDs: []BID{
				{ID: 1, C: true, CoA: tCoA1},
				{ID: 2, C: true, CoA: tCoA2},
				{ID: 3},
			}}},
		"BU-home-H": {Type: TypeBU, Sequence: 5, Lifetime: 100, Flags: FlagA | FlagH,
			Options: Options{BIDs: []BID{{ID: 4, H: true, C: true, CoA: tHoA}, {ID: 1, C: true, CoA: tCoA1}}}},
		"BU-dereg": {Type: TypeBU, Sequence: 6, Lifetime: 0, Flags: FlagA | FlagH,
			Options: Options{BIDs: []BID{{ID: 2}, {ID: 3}}}},
		"BU-RR": {Type: TypeBU, Sequence: 77, Lifetime: 100, Flags: FlagA,
			Options: Options{HasNonceIndices: true, HomeNonceIndex: 3, CareofNonce: 4,
				BIDs:        []BID{{ID: 5, C: true, CoA: tCoA2}},
				HasAuthData: true, Authenticator: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}},
		"BA-notcomplete": {Type: TypeBA, Status: StatusMCoANotComplete, Flags: BAFlagK, Sequence: 0xfff0, Lifetime: 100,
			Options: Options{BIDs: []BID{
				{ID: 1, PrioStatus: 0, C: true, CoA: tCoA1},
				{ID: 2, PrioStatus: uint8(StatusMCoAMalformed)},
				{ID: 3, PrioStatus: uint8(StatusMCoAUnknownCoA)},
			}}},
		"BA-returnhome": {Type: TypeBA, Status: StatusMCoAReturnHomeWoNDP, Sequence: 5, Lifetime: 100,
			Options: Options{BIDs: []BID{{ID: 4, H: true}}, HasMNHAAuth: true, MNHASPI: 256}},
		"BA-prohibited": {Type: TypeBA, Status: StatusMCoAProhibited, Sequence: 9,
			Options: Options{BIDs: []BID{{ID: 1}}}},
		"BRR":  {Type: TypeBRR, Options: Options{BIDs: []BID{{ID: 2}, {ID: 3}}}},
		"CoTI": {Type: TypeCoTI, Cookie: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}, Options: Options{BIDs: []BID{{ID: 2}}}},
		"CoT": {Type: TypeCoT, NonceIndex: 7, Cookie: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}, KeygenToken: [8]byte{1},
			Options: Options{BIDs: []BID{{ID: 2, PrioStatus: uint8(StatusExpiredCareofNonce)}}}},
	}
}

func TestRFC5648RoundTrip(t *testing.T) {
	for name, m := range rfcSamples() {
		t.Run(name, func(t *testing.T) {
			b, err := AppendMessage(nil, m, RFC5648)
			if err != nil {
				t.Fatal(err)
			}
			checkLayout(t, b, RFC5648)
			var got Message
			if err := ParseMessage(b, &got, RFC5648); err != nil {
				t.Fatalf("ParseMessage(%x): %v", b, err)
			}
			if !sameMessage(m, &got) {
				t.Errorf("round trip:\n got %+v\nwant %+v\nwire %x", got, *m, b)
			}
			// No flag bit but H: the C of draft-00 (0x80) is H here, so a
			// BID with a CoA and without H has a zero flags octet.
			walkOptions(t, b, func(off int, typ OptionType, d []byte) {
				if typ != OptBIDDefault {
					return
				}
				x := findBIDByID(m.Options.BIDs, be16(d))
				want := byte(0)
				if x.H {
					want = 0x80
				}
				if d[3] != want {
					t.Errorf("BID %d flags %#x, want %#x", x.ID, d[3], want)
				}
				wantLen := 4
				if x.C {
					wantLen = 20
				}
				if len(d) != wantLen {
					t.Errorf("BID %d length %d, want %d", x.ID, len(d), wantLen)
				}
			})
		})
	}
}

func findBIDByID(bids []BID, id uint16) BID {
	for _, b := range bids {
		if b.ID == id {
			return b
		}
	}
	return BID{}
}

// TestRFC5648IPv4CoA: the IPv4 form (Length 8) round-trips and parses into
// a BID the receiver refuses: Err is ErrIPv4CoA, reported as a *BIDError
// after the whole message was parsed, the address kept for the log.
func TestRFC5648IPv4CoA(t *testing.T) {
	m := &Message{Type: TypeBU, Sequence: 8, Lifetime: 100, Flags: FlagA | FlagH | FlagO,
		Options: Options{BIDs: []BID{{ID: 1, C: true, CoA: tCoA1}, {ID: 7, C: true, CoA: tCoA4}, {ID: 2}},
			HasNonceIndices: true, HomeNonceIndex: 9, CareofNonce: 10}}
	b, err := AppendMessage(nil, m, RFC5648)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, b, RFC5648)
	var got Message
	err = ParseMessage(b, &got, RFC5648)
	var be *BIDError
	if !errors.As(err, &be) || !errors.Is(err, ErrIPv4CoA) || be.Index != 1 || be.BID != 7 {
		t.Fatalf("err %v (%T), want a *BIDError for BID 7 with ErrIPv4CoA", err, err)
	}
	x := got.Options.BIDs[1]
	if x.Err != ErrIPv4CoA || !x.C || x.CoA != tCoA4 || !x.CoA.Is4() {
		t.Errorf("BID %+v", x)
	}
	if got.Options.BIDs[0].Err != nil || got.Options.BIDs[2].Err != nil || !got.Options.HasNonceIndices || got.Flags&FlagO == 0 {
		t.Errorf("rest of the message: %+v", got)
	}
	got.Options.BIDs[1].Err = nil
	if !sameMessage(m, &got) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, *m)
	}
	// The same bytes under draft-00: Length 8 is malformed there.
	if err := ParseMessage(b, &got, Draft00); !errors.Is(err, ErrOptionLength) {
		t.Errorf("draft-00 parse of an IPv4 CoA: %v", err)
	}
}

// TestRFC5648Golden: the wire form of each BID option form, written by hand
// from RFC 5648 Figures 4 and 5 (and RFC 6275 6.1.7, 6.1.8 for the fixed
// parts), then parsed back.
func TestRFC5648Golden(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		want string
		bad  error // the BIDError the parse reports, if any
	}{
		{
			// Options at 12; 8n+2 = 18 for the CoA form: PadN(6), then
			// Type 35, Length 20, BID 3, Status 0, flags 0, CoA on 24.
			name: "BU with an IPv6 CoA",
			m: Message{Type: TypeBU, Sequence: 0x1234, Flags: FlagA | FlagH, Lifetime: 105,
				Options: Options{BIDs: []BID{{ID: 3, C: true, CoA: tCoA1}}}},
			want: `3b 04 05 00 0000 1234 c000 0069
			       01 04 00000000
			       23 14 0003 00 00 20010db8000100000000000000000100`,
		},
		{
			// O is bit 9 of the flags word (Figure 4): 0xc040. The IPv4
			// form also goes to 8n+2 (4.3): Length 8 at 18, ending at 28;
			// the form without CoA at 2n (28), ending at 34; PadN(6).
			name: "BU with O, an IPv4 CoA and a BID without CoA",
			m: Message{Type: TypeBU, Sequence: 7, Flags: FlagA | FlagH | FlagO, Lifetime: 100,
				Options: Options{BIDs: []BID{{ID: 1, C: true, CoA: tCoA4}, {ID: 2}}}},
			want: `3b 04 05 00 0000 0007 c040 0064
			       01 04 00000000
			       23 08 0001 00 00 c0000201
			       23 04 0002 00 00
			       01 04 00000000`,
			bad: ErrIPv4CoA,
		},
		{
			// H is the first bit after Status (0x80); the CoA is the home
			// address (5.6.3).
			name: "BU with H",
			m: Message{Type: TypeBU, Sequence: 9, Flags: FlagA | FlagH, Lifetime: 100,
				Options: Options{BIDs: []BID{{ID: 5, H: true, C: true, CoA: tHoA}}}},
			want: `3b 04 05 00 0000 0009 c000 0064
			       01 04 00000000
			       23 14 0005 00 80 20010db8aaaa00000000000000000100`,
		},
		{
			// De-registration of one BID (5.4): lifetime 0, no CoA.
			name: "de-registration BU",
			m: Message{Type: TypeBU, Sequence: 10, Flags: FlagA | FlagH, Lifetime: 0,
				Options: Options{BIDs: []BID{{ID: 3}}}},
			want: `3b 02 05 00 0000 000a c000 0000
			       23 04 0003 00 00
			       01 04 00000000`,
		},
		{
			// BA status 4 (MCOA NOTCOMPLETE), K; BID 1 status 0 without
			// CoA at 12; BID 2 status 164 with its CoA copied (6.2) at 18.
			name: "BA MCOA NOTCOMPLETE",
			m: Message{Type: TypeBA, Status: StatusMCoANotComplete, Flags: BAFlagK, Sequence: 0x1234, Lifetime: 100,
				Options: Options{BIDs: []BID{{ID: 1}, {ID: 2, PrioStatus: 164, C: true, CoA: tCoA2}}}},
			want: `3b 04 06 00 0000 04 80 1234 0064
			       23 04 0001 00 00
			       23 14 0002 a4 00 20010db8000200000000000000000100`,
		},
		{
			name: "BA MCOA BULK REGISTRATION PROHIBITED",
			m: Message{Type: TypeBA, Status: StatusMCoABulkRegProhibited, Sequence: 2,
				Options: Options{BIDs: []BID{{ID: 1}}}},
			want: `3b 02 06 00 0000 a8 00 0002 0000
			       23 04 0001 00 00
			       01 04 00000000`,
		},
		{
			// BRR options at 8 (6.4): the option at 8, PadN(0) to 16.
			name: "BRR",
			m:    Message{Type: TypeBRR, Options: Options{BIDs: []BID{{ID: 2}}}},
			want: `3b 01 00 00 0000 0000
			       23 04 0002 00 00
			       01 00`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.want)
			got, err := AppendMessage(nil, &tc.m, RFC5648)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
			var m Message
			err = ParseMessage(want, &m, RFC5648)
			if tc.bad != nil {
				if !errors.Is(err, tc.bad) {
					t.Fatalf("parse: %v, want %v", err, tc.bad)
				}
				for i := range m.Options.BIDs {
					m.Options.BIDs[i].Err = nil
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(&m, &tc.m) {
				t.Errorf("parsed %+v, want %+v", m, tc.m)
			}
		})
	}
}

func TestRFC5648ParseErrors(t *testing.T) {
	opt := func(l byte, id uint16, flags byte, rest ...byte) []byte {
		o := []byte{35, l, byte(id >> 8), byte(id), 0, flags}
		return append(o, rest...)
	}
	// Lengths other than 4, 8 and 20 (RFC 5648 4.3, 6.2: MCOA MALFORMED)
	// are the codec's malformed-option error.
	for _, l := range []int{0, 1, 2, 3, 5, 6, 7, 9, 12, 16, 19, 21, 36} {
		o := append([]byte{35, byte(l)}, make([]byte, l)...)
		if l >= 2 {
			o[3] = 1 // BID 1
		}
		b := rawMH(TypeBU, buFixed, o)
		var m Message
		err := ParseMessage(b, &m, RFC5648)
		var pe *ParseError
		if !errors.Is(err, ErrOptionLength) || !errors.As(err, &pe) {
			t.Errorf("length %d: %v, want a *ParseError with ErrOptionLength", l, err)
			continue
		}
		if b[pe.Offset] != 35 {
			t.Errorf("length %d: offset %d does not point at the option", l, pe.Offset)
		}
	}
	// BID 0 is reserved (4.3), with or without CoA.
	for _, o := range [][]byte{opt(4, 0, 0), opt(20, 0, 0, addr16(tCoA1)...), opt(8, 0, 0, 192, 0, 2, 1)} {
		var m Message
		if err := ParseMessage(rawMH(TypeBU, buFixed, o), &m, RFC5648); !errors.Is(err, ErrBIDZero) {
			t.Errorf("BID 0 (%x): %v", o, err)
		}
	}
	// Reserved bits are ignored (4.3: "SHOULD be ignored by the receiver"):
	// draft-00's R bit (0x40) is no remove here, and 0x80 is H.
	var m Message
	if err := ParseMessage(rawMH(TypeBU, buFixed, opt(4, 9, 0x7f)), &m, RFC5648); err != nil || m.Options.BIDs[0] != (BID{ID: 9}) {
		t.Errorf("reserved bits: %v %+v", err, m.Options.BIDs)
	}
	if err := ParseMessage(rawMH(TypeBU, buFixed, opt(20, 9, 0xc0, addr16(tCoA1)...)), &m, RFC5648); err != nil ||
		m.Options.BIDs[0] != (BID{ID: 9, C: true, H: true, CoA: tCoA1}) {
		t.Errorf("draft-00's C|R read as rfc5648: %v %+v", err, m.Options.BIDs)
	}
	// draft-00 reads the rfc5648 CoA form (no C bit) as incompliant.
	err := ParseMessage(rawMH(TypeBU, buFixed, opt(20, 9, 0, addr16(tCoA1)...)), &m, Draft00)
	if !errors.Is(err, ErrBIDLength) {
		t.Errorf("draft-00 parse of rfc5648's CoA form: %v", err)
	}
}

func TestRFC5648MarshalValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		prof *Profile
		want error
	}{
		{"R in rfc5648", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, C: true, R: true, CoA: tCoA1}}}}, RFC5648, ErrInvalid},
		{"R in an rfc5648 BA", Message{Type: TypeBA, Options: Options{BIDs: []BID{{ID: 1, R: true}}}}, RFC5648, ErrInvalid},
		{"H in draft-00", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, H: true}}}}, Draft00, ErrInvalid},
		{"H in a draft-00 BA", Message{Type: TypeBA, Options: Options{BIDs: []BID{{ID: 1, H: true}}}}, Draft00, ErrInvalid},
		{"IPv4 CoA in draft-00", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, C: true, CoA: tCoA4}}}}, Draft00, ErrInvalid},
		{"BID 0", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 0}}}}, RFC5648, ErrBIDZero},
		{"C without CoA", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, C: true}}}}, RFC5648, ErrBIDLength},
		{"CoA without C", Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, CoA: tCoA4}}}}, RFC5648, ErrBIDLength},
		{"IPv4 alternate CoA", Message{Type: TypeBU, Options: Options{AltCoA: tCoA4}}, RFC5648, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := AppendMessage([]byte{1}, &tc.m, tc.prof)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if len(b) != 1 {
				t.Errorf("a failed AppendMessage left %d octets", len(b)-1)
			}
		})
	}
	// A BA echoing C without its CoA: rfc5648 has no C bit, so the option
	// goes without Care-of Address field (Length 4), not with "::".
	m := Message{Type: TypeBA, Status: StatusMCoANotComplete, Options: Options{BIDs: []BID{{ID: 1, PrioStatus: 164, C: true}}}}
	b, err := AppendMessage(nil, &m, RFC5648)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "3b 02 06 00 0000 04 00 0000 0000 23 04 0001 a4 00 01 04 00000000"); !bytes.Equal(b, want) {
		t.Errorf("got  %x\nwant %x", b, want)
	}
	// The longest rfc5648 bulk BU with IPv4 CoAs: 10-octet options at
	// 8n+2, 16 octets apart (6 of PadN between them), so the 127th ends
	// at 18+126*16+10 = 2044, padded to 2048 (Header Len 255); the 128th
	// would end at 2060.
	many := make([]BID, 128)
	for i := range many {
		many[i] = BID{ID: uint16(i + 1), C: true, CoA: tCoA4}
	}
	m = Message{Type: TypeBU, Options: Options{BIDs: many[:127]}}
	b, err = AppendMessage(nil, &m, RFC5648)
	if err != nil || len(b) != 2048 {
		t.Errorf("127 IPv4 BIDs: %v, %d octets", err, len(b))
	}
	m.Options.BIDs = many[:128]
	if _, err := AppendMessage(nil, &m, RFC5648); !errors.Is(err, ErrTooLong) {
		t.Errorf("128 IPv4 BIDs: %v", err)
	}
}

// TestRFC5648DraftUnchanged: the same Message marshals differently under
// the two profiles exactly where RFC 5648 differs from the draft.
func TestRFC5648DraftUnchanged(t *testing.T) {
	m := Message{Type: TypeBU, Sequence: 1, Flags: FlagA | FlagH, Lifetime: 1,
		Options: Options{BIDs: []BID{{ID: 1, PrioStatus: 7, C: true, CoA: tCoA1}}}}
	d, err := AppendMessage(nil, &m, Draft00)
	if err != nil {
		t.Fatal(err)
	}
	r, err := AppendMessage(nil, &m, RFC5648)
	if err != nil {
		t.Fatal(err)
	}
	var diff []int
	for i := range d {
		if d[i] != r[i] {
			diff = append(diff, i)
		}
	}
	// Only the flags octet (offset 18+5): C (0x80) in draft-00, 0 here.
	if len(d) != len(r) || len(diff) != 1 || diff[0] != 23 || d[23] != 0x80 || r[23] != 0 {
		t.Errorf("draft-00 %x\nrfc5648  %x\ndiffer at %v", d, r, diff)
	}
	if !strings.Contains(RFC5648.StatusString(4), "NOTCOMPLETE") {
		t.Error(RFC5648.StatusString(4))
	}
}
