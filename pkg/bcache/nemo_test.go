package bcache

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/proto"
)

const (
	st140 = proto.StatusMRNotAuthorized
	st141 = proto.StatusInvalidPrefix
	st142 = proto.StatusNotAuthorizedForPrefix
)

var (
	mnpA   = netip.MustParsePrefix("2001:db8:aaab::/48")
	mnpA1  = netip.MustParsePrefix("2001:db8:aaab:1::/64")
	mnpB   = netip.MustParsePrefix("2001:db8:bbbb::/64")
	mnpOut = netip.MustParsePrefix("2001:db8:cccc::/64")
)

// routers configures hoa1 as a mobile router with mnpA and mnpB; hoa2 is
// a plain mobile node.
func routers(c *Config) {
	c.MobileRouters = func(hoa netip.Addr) ([]netip.Prefix, bool) {
		if hoa == hoa1 {
			return []netip.Prefix{mnpA, mnpB}, true
		}
		return nil, false
	}
}

func TestMobileRouterRules(t *testing.T) {
	r := proto.FlagR
	bulk12 := []proto.BID{bulk(1, coa1), bulk(2, coa2)}
	for _, tc := range []struct {
		name     string
		cfg      func(*Config)
		existing []buSpec
		in       buSpec
		status   proto.Status
		bidSt    []uint8
		baR      bool
		prefixes []netip.Prefix // registered for hoa1 afterwards
		binds    int            // hoa1's bindings afterwards
	}{
		{name: "explicit, individual", cfg: routers, in: buSpec{flags: r, bids: []proto.BID{bid(1, 0)}, prefixes: []netip.Prefix{mnpB, mnpA}},
			status: st0, bidSt: []uint8{0}, baR: true, prefixes: []netip.Prefix{mnpB, mnpA}, binds: 1},
		{name: "explicit, bulk, a prefix inside a configured one", cfg: routers, in: buSpec{flags: r, bids: bulk12, prefixes: []netip.Prefix{mnpA1}},
			status: st0, bidSt: []uint8{0, 0}, baR: true, prefixes: []netip.Prefix{mnpA1}, binds: 2},
		{name: "explicit, plain, duplicate options once", cfg: routers, in: buSpec{flags: r, prefixes: []netip.Prefix{mnpB, mnpB}},
			status: st0, baR: true, prefixes: []netip.Prefix{mnpB}, binds: 1},
		{name: "implicit, bulk: the configured prefixes", cfg: routers, in: buSpec{flags: r, bids: bulk12},
			status: st0, bidSt: []uint8{0, 0}, baR: true, prefixes: []netip.Prefix{mnpA, mnpB}, binds: 2},
		{name: "implicit, individual", cfg: routers, in: buSpec{flags: r, bids: []proto.BID{bid(3, 0)}},
			status: st0, bidSt: []uint8{0}, baR: true, prefixes: []netip.Prefix{mnpA, mnpB}, binds: 1},
		{name: "not a mobile router: 140", cfg: routers, in: buSpec{hoa: hoa2, flags: r, bids: []proto.BID{bid(1, 0)}},
			status: st140, bidSt: []uint8{140}, baR: true},
		{name: "no mobile router configured at all: 140", in: buSpec{flags: r, bids: bulk12},
			status: st140, bidSt: []uint8{140, 140}, baR: true},
		{name: "prefix not authorized: 142, nothing registered", cfg: routers, in: buSpec{flags: r, bids: bulk12, prefixes: []netip.Prefix{mnpA, mnpOut}},
			status: st142, bidSt: []uint8{142, 142}, baR: true},
		{name: "prefix wider than the configured one: 142", cfg: routers, in: buSpec{flags: r, prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}},
			status: st142, baR: true},
		{name: "zero-length prefix: 141", cfg: routers, in: buSpec{flags: r, bids: []proto.BID{bid(1, 0)}, prefixes: []netip.Prefix{netip.MustParsePrefix("::/0")}},
			status: st141, bidSt: []uint8{141}, baR: true},
		{name: "host bits set: 141", cfg: routers, in: buSpec{flags: r, prefixes: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("2001:db8:bbbb::1"), 64)}},
			status: st141, baR: true},
		{name: "length over 128 from the parser: 141", cfg: routers, in: buSpec{flags: r, parseErr: &proto.ParseError{What: "option", Offset: 3, Err: proto.ErrBadPrefix}},
			status: st141, baR: true},
		{name: "a rejection keeps the registered prefixes", cfg: routers, existing: []buSpec{{flags: r, bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{flags: r, bids: []proto.BID{bid(1, 0)}, prefixes: []netip.Prefix{mnpOut}},
			status: st142, bidSt: []uint8{142}, baR: true, prefixes: []netip.Prefix{mnpA, mnpB}, binds: 1},
		{name: "re-registration changes the prefixes", cfg: routers, existing: []buSpec{{flags: r, bids: []proto.BID{bid(1, 0)}}},
			in:     buSpec{flags: r, bids: []proto.BID{bid(1, 0)}, prefixes: []netip.Prefix{mnpB}},
			status: st0, bidSt: []uint8{0}, baR: true, prefixes: []netip.Prefix{mnpB}, binds: 1},
		{name: "registration without R: a mobile host now", cfg: routers, existing: []buSpec{{flags: r, bids: []proto.BID{bid(1, 0)}}},
			in: buSpec{bids: []proto.BID{bid(1, 0)}}, status: st0, bidSt: []uint8{0}, binds: 1},
		{name: "removing one of two bindings keeps the prefixes", cfg: routers, existing: []buSpec{{flags: r, bids: bulk12}},
			in:     buSpec{flags: r, dereg: true, bids: []proto.BID{bid(2, 0)}},
			status: st0, bidSt: []uint8{0}, baR: true, prefixes: []netip.Prefix{mnpA, mnpB}, binds: 1},
		{name: "de-registration needs no check and removes them", cfg: routers, existing: []buSpec{{flags: r, bids: bulk12}},
			in: buSpec{flags: r, dereg: true}, status: st0, baR: true},
		{name: "a correspondent ignores R", cfg: func(c *Config) { routers(c); c.Role = RoleCN }, in: buSpec{noH: true, flags: r, prefixes: []netip.Prefix{mnpOut}},
			status: st0, binds: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg)
			for _, s := range tc.existing {
				e.mustAccept(s)
			}
			res := e.bu(tc.in)
			if res.Dropped != NotDropped || !res.Send {
				t.Fatalf("dropped %v, send %v", res.Dropped, res.Send)
			}
			if res.Status != tc.status || e.ba.Status != tc.status {
				t.Errorf("status %v (BA %v), want %v", res.Status, e.ba.Status, tc.status)
			}
			if got := e.ba.Flags&proto.BAFlagR != 0; got != tc.baR {
				t.Errorf("BA R flag %v, want %v", got, tc.baR)
			}
			var bst []uint8
			for _, b := range e.ba.Options.BIDs {
				bst = append(bst, b.PrioStatus)
			}
			if !slices.Equal(bst, tc.bidSt) {
				t.Errorf("BID statuses %v, want %v", bst, tc.bidSt)
			}
			bs := e.c.LookupHoA(hoa1, nil)
			if len(bs) != tc.binds {
				t.Fatalf("hoa1 has %d bindings, want %d: %+v", len(bs), tc.binds, bs)
			}
			for _, b := range bs {
				if !slices.Equal(b.Prefixes, tc.prefixes) {
					t.Errorf("binding %d prefixes %v, want %v", b.BID, b.Prefixes, tc.prefixes)
				}
			}
			for _, en := range e.c.Entries(e.clk.Now()) {
				if en.HoA == hoa1 && !slices.Equal(en.Prefixes, tc.prefixes) {
					t.Errorf("entry %d prefixes %v, want %v", en.BID, en.Prefixes, tc.prefixes)
				}
			}
			if got := e.c.mnps[hoa1.As16()]; !slices.Equal(got, tc.prefixes) {
				t.Errorf("kept prefixes %v, want %v", got, tc.prefixes)
			}
			if e.c.mnps[hoa2.As16()] != nil {
				t.Errorf("hoa2 has prefixes")
			}
			// The BA encodes.
			if _, err := proto.AppendMessage(nil, &e.ba, nil); err != nil {
				t.Fatalf("BA does not marshal: %v", err)
			}
			checkInvariants(t, e.c)
		})
	}
}

// TestMobileRouterChanges: the data plane learns the prefixes from the
// change list, and loses them with the last binding, by BU or by expiry.
func TestMobileRouterChanges(t *testing.T) {
	e := newEnv(t, routers)
	r := proto.FlagR
	str := func(res Result) string {
		var out []string
		for _, ch := range res.Changes {
			switch ch.Kind {
			case PrefixesChanged:
				out = append(out, fmt.Sprintf("prefixes%v", ch.Prefixes))
			case HoAUp, HoADown:
				out = append(out, ch.Kind.String())
			default:
				out = append(out, fmt.Sprintf("%v/%d", ch.Kind, ch.BID))
			}
		}
		return strings.Join(out, " ")
	}
	steps := []struct {
		s    buSpec
		want string
	}{
		{buSpec{flags: r, bids: []proto.BID{bid(1, 0)}}, "hoa-up added/1 prefixes[2001:db8:aaab::/48 2001:db8:bbbb::/64]"},
		{buSpec{flags: r, bids: []proto.BID{bid(1, 0)}}, ""}, // refresh: nothing new
		{buSpec{flags: r, src: coa2, bids: []proto.BID{bid(2, 0)}, prefixes: []netip.Prefix{mnpB}}, "added/2 prefixes[2001:db8:bbbb::/64]"},
		{buSpec{flags: r, dereg: true, bids: []proto.BID{bid(1, 0)}}, "removed/1"},
		{buSpec{flags: r, dereg: true, bids: []proto.BID{bid(2, 0)}}, "removed/2 prefixes[] hoa-down"},
		{buSpec{flags: r, bids: []proto.BID{bid(1, 0)}}, "hoa-up added/1 prefixes[2001:db8:aaab::/48 2001:db8:bbbb::/64]"},
	}
	for i, st := range steps {
		if got := str(e.bu(st.s)); got != st.want {
			t.Errorf("step %d: changes %q, want %q", i, got, st.want)
		}
	}
	// Expiry removes them too.
	e.clk.Advance(500e9)
	_, changes := e.c.Tick(e.clk.Now())
	got := str(Result{Changes: changes})
	if want := "removed/1 prefixes[] hoa-down"; got != want {
		t.Errorf("expiry: changes %q, want %q", got, want)
	}
	if len(e.c.mnps) != 0 {
		t.Errorf("prefixes left after expiry: %v", e.c.mnps)
	}
}
