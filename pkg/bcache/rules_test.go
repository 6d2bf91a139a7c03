package bcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/mcoad/mcoad/pkg/proto"
)

const (
	st0   = proto.StatusAccepted
	st128 = proto.StatusUnspecified
	st130 = proto.StatusInsufficientResources
	st131 = proto.StatusHomeRegNotSupported
	st132 = proto.StatusNotHomeSubnet
	st133 = proto.StatusNotHomeAgentForMN
	st135 = proto.StatusSequenceOutOfWindow
	st139 = proto.StatusRegTypeChangeDisallowed
	st144 = proto.StatusDraftMCoAConflict
	st145 = proto.StatusDraftBulkRegFail
	st146 = proto.StatusDraftBulkRegNotSupported
)

type ruleCase struct {
	name     string
	cfg      func(*Config)
	existing []buSpec
	in       buSpec
	// want
	dropped DropReason
	status  proto.Status
	noBA    bool    // no BA expected
	bidSt   []uint8 // per sub-option statuses in the BA, in order
	seq     int     // BA sequence; -1: the BU's
	life    int     // BA lifetime in units; -1: don't check
	after   []bind  // hoa1's bindings afterwards, by BID
}

func cnRole(c *Config) { c.Role = RoleCN }

func ruleCases() []ruleCase {
	plain := buSpec{}
	bulk123 := buSpec{bids: []proto.BID{bulk(1, coa1), bulk(2, coa2), bulk(3, coa3)}}
	bulk12 := buSpec{bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}}
	return []ruleCase{
		// BUs without BID: RFC 6275 plus draft 6.2's first paragraph.
		{name: "plain registration", in: plain, status: st0, seq: -1, life: 100,
			after: []bind{{0, coa1, 0}}},
		{name: "plain without A flag is not acknowledged", in: buSpec{noA: true}, status: st0, noBA: true,
			after: []bind{{0, coa1, 0}}},
		{name: "plain refresh updates the CoA", existing: []buSpec{plain}, in: buSpec{src: coa2}, status: st0, seq: -1, life: 100,
			after: []bind{{0, coa2, 0}}},
		{name: "plain replaces every BID binding", existing: []buSpec{bulk123}, in: buSpec{src: coa2}, status: st0, seq: -1, life: 100,
			after: []bind{{0, coa2, 0}}},
		{name: "plain with alternate CoA", in: buSpec{alt: coa3}, status: st0, seq: -1, life: 100,
			after: []bind{{0, coa3, 0}}},
		{name: "plain alternate CoA not routable", in: buSpec{alt: netip.MustParseAddr("fe80::1")}, status: st128, seq: -1, life: 0},
		{name: "plain rejection without A flag is answered", in: buSpec{noA: true, hoa: netip.MustParseAddr("2001:db8:bbbb::1")},
			status: st132, seq: -1, life: 0},
		{name: "plain lifetime capped to MaxLifetime", in: buSpec{life: 1000}, status: st0, seq: -1, life: 105,
			after: []bind{{0, coa1, 0}}},
		{name: "plain de-registration deletes all bindings", existing: []buSpec{bulk123}, in: buSpec{dereg: true}, status: st0, seq: -1, life: 0},
		{name: "plain de-registration without binding: 133", in: buSpec{dereg: true}, status: st133, seq: -1, life: 0},
		{name: "plain from the home address is a de-registration", existing: []buSpec{plain},
			in: buSpec{src: hoa1, noHAO: true}, status: st0, seq: -1, life: 0},

		// BUs with BID sub-options: draft 6.2 and 6.3.
		{name: "individual BID registration, priority kept", in: buSpec{bids: []proto.BID{bid(1, 5)}},
			status: st0, bidSt: []uint8{0}, seq: -1, life: 100, after: []bind{{1, coa1, 5}}},
		{name: "BA sent without A flag when a BID is present", in: buSpec{noA: true, bids: []proto.BID{bid(1, 0)}},
			status: st0, bidSt: []uint8{0}, seq: -1, life: 100, after: []bind{{1, coa1, 0}}},
		{name: "BID with alternate CoA takes the alternate", in: buSpec{alt: coa3, bids: []proto.BID{bid(1, 0)}},
			status: st0, bidSt: []uint8{0}, seq: -1, life: 100, after: []bind{{1, coa3, 0}}},
		{name: "new BID adds a binding", existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}},
			in: buSpec{src: coa2, bids: []proto.BID{bid(2, 3)}}, status: st0, bidSt: []uint8{0}, seq: -1, life: 100,
			after: []bind{{1, coa1, 0}, {2, coa2, 3}}},
		{name: "known BID is updated", existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}, {src: coa2, bids: []proto.BID{bid(2, 0)}}},
			in: buSpec{src: coa3, bids: []proto.BID{bid(1, 7)}}, status: st0, bidSt: []uint8{0}, seq: -1, life: 100,
			after: []bind{{1, coa3, 7}, {2, coa2, 0}}},
		{name: "BID replaces the regular binding: 144", existing: []buSpec{plain},
			in: buSpec{src: coa2, bids: []proto.BID{bid(4, 0)}}, status: st144, bidSt: []uint8{0}, seq: -1, life: 100,
			after: []bind{{4, coa2, 0}}},
		{name: "bulk registration takes CoAs from the sub-options", in: bulk123,
			status: st0, bidSt: []uint8{0, 0, 0}, seq: -1, life: 100,
			after: []bind{{1, coa1, 0}, {2, coa2, 0}, {3, coa3, 0}}},
		{name: "bulk with one C flag without CoA: 128 on it, 145, others applied",
			in: buSpec{bids: []proto.BID{bulk(1, coa1), {ID: 2, C: true, Err: proto.ErrBIDLength}},
				parseErr: &proto.BIDError{Index: 1, BID: 2, Err: proto.ErrBIDLength}},
			status: st145, bidSt: []uint8{0, 128}, seq: -1, life: 100, after: []bind{{1, coa1, 0}}},
		{name: "C flag without CoA even when the parser did not flag it",
			in:     buSpec{bids: []proto.BID{{ID: 2, C: true}}},
			status: st145, bidSt: []uint8{128}, seq: -1, life: 0},
		{name: "R without C: 128 and 145, nothing removed", existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{bids: []proto.BID{{ID: 1, R: true, Err: proto.ErrRWithoutC}}, parseErr: &proto.BIDError{BID: 1, Err: proto.ErrRWithoutC}},
			status: st145, bidSt: []uint8{128}, seq: -1, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "R without C not flagged by the parser", existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{bids: []proto.BID{{ID: 1, R: true}}},
			status: st145, bidSt: []uint8{128}, seq: -1, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "R removes its BID while the others are updated", existing: []buSpec{bulk12},
			in:     buSpec{bids: []proto.BID{bulk(1, coa3), remove(2, coa2)}},
			status: st0, bidSt: []uint8{0, 0}, seq: -1, life: 100, after: []bind{{1, coa3, 0}}},
		{name: "R on an unknown BID is accepted", existing: []buSpec{bulk12},
			in:     buSpec{bids: []proto.BID{bulk(1, coa1), remove(9, coa2)}},
			status: st0, bidSt: []uint8{0, 0}, seq: -1, life: 100, after: []bind{{1, coa1, 0}, {2, coa2, 0}}},
		{name: "lifetime 0 with BID removes only that BID", existing: []buSpec{bulk12},
			in:     buSpec{dereg: true, src: coa2, bids: []proto.BID{bid(2, 0)}},
			status: st0, bidSt: []uint8{0}, seq: -1, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "lifetime 0 for the last BID forgets the home address", existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{dereg: true, bids: []proto.BID{bid(1, 0)}},
			status: st0, bidSt: []uint8{0}, seq: -1, life: 0},
		{name: "lifetime 0 for an unknown BID: 133", existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{dereg: true, bids: []proto.BID{bid(5, 0)}},
			status: st133, bidSt: []uint8{133}, seq: -1, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "lifetime 0 with BID and no binding at all: 133",
			in:     buSpec{dereg: true, bids: []proto.BID{bid(5, 0)}},
			status: st133, bidSt: []uint8{133}, seq: -1, life: 0},
		{name: "lifetime 0 with BID does not touch the regular binding", existing: []buSpec{plain},
			in:     buSpec{dereg: true, bids: []proto.BID{bid(5, 0)}},
			status: st133, bidSt: []uint8{133}, seq: -1, life: 0, after: []bind{{0, coa1, 0}}},
		{name: "bulk de-registration", existing: []buSpec{bulk123},
			in:     buSpec{dereg: true, bids: []proto.BID{bulk(1, coa1), bulk(3, coa3)}},
			status: st0, bidSt: []uint8{0, 0}, seq: -1, life: 0, after: []bind{{2, coa2, 0}}},
		{name: "bulk de-registration with an unknown BID: 145, known one removed", existing: []buSpec{bulk12},
			in:     buSpec{dereg: true, bids: []proto.BID{bulk(1, coa1), bulk(7, coa3)}},
			status: st145, bidSt: []uint8{0, 133}, seq: -1, life: 0, after: []bind{{2, coa2, 0}}},
		{name: "sub-option CoA equal to the home address removes that BID", existing: []buSpec{bulk12},
			in:     buSpec{bids: []proto.BID{bulk(1, coa3), bulk(2, hoa1)}},
			status: st0, bidSt: []uint8{0, 0}, seq: -1, life: 100, after: []bind{{1, coa3, 0}}},
		{name: "bulk when bulk registration is off: 146", cfg: func(c *Config) { c.BulkRegistration = false },
			existing: []buSpec{{bids: []proto.BID{bid(1, 0)}}},
			in:       bulk12, status: st146, bidSt: []uint8{146, 146}, seq: -1, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "individual BID when bulk registration is off", cfg: func(c *Config) { c.BulkRegistration = false },
			in: buSpec{bids: []proto.BID{bid(1, 0)}}, status: st0, bidSt: []uint8{0}, seq: -1, life: 100, after: []bind{{1, coa1, 0}}},
		{name: "BID 0 in a sub-option: 128 and 145",
			in:     buSpec{bids: []proto.BID{{ID: 0, Err: proto.ErrBIDZero}}, parseErr: &proto.BIDError{Err: proto.ErrBIDZero}},
			status: st145, bidSt: []uint8{128}, seq: -1, life: 0},
		{name: "BID 0 not flagged by the parser, next to a good one",
			in:     buSpec{bids: []proto.BID{bulk(0, coa2), bulk(1, coa1)}},
			status: st145, bidSt: []uint8{128, 0}, seq: -1, life: 100, after: []bind{{1, coa1, 0}}},
		{name: "several sub-options without C: each incompliant",
			in:     buSpec{bids: []proto.BID{bid(1, 0), bid(2, 0)}},
			status: st145, bidSt: []uint8{128, 128}, seq: -1, life: 0},
		{name: "same BID twice in a bulk BU: the second is incompliant",
			in:     buSpec{bids: []proto.BID{bulk(1, coa1), bulk(1, coa2)}},
			status: st145, bidSt: []uint8{0, 128}, seq: -1, life: 100, after: []bind{{1, coa1, 0}}},
		{name: "bulk CoA not routable: 128 on it",
			in:     buSpec{bids: []proto.BID{bulk(1, coa1), bulk(2, netip.MustParseAddr("ff02::1"))}},
			status: st145, bidSt: []uint8{0, 128}, seq: -1, life: 100, after: []bind{{1, coa1, 0}}},
		{name: "per home address limit: 130", cfg: func(c *Config) { c.MaxBindingsPerHoA = 2 },
			in:     bulk123,
			status: st145, bidSt: []uint8{0, 0, 130}, seq: -1, life: 100, after: []bind{{1, coa1, 0}, {2, coa2, 0}}},
		{name: "cache full: 130", cfg: func(c *Config) { c.MaxBindings = 1 }, existing: []buSpec{{hoa: hoa2}},
			in:     buSpec{bids: []proto.BID{bid(1, 0)}},
			status: st130, bidSt: []uint8{130}, seq: -1, life: 0},

		// RFC 6275 9.5.1 validation.
		{name: "sequence equal to the last: 135 with the last number", existing: []buSpec{{seq: 500, bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{seq: 500, src: coa2, bids: []proto.BID{bid(1, 0)}},
			status: st135, bidSt: []uint8{135}, seq: 500, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "sequence lower than the last: 135", existing: []buSpec{{seq: 500}},
			in:     buSpec{seq: 499, src: coa2},
			status: st135, seq: 500, life: 0, after: []bind{{0, coa1, 0}}},
		{name: "sequence wraps around", existing: []buSpec{{seq: 65535}},
			in:     buSpec{seq: 2, src: coa2},
			status: st0, seq: 2, life: 100, after: []bind{{0, coa2, 0}}},
		{name: "sequence half the space ahead is behind (TAHI HA_2_6_6)", existing: []buSpec{{seq: 15}},
			in:     buSpec{seq: 32783, src: coa2},
			status: st135, seq: 15, life: 0, after: []bind{{0, coa1, 0}}},
		{name: "sequence just under half the space ahead is accepted", existing: []buSpec{{seq: 15}},
			in:     buSpec{seq: 32782, src: coa2},
			status: st0, seq: 32782, life: 100, after: []bind{{0, coa2, 0}}},
		{name: "sequence shared by all BIDs of the home address", existing: []buSpec{{seq: 40, bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{seq: 40, src: coa2, bids: []proto.BID{bid(2, 0)}},
			status: st135, bidSt: []uint8{135}, seq: 40, life: 0, after: []bind{{1, coa1, 0}}},
		{name: "no binding left: any sequence number is accepted",
			existing: []buSpec{{seq: 900}, {seq: 901, dereg: true}},
			in:       buSpec{seq: 3},
			status:   st0, seq: 3, life: 100, after: []bind{{0, coa1, 0}}},
		{name: "home address in the home prefix but not served: 133", cfg: func(c *Config) { c.Serve = []netip.Prefix{netip.MustParsePrefix("2001:db8:aaaa::/120")} },
			in: buSpec{hoa: netip.MustParseAddr("2001:db8:aaaa::1:1"), bids: []proto.BID{bid(1, 0)}}, status: st133, bidSt: []uint8{133}, seq: -1, life: 0},
		{name: "home address outside the home prefix: 132",
			in: buSpec{hoa: netip.MustParseAddr("2001:db8:bbbb::1")}, status: st132, seq: -1, life: 0},
		{name: "home address not routable: dropped", in: buSpec{hoa: netip.MustParseAddr("fe80::1")}, dropped: DropBadHoA},
		{name: "source not routable: dropped", in: buSpec{src: netip.MustParseAddr("::"), noHAO: false}, dropped: DropBadSource},
		{name: "not a BU: dropped", in: buSpec{}, dropped: DropNotBU},
		{name: "parse error other than BID: dropped", in: buSpec{parseErr: proto.ErrTruncated}, dropped: DropMalformed},
		{name: "no H flag at a home agent, no binding: dropped", in: buSpec{noH: true}, dropped: DropNotHome},
		{name: "no H flag at a home agent with a home registration: 139", existing: []buSpec{plain},
			in: buSpec{noH: true, src: coa2}, status: st139, seq: -1, life: 0, after: []bind{{0, coa1, 0}}},

		// Correspondent node.
		{name: "CN: H flag: 131", cfg: cnRole, in: buSpec{}, status: st131, seq: -1, life: 0},
		{name: "CN: individual BID registration", cfg: cnRole, in: buSpec{noH: true, noA: true, bids: []proto.BID{bid(1, 2)}},
			status: st0, bidSt: []uint8{0}, seq: -1, life: 100, after: []bind{{1, coa1, 2}}},
		{name: "CN: C flag: 146 even with bulk registration configured", cfg: func(c *Config) { cnRole(c); c.BulkRegistration = true },
			in: buSpec{noH: true, bids: []proto.BID{bulk(1, coa1)}}, status: st146, bidSt: []uint8{146}, seq: -1, life: 0},
		{name: "CN: lifetime capped to 420 s", cfg: func(c *Config) { cnRole(c); c.MaxLifetime = 3600e9 },
			in: buSpec{noH: true, life: 1000}, status: st0, seq: -1, life: 105, after: []bind{{0, coa1, 0}}},
		{name: "CN: plain de-registration without binding is accepted", cfg: cnRole,
			in: buSpec{noH: true, dereg: true}, status: st0, seq: -1, life: 0},
		{name: "CN: serves any home address", cfg: cnRole,
			in: buSpec{noH: true, hoa: netip.MustParseAddr("2001:db8:bbbb::1")}, status: st0, seq: -1, life: 100},
		{name: "CN: caller's rejection (expired nonces) changes nothing", cfg: cnRole,
			existing: []buSpec{{noH: true}},
			in:       buSpec{noH: true, src: coa2, reject: proto.StatusExpiredNonces, bids: []proto.BID{bid(1, 0)}},
			status:   proto.StatusExpiredNonces, bidSt: []uint8{138}, seq: -1, life: 0, after: []bind{{0, coa1, 0}}},
	}
}

func TestRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg)
			for _, s := range tc.existing {
				e.mustAccept(s)
			}
			before := e.c.Counters()
			in := e.input(tc.in)
			if tc.name == "not a BU: dropped" {
				in.Msg.Type = proto.TypeBA
			}
			e.clk.Advance(1e9)
			e.ba.Options.BIDs = append(e.ba.Options.BIDs[:0], proto.BID{ID: 999}) // must be reset
			r := e.c.ProcessBU(in, &e.ba)
			checkInvariants(t, e.c)
			if got := e.bindings(hoa1); bindsString(got) != bindsString(tc.after) {
				t.Errorf("cache after = %v, want %v", bindsString(got), bindsString(tc.after))
			}
			after := e.c.Counters()
			if tc.dropped != NotDropped {
				if r.Dropped != tc.dropped || r.Send {
					t.Fatalf("result %+v, want dropped %v", r, tc.dropped)
				}
				if after.Dropped[tc.dropped.String()] != before.Dropped[tc.dropped.String()]+1 {
					t.Errorf("drop not counted: %v", after.Dropped)
				}
				return
			}
			if r.Dropped != NotDropped {
				t.Fatalf("dropped: %v", r.Dropped)
			}
			if r.Status != tc.status {
				t.Errorf("status %d (%v), want %d (%v)", r.Status, r.Status, tc.status, tc.status)
			}
			if tc.status.Accepted() {
				if after.Accepted != before.Accepted+1 {
					t.Errorf("accepted not counted")
				}
			} else if after.Rejected[tc.status] != before.Rejected[tc.status]+1 {
				t.Errorf("rejection not counted: %v", after.Rejected)
			}
			if tc.noBA {
				if r.Send {
					t.Fatalf("BA sent, want none")
				}
				return
			}
			if !r.Send {
				t.Fatalf("no BA, want one")
			}
			ba := &e.ba
			if ba.Type != proto.TypeBA || ba.Status != tc.status {
				t.Errorf("BA type %v status %v", ba.Type, ba.Status)
			}
			wantSeq := in.Msg.Sequence
			if tc.seq >= 0 {
				wantSeq = uint16(tc.seq)
			}
			if ba.Sequence != wantSeq {
				t.Errorf("BA sequence %d, want %d", ba.Sequence, wantSeq)
			}
			if tc.life >= 0 && int(ba.Lifetime) != tc.life {
				t.Errorf("BA lifetime %d, want %d", ba.Lifetime, tc.life)
			}
			if len(ba.Options.BIDs) != len(tc.bidSt) {
				t.Fatalf("BA BID sub-options %+v, want statuses %v", ba.Options.BIDs, tc.bidSt)
			}
			for i, b := range ba.Options.BIDs {
				if b.ID != in.Msg.Options.BIDs[i].ID || b.PrioStatus != tc.bidSt[i] {
					t.Errorf("BA sub-option %d = {ID %d status %d}, want {ID %d status %d}", i, b.ID, b.PrioStatus, in.Msg.Options.BIDs[i].ID, tc.bidSt[i])
				}
				if b.R && !b.C || b.C && !b.CoA.IsValid() {
					t.Errorf("BA sub-option %d malformed: %+v", i, b)
				}
			}
			// The BA goes on the wire and comes back the same.
			raw, err := proto.AppendMessage(nil, ba, nil)
			if err != nil {
				t.Fatalf("BA does not marshal: %v", err)
			}
			var back proto.Message
			if err := proto.ParseMessage(raw, &back, nil); err != nil {
				var be *proto.BIDError
				if !errors.As(err, &be) || be.BID != 0 {
					t.Fatalf("BA does not parse back: %v", err)
				}
			}
			if back.Status != ba.Status || back.Sequence != ba.Sequence || back.Lifetime != ba.Lifetime || len(back.Options.BIDs) != len(ba.Options.BIDs) {
				t.Fatalf("BA after the wire: %+v, before %+v", back, *ba)
			}
			for i := range back.Options.BIDs {
				if back.Options.BIDs[i].PrioStatus != ba.Options.BIDs[i].PrioStatus {
					t.Errorf("sub-option %d status %d after the wire", i, back.Options.BIDs[i].PrioStatus)
				}
			}
			if r.Dst != in.Src {
				t.Errorf("BA to %v, want the BU's source %v", r.Dst, in.Src)
			}
			wantRH := netip.Addr{}
			if in.HoA.IsValid() && in.HoA != in.Src {
				wantRH = in.HoA
			}
			if r.RoutingHome != wantRH {
				t.Errorf("routing header %v, want %v", r.RoutingHome, wantRH)
			}
		})
	}
}

// TestChanges checks the change list that drives proxy ND and the data
// plane through a home address's life.
func TestChanges(t *testing.T) {
	e := newEnv(t, nil)
	type step struct {
		s    buSpec
		want string
	}
	steps := []step{
		{buSpec{bids: []proto.BID{bid(1, 0)}}, "hoa-up added/1/2001:db8:1::100"},
		{buSpec{bids: []proto.BID{bid(1, 0)}}, ""}, // refresh: no change
		{buSpec{src: coa2, bids: []proto.BID{bid(2, 0)}}, "added/2/2001:db8:2::100"},
		{buSpec{src: coa3, bids: []proto.BID{bid(1, 4)}}, "updated/1/2001:db8:3::100"},
		{buSpec{src: coa1}, "removed/2/2001:db8:2::100 removed/1/2001:db8:3::100 added/0/2001:db8:1::100"},
		{buSpec{src: coa2, bids: []proto.BID{bid(5, 0)}}, "added/5/2001:db8:2::100 removed/0/2001:db8:1::100"},
		{buSpec{dereg: true, bids: []proto.BID{bid(5, 0)}}, "removed/5/2001:db8:2::100 hoa-down"},
		{buSpec{bids: []proto.BID{bulk(1, coa1), bulk(2, coa2)}}, "hoa-up added/1/2001:db8:1::100 added/2/2001:db8:2::100"},
		{buSpec{dereg: true}, "removed/2/2001:db8:2::100 removed/1/2001:db8:1::100 hoa-down"},
	}
	for i, st := range steps {
		r := e.bu(st.s)
		if !r.Status.Accepted() && r.Status != st144 {
			t.Fatalf("step %d: status %v", i, r.Status)
		}
		var got []string
		for _, ch := range r.Changes {
			if ch.HoA != hoa1 {
				t.Fatalf("step %d: change for %v", i, ch.HoA)
			}
			if ch.Kind == HoAUp || ch.Kind == HoADown {
				got = append(got, ch.Kind.String())
				continue
			}
			got = append(got, fmt.Sprintf("%v/%d/%v", ch.Kind, ch.BID, ch.CoA))
		}
		if g := joinSpace(got); g != st.want {
			t.Errorf("step %d: changes %q, want %q", i, g, st.want)
		}
	}
}

func joinSpace(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestSelectAndLookup(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{bids: []proto.BID{bid(1, 5)}})
	e.mustAccept(buSpec{src: coa2, bids: []proto.BID{bid(2, 9)}})
	e.mustAccept(buSpec{src: coa3, bids: []proto.BID{bid(3, 9)}})
	b, ok := e.c.Select(hoa1)
	if !ok || b.BID != 3 {
		t.Fatalf("Select = %+v, want BID 3 (priority 9, most recent)", b)
	}
	// BID 2 re-registers: now it is the most recent of the priority-9 ones.
	e.mustAccept(buSpec{src: coa2, bids: []proto.BID{bid(2, 9)}})
	if b, _ := e.c.Select(hoa1); b.BID != 2 {
		t.Fatalf("Select = BID %d, want 2", b.BID)
	}
	e.mustAccept(buSpec{bids: []proto.BID{bid(1, 200)}})
	if b, _ := e.c.Select(hoa1); b.BID != 1 || b.CoA != coa1 || b.Priority != 200 {
		t.Fatalf("Select = %+v, want BID 1 (highest priority)", b)
	}
	got, ok := e.c.Lookup(hoa1, 2)
	if !ok || got.CoA != coa2 || got.HoA != hoa1 || !got.HomeRegistration || got.Lifetime != 400e9 ||
		!got.Registered().Equal(t0.Add(4e9)) || !got.Expires.Equal(t0.Add(404e9)) {
		t.Fatalf("Lookup(2) = %+v", got)
	}
	if _, ok := e.c.Lookup(hoa1, 4); ok {
		t.Fatal("Lookup of an unknown BID succeeded")
	}
	if _, ok := e.c.Lookup(hoa2, 1); ok {
		t.Fatal("Lookup of an unknown home address succeeded")
	}
	if bid, ok := e.c.Bound(hoa1, coa3); !ok || bid != 3 {
		t.Fatalf("Bound(coa3) = %d %v", bid, ok)
	}
	if _, ok := e.c.Bound(hoa1, haAddr); ok {
		t.Fatal("Bound of an unbound address")
	}
	ents := e.c.Entries(e.clk.Now())
	if len(ents) != 3 || ents[0].BID != 1 || ents[2].BID != 3 || ents[0].Lifetime != 400 ||
		ents[0].ExpiresIn != 400 || ents[1].ExpiresIn != 399 || ents[1].Sequence != 14 || !ents[0].HomeRegistration {
		t.Fatalf("Entries = %+v", ents)
	}
}

func TestKeyManagementFlag(t *testing.T) {
	for _, km := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.KeyManagement = km })
		r := e.bu(buSpec{flags: proto.FlagK})
		if !r.Send || (e.ba.Flags&proto.BAFlagK != 0) != km {
			t.Errorf("KeyManagement %v: BA flags %#x", km, e.ba.Flags)
		}
	}
}

func TestBindingError(t *testing.T) {
	var m proto.Message
	m.Options.BIDs = []proto.BID{{ID: 77}}
	BindingError(&m, proto.BEUnknownType, hoa1, 3)
	if m.Type != proto.TypeBE || m.Status != 2 || m.BEHomeAddress != hoa1 || len(m.Options.BIDs) != 1 || m.Options.BIDs[0].ID != 3 {
		t.Fatalf("BE 2 = %+v", m)
	}
	BindingError(&m, proto.BEUnknownType, hoa1, 0)
	if len(m.Options.BIDs) != 0 {
		t.Fatalf("BE 2 without BID carries %+v", m.Options.BIDs)
	}
	BindingError(&m, proto.BEUnknownHAO, hoa1, 3)
	if m.Status != 1 || len(m.Options.BIDs) != 0 || m.BEHomeAddress != hoa1 {
		t.Fatalf("BE 1 = %+v", m)
	}
}

func TestEntriesSorted(t *testing.T) {
	e := newEnv(t, nil)
	for _, h := range []netip.Addr{hoa2, hoa1} {
		e.mustAccept(buSpec{hoa: h, bids: []proto.BID{bulk(2, coa2), bulk(1, coa1)}})
	}
	ents := e.c.Entries(e.clk.Now())
	keys := make([]string, len(ents))
	for i, x := range ents {
		keys[i] = fmt.Sprintf("%v/%d", x.HoA, x.BID)
	}
	want := []string{"2001:db8:aaaa::100/1", "2001:db8:aaaa::100/2", "2001:db8:aaaa::200/1", "2001:db8:aaaa::200/2"}
	if !slices.Equal(keys, want) {
		t.Fatalf("Entries order %v, want %v", keys, want)
	}
}

func TestEntryJSON(t *testing.T) {
	e := newEnv(t, nil)
	e.mustAccept(buSpec{bids: []proto.BID{bid(7, 9)}})
	raw, err := json.Marshal(e.c.Entries(e.clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"hoa": "2001:db8:aaaa::100", "bid": 7.0, "coa": "2001:db8:1::100", "priority": 9.0,
		"sequence": 11.0, "lifetime": 400.0, "expires_in": 400.0, "home_registration": true}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("JSON %s", raw)
	}
}
