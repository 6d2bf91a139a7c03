package proto

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The seed corpus lives in testdata/fuzz/<FuzzName>/ and is generated from
// valid messages and packets by TestWriteFuzzSeeds (MCOA_WRITE_FUZZ_SEEDS=1).

func seedMessages(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	msgs := sampleMessages()
	msgs["BU-8BIDs"] = bu8()
	for name, m := range msgs {
		b, err := AppendMessage(nil, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	for name, m := range rfcSamples() {
		b, err := AppendMessage(nil, m, RFC5648)
		if err != nil {
			t.Fatal(err)
		}
		out["rfc5648-"+name] = b
	}
	v4 := &Message{Type: TypeBU, Sequence: 8, Lifetime: 100, Flags: FlagA | FlagH | FlagO,
		Options: Options{BIDs: []BID{{ID: 7, C: true, CoA: tCoA4}, {ID: 4, H: true, C: true, CoA: tHoA}}}}
	b, err := AppendMessage(nil, v4, RFC5648)
	if err != nil {
		t.Fatal(err)
	}
	out["rfc5648-BU-IPv4"] = b
	return out
}

// fuzzProfiles are the profiles every fuzz target runs each input under.
var fuzzProfiles = []*Profile{Draft00, RFC5648}

func seedPackets(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	bad := &Packet{Src: tCoA1, Dst: tCN, HomeAddress: tHoA, MH: *sampleMessages()["BU-RR"]}
	mnha := buPacket()
	mnha.MH.Options.HasMNHAAuth = true
	rfcBU := &Packet{Src: tCoA1, Dst: tHA, HomeAddress: tHoA, MH: *rfcSamples()["BU-home-H"]}
	rfcBA := &Packet{Src: tHA, Dst: tCoA1, RoutingHome: tHoA, MH: *rfcSamples()["BA-notcomplete"]}
	for name, p := range map[string]*Packet{
		"BU-HAO": buPacket(), "BA-RH2": baPacket(), "BU-BAD": bad, "BU-MNHA": mnha,
		"BE":         {Src: tCN, Dst: tCoA1, MH: *sampleMessages()["BE"]},
		"rfc5648-BU": rfcBU,
		"rfc5648-BA": rfcBA,
	} {
		var sign Signer
		if p.MH.Options.HasMNHAAuth {
			sign = NewMNHA([]byte("key")).Signer(tCoA1, tHoA)
		}
		var prof *Profile
		if strings.HasPrefix(name, "rfc5648-") {
			prof = RFC5648
		}
		b, err := AppendPacket(nil, p, prof, sign)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func addSeeds(f *testing.F, seeds map[string][]byte) {
	for _, b := range seeds {
		f.Add(b)
	}
}

// FuzzParseMessage: ParseMessage never panics, keeps its promises about
// errors, and a message it accepts survives append and parse unchanged,
// under each profile.
func FuzzParseMessage(f *testing.F) {
	addSeeds(f, seedMessages(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, prof := range fuzzProfiles {
			fuzzParseMessage(t, b, prof)
		}
	})
}

func fuzzParseMessage(t *testing.T, b []byte, prof *Profile) {
	t.Helper()
	prof.PeerProfile(b, tHoA) // never panics, whatever the bytes
	var m Message
	err := ParseMessage(b, &m, prof)
	var be *BIDError
	switch {
	case err == nil:
	case errors.As(err, &be):
		if be.Index >= len(m.Options.BIDs) || m.Options.BIDs[be.Index].Err != be.Err || be.Err == nil {
			t.Fatalf("BIDError %+v with BIDs %+v", be, m.Options.BIDs)
		}
		return
	default:
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is %T", err, err)
		}
		if len(b) > 2 && m.Type != MHType(b[2]) {
			t.Fatalf("type %v after error, input says %d", m.Type, b[2])
		}
		return
	}
	if len(b)%8 != 0 || (int(b[1])+1)*8 != len(b) {
		t.Fatalf("accepted length %d with Header Len %d", len(b), b[1])
	}
	for _, x := range m.Options.BIDs {
		if x.Err != nil {
			t.Fatalf("BID error %v not reported", x.Err)
		}
		if (x.R && prof.FlagRemove == 0) || (x.H && prof.FlagHome == 0) || (x.CoA.Is4() && prof.BIDLenCoA4 == 0) {
			t.Fatalf("%s: BID %+v has what the profile does not define", prof.Name, x)
		}
	}
	checkAuthOffset(t, b, &m)
	out, err := AppendMessage(nil, &m, prof)
	if errors.Is(err, ErrTooLong) {
		return // our alignment padding may need more room than the input used
	}
	if err != nil {
		t.Fatalf("%s: AppendMessage of a parsed message: %v", prof.Name, err)
	}
	checkLayout(t, out, prof)
	var m2 Message
	if err := ParseMessage(out, &m2, prof); err != nil {
		t.Fatalf("%s: reparse: %v", prof.Name, err)
	}
	if !sameMessage(&m, &m2) {
		t.Fatalf("%s: round trip:\n in %+v\nout %+v", prof.Name, m, m2)
	}
}

func checkAuthOffset(t *testing.T, b []byte, m *Message) {
	t.Helper()
	switch o := m.AuthOffset; {
	case o < 0:
		if m.Options.HasAuthData || m.Options.HasMNHAAuth {
			t.Fatal("authentication option without AuthOffset")
		}
	case m.Options.HasAuthData:
		if b[o-2] != byte(OptAuthData) || o+12 > len(b) {
			t.Fatalf("AuthOffset %d", o)
		}
	case m.Options.HasMNHAAuth:
		if b[o-7] != byte(OptMNHAAuth) || o+len(m.Options.MNHAAuthData) > len(b) {
			t.Fatalf("AuthOffset %d", o)
		}
	default:
		t.Fatalf("AuthOffset %d without an authentication option", o)
	}
}

// FuzzParsePacket: ParsePacket never panics, and an accepted packet
// survives AppendPacket and ParsePacket with the same values.
func FuzzParsePacket(f *testing.F) {
	addSeeds(f, seedPackets(f))
	x := NewMNHA([]byte("key"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, prof := range fuzzProfiles {
			fuzzParsePacket(t, b, prof, x)
		}
	})
}

func fuzzParsePacket(t *testing.T, b []byte, prof *Profile, x *MNHA) {
	t.Helper()
	var p Packet
	err := ParsePacket(b, &p, prof)
	if errors.Is(err, ErrChecksum) {
		// Mutations rarely keep the checksum right: fix it and go
		// on, to reach the message parser through the headers.
		end := IPv6HeaderLen + int(be16(b[4:]))
		b = append([]byte{}, b[:end]...)
		SetChecksum(b[end-len(p.MHBytes):], p.ChecksumSrc(), p.ChecksumDst())
		err = ParsePacket(b, &p, prof)
		if errors.Is(err, ErrChecksum) {
			t.Fatal("SetChecksum's result does not verify")
		}
	}
	// Whatever the offset says, Verify must not panic.
	x.Verify(p.MHBytes, p.MH.AuthOffset, tCoA1, tHoA)
	if err != nil {
		var pe *ParseError
		var be *BIDError
		if !errors.As(err, &pe) && !errors.As(err, &be) {
			t.Fatalf("error %v is %T", err, err)
		}
		return
	}
	if !VerifyChecksum(p.MHBytes, p.ChecksumSrc(), p.ChecksumDst()) {
		t.Fatal("accepted a bad checksum")
	}
	out, err := AppendPacket(nil, &p, prof, nil)
	if errors.Is(err, ErrTooLong) {
		return
	}
	if err != nil {
		t.Fatalf("%s: AppendPacket of a parsed packet: %v", prof.Name, err)
	}
	var q Packet
	if err := ParsePacket(out, &q, prof); err != nil {
		t.Fatalf("%s: reparse: %v", prof.Name, err)
	}
	hl := p.HopLimit
	if hl == 0 {
		hl = DefaultHopLimit
	}
	if q.Src != p.Src || q.Dst != p.Dst || q.HopLimit != hl || q.HomeAddress != p.HomeAddress || q.RoutingHome != p.RoutingHome {
		t.Fatalf("addresses %+v -> %+v", p, q)
	}
	if !sameMessage(&p.MH, &q.MH) {
		t.Fatalf("%s: round trip:\n in %+v\nout %+v", prof.Name, p.MH, q.MH)
	}
}

// msgFromOps builds a message from fuzz input: the fixed part from the
// scalars, then one option per 3 octets of ops.
//
// Under a profile with an H flag and IPv4 CoAs (rfc5648), bit 0x40 of a
// BID's op sets H and bit 0x80 makes its CoA an IPv4 address; R is not
// generated (marshalling it is ErrInvalid, TestRFC5648MarshalValidates).
// Under draft-00 the ops mean what they always did.
func msgFromOps(typ uint8, seq, flags uint16, ops []byte, prof *Profile) *Message {
	m := &Message{Type: MHType(typ % 8), Sequence: seq, Lifetime: seq ^ 0x5a5a, Flags: flags, Status: Status(flags >> 8)}
	switch m.Type {
	case TypeBA:
		m.Flags &= 0xff
	case TypeBU:
		m.Status = 0
	default:
		m.Sequence, m.Lifetime, m.Flags = 0, 0, 0
	}
	switch m.Type {
	case TypeHoTI, TypeCoTI, TypeHoT, TypeCoT:
		m.Cookie = [8]byte{byte(seq), byte(flags), 1, 2, 3, 4, 5, typ}
		if m.Type >= TypeHoT {
			m.NonceIndex = seq
			m.KeygenToken = [8]byte{7: byte(seq >> 8)}
		}
	case TypeBE:
		m.BEHomeAddress = tHoA
	case TypeBRR, TypeBU, TypeBA:
	}
	if m.Type != TypeBE && m.Type != TypeBA {
		m.Status = 0
	}
	addr := func(x, y byte) netip.Addr {
		a := tCoA1.As16()
		a[14], a[15] = x, y
		return netip.AddrFrom16(a)
	}
	o := &m.Options
	for ; len(ops) >= 3; ops = ops[3:] {
		op, x, y := ops[0], ops[1], ops[2]
		switch op % 10 {
		case 0, 1:
			c := op&0x10 != 0
			bid := BID{ID: uint16(x)<<8 | uint16(y), PrioStatus: op, C: c, R: op&0x20 != 0}
			if c {
				bid.CoA = addr(x, y)
			}
			if prof.FlagRemove == 0 {
				bid.R = false
			}
			if prof.FlagHome != 0 {
				bid.H = op&0x40 != 0
			}
			if c && prof.BIDLenCoA4 != 0 && op&0x80 != 0 {
				bid.CoA = netip.AddrFrom4([4]byte{192, 0, x, y})
			}
			o.BIDs = append(o.BIDs, bid)
		case 2:
			o.HasRefreshAdvice, o.RefreshInterval = true, uint16(x)<<8|uint16(y)
		case 3:
			o.AltCoA = addr(x, y)
		case 4:
			o.HasNonceIndices, o.HomeNonceIndex, o.CareofNonce = true, uint16(x), uint16(y)
		case 5:
			o.Prefixes = append(o.Prefixes, netip.PrefixFrom(addr(x, 0), int(y%129)))
		case 6:
			o.HasMNID, o.MNIDSubtype = true, x
			o.MNID = append(o.MNID, make([]byte, y%40)...)
		case 7:
			o.HasAuthData = true
			o.Authenticator = [12]byte{x, y}
		case 8:
			o.HasMNHAAuth, o.MNHASubtype, o.MNHASPI = true, x, uint32(y)<<24|uint32(op)
			if y%3 == 0 {
				o.MNHAAuthData = make([]byte, 1+y%20)
			}
		case 9:
			o.HasMNHAAuth, o.MNHASubtype, o.MNHASPI, o.MNHAAuthData = false, 0, 0, nil
		}
	}
	return m
}

// FuzzAppendMessage: AppendMessage of any message either fails with a
// validation error or produces a well-formed MH that parses back to the
// same values.
func FuzzAppendMessage(f *testing.F) {
	f.Add(uint8(TypeBU), uint16(1), FlagA|FlagH, []byte{0x10, 0, 1, 0x10, 0, 2, 5, 1, 64, 6, 1, 10, 8, 1, 2})
	f.Add(uint8(TypeBA), uint16(0xffff), uint16(0x91c0), []byte{0, 0, 0, 0x30, 0, 1, 2, 0, 90, 3, 1, 1})
	f.Add(uint8(TypeBU), uint16(9), FlagA, []byte{4, 0, 1, 3, 1, 2, 7, 1, 2})
	f.Add(uint8(TypeBE), uint16(9), uint16(0x0200), []byte{})
	f.Add(uint8(TypeBU), uint16(5), FlagA|FlagH|FlagO, []byte{0x50, 0, 1, 0x90, 0, 2, 1, 0, 3})
	f.Fuzz(func(t *testing.T, typ uint8, seq, flags uint16, ops []byte) {
		for _, prof := range fuzzProfiles {
			fuzzAppendMessage(t, msgFromOps(typ, seq, flags, ops, prof), prof)
		}
	})
}

func fuzzAppendMessage(t *testing.T, m *Message, prof *Profile) {
	t.Helper()
	b, err := AppendMessage(nil, m, prof)
	if err != nil {
		for _, e := range []error{ErrBIDZero, ErrBIDLength, ErrRWithoutC, ErrInvalid, ErrTooLong} {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("%s: unexpected error %v", prof.Name, err)
	}
	checkLayout(t, b, prof)
	var got Message
	err = ParseMessage(b, &got, prof)
	var be *BIDError
	if err != nil && !(errors.As(err, &be) && (m.Type == TypeBA || errors.Is(err, ErrIPv4CoA))) {
		t.Fatalf("%s: ParseMessage(%x): %v", prof.Name, b, err)
	}
	for i := range got.Options.BIDs {
		got.Options.BIDs[i].Err = nil // a BA may echo incompliant sub-options
	}
	if !sameMessage(m, &got) {
		t.Fatalf("%s: round trip:\n in %+v\nout %+v\nwire %x", prof.Name, *m, got, b)
	}
	if got.AuthOffset != m.AuthOffset {
		t.Fatalf("%s: AuthOffset %d, marshalled %d", prof.Name, got.AuthOffset, m.AuthOffset)
	}
}

// TestWriteFuzzSeeds writes the committed seed corpus (run with
// MCOA_WRITE_FUZZ_SEEDS=1); otherwise it checks that the corpus is there.
func TestWriteFuzzSeeds(t *testing.T) {
	sets := map[string]map[string][]byte{
		"FuzzParseMessage": seedMessages(t),
		"FuzzParsePacket":  seedPackets(t),
	}
	// FuzzAppendMessage takes (type, sequence, flags, ops).
	appendSeed := func(typ uint8, seq, flags uint16, ops []byte) []byte {
		return fmt.Appendf(nil, "uint8(%d)\nuint16(%d)\nuint16(%d)\n[]byte(%q)", typ, seq, flags, ops)
	}
	sets["FuzzAppendMessage"] = map[string][]byte{
		"bulk-BU":  appendSeed(uint8(TypeBU), 7, FlagA|FlagH, []byte{0x10, 0, 1, 0x10, 0, 2, 0x30, 0, 3, 5, 1, 64, 6, 1, 10, 8, 1, 3}),
		"BA-echo":  appendSeed(uint8(TypeBA), 7, 0x9180, []byte{0, 0, 0, 0x10, 0, 1, 0x20, 0, 2, 2, 0, 90}),
		"RR-BU":    appendSeed(uint8(TypeBU), 8, FlagA, []byte{4, 0, 1, 3, 1, 2, 7, 1, 2}),
		"HoT":      appendSeed(uint8(TypeHoT), 0x1234, 0, nil),
		"BE":       appendSeed(uint8(TypeBE), 0, 0x0200, nil),
		"too-long": appendSeed(uint8(TypeBU), 1, 0, bytes.Repeat([]byte{6, 1, 200}, 20)),
		// rfc5648: H (0x40), an IPv4 CoA (0x80 with C), a BID without CoA.
		"rfc5648-H-IPv4": appendSeed(uint8(TypeBU), 5, FlagA|FlagH|FlagO, []byte{0x50, 0, 1, 0x90, 0, 2, 1, 0, 3}),
	}
	for target, seeds := range sets {
		dir := filepath.Join("testdata", "fuzz", target)
		names := make([]string, 0, len(seeds))
		for n := range seeds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			path := filepath.Join(dir, "seed-"+n)
			if os.Getenv("MCOA_WRITE_FUZZ_SEEDS") != "1" {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("seed corpus file missing (MCOA_WRITE_FUZZ_SEEDS=1 writes it): %v", err)
				}
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seeds[n])
			if target == "FuzzAppendMessage" {
				data = "go test fuzz v1\n" + string(seeds[n]) + "\n"
			}
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
