package proto

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPeerProfile(t *testing.T) {
	enc := func(m *Message, p *Profile) []byte {
		t.Helper()
		b, err := AppendMessage(nil, m, p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	drBulk := &Message{Type: TypeBU, Sequence: 1, Lifetime: 100, Flags: FlagA | FlagH, Options: Options{BIDs: []BID{
		{ID: 1, C: true, CoA: tCoA1}, {ID: 2, C: true, CoA: tCoA2}}}}
	drOne := &Message{Type: TypeBU, Sequence: 1, Lifetime: 100, Flags: FlagA | FlagH, Options: Options{BIDs: []BID{
		{ID: 1, C: true, CoA: tCoA1}}}}
	drRemove := &Message{Type: TypeBU, Sequence: 1, Lifetime: 100, Flags: FlagA | FlagH, Options: Options{BIDs: []BID{
		{ID: 3, C: true, R: true, CoA: tCoA3}}}}
	for _, c := range []struct {
		name string
		mine *Profile
		mh   []byte
		hoa  bool
		want string // the other profile, and a word of the evidence
		why  string
	}{
		{"RFC BA 4 to a draft-00 MN", Draft00, enc(rfcSamples()["BA-notcomplete"], RFC5648), false, "rfc5648", "MCOA NOTCOMPLETE"},
		{"RFC BA 168 to a draft-00 MN", Draft00, enc(&Message{Type: TypeBA, Status: 168}, RFC5648), false, "rfc5648", "BULK REGISTRATION PROHIBITED"},
		{"RFC per-BID 164 to a draft-00 MN", Draft00, enc(&Message{Type: TypeBA, Options: Options{BIDs: []BID{{ID: 1, PrioStatus: 164}}}}, RFC5648), false, "rfc5648", "MCOA MALFORMED"},
		{"RFC CoA form to a draft-00 HA", Draft00, enc(rfcSamples()["BU-v6"], RFC5648), false, "rfc5648", "without the C flag"},
		{"RFC IPv4 CoA to a draft-00 HA", Draft00, enc(&Message{Type: TypeBU, Options: Options{BIDs: []BID{{ID: 1, C: true, CoA: tCoA4}}}}, RFC5648), false, "rfc5648", "Length 8"},
		{"draft BA 145 to an RFC MN", RFC5648, enc(sampleMessages()["BA"], Draft00), false, "draft-00", "bulk registration fail"},
		{"draft bulk BU to an RFC HA", RFC5648, enc(drBulk, Draft00), false, "draft-00", "more than one"},
		{"draft one-BID bulk BU to an RFC HA", RFC5648, enc(drOne, Draft00), true, "draft-00", "not the home address"},
		{"draft one-BID bulk BU, home address unknown", RFC5648, enc(drOne, Draft00), false, "", ""},
		{"draft R to an RFC HA", RFC5648, enc(drRemove, Draft00), false, "draft-00", "0x40"},
		{"draft individual BU to an RFC HA (the same bytes)", RFC5648, enc(sampleMessages()["BU-individual"], Draft00), true, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hoa := tHoA
			if !c.hoa {
				hoa = netip.Addr{}
			}
			other, why := c.mine.PeerProfile(c.mh, hoa)
			if other != c.want || !strings.Contains(why, c.why) {
				t.Errorf("PeerProfile = %q, %q; want %q with %q", other, why, c.want, c.why)
			}
		})
	}
	// No false alarm on what a peer of the same profile sends.
	for name, m := range rfcSamples() {
		if o, why := RFC5648.PeerProfile(enc(m, RFC5648), tHoA); o != "" {
			t.Errorf("rfc5648 %s: %q %q", name, o, why)
		}
	}
	for name, m := range sampleMessages() {
		if o, why := Draft00.PeerProfile(enc(m, Draft00), tHoA); o != "" {
			t.Errorf("draft-00 %s: %q %q", name, o, why)
		}
	}
	// Any prefix of any message: no panic.
	b := enc(rfcSamples()["BU-bulk-O"], RFC5648)
	for i := range len(b) {
		Draft00.PeerProfile(b[:i], tHoA)
		RFC5648.PeerProfile(b[:i], tHoA)
	}
}
