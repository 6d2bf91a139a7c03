package proto

import (
	"net/netip"
	"strconv"
	"testing"
)

// TestTsharkWireCheckRFC5648: rfc5648-encoded packets decoded by
// Wireshark's MIPv6 dissector, which implements RFC 5648 4.3 natively:
// mip6.bi.bid, mip6.bi.status, mip6.bi.h_flag ("Simultaneous Home and
// Foreign Binding (H)", 0x80), mip6.bi.coa_ipv4 (Length 8) and
// mip6.bi.coa_ipv6 (Length 20); a BID option without CoA shows neither
// address. Wireshark 4.0 has no field for RFC 5648's O flag (4.2, bit
// 0x0040 of the BU flags): it shows that bit as RFC 6602's Bulk-Binding-
// Update flag, mip6.bu.b_flag, which checks its position.
func TestTsharkWireCheckRFC5648(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	s := strconv.Itoa
	cases := []tsharkCase{
		{
			name: "bulk BU with O, IPv6 and IPv4 CoAs, no CoA, H",
			p: &Packet{Src: tCoA1, Dst: tHA, HomeAddress: tHoA, MH: Message{Type: TypeBU,
				Sequence: 4242, Lifetime: 105, Flags: FlagA | FlagH | FlagK | FlagO, Options: Options{BIDs: []BID{
					{ID: 1, C: true, CoA: tCoA1},
					{ID: 2, C: true, CoA: v4},
					{ID: 3},
					{ID: 4, H: true, C: true, CoA: tHoA},
				}}}},
			want: map[string][]string{
				"mip6.mhtype": {"5"}, "mip6.bu.seqnr": {"4242"}, "mip6.bu.lifetime": {"105"},
				"mip6.bu.a_flag": {"1"}, "mip6.bu.h_flag": {"1"}, "mip6.bu.k_flag": {"1"},
				"mip6.bu.b_flag": {"1"}, "mip6.bu.t_flag": {"0"}, "mip6.nemo.bu.r_flag": {"0"},
				"ipv6.opt.mipv6.home_address": {tHoA.String()},
				"mip6.bi.bid":                 {"1", "2", "3", "4"},
				"mip6.bi.status":              {"0", "0", "0", "0"},
				"mip6.bi.h_flag":              {"0", "0", "0", "1"},
				"mip6.bi.coa_ipv6":            {tCoA1.String(), tHoA.String()},
				"mip6.bi.coa_ipv4":            {"192.0.2.1"},
			},
		},
		{
			name: "BU without O, one BID with CoA",
			p: &Packet{Src: tCoA2, Dst: tHA, HomeAddress: tHoA, MH: Message{Type: TypeBU,
				Sequence: 7, Lifetime: 100, Flags: FlagA | FlagH, Options: Options{BIDs: []BID{
					{ID: 2, C: true, CoA: tCoA2},
				}}}},
			want: map[string][]string{
				"mip6.bu.b_flag": {"0"}, "mip6.bi.bid": {"2"}, "mip6.bi.h_flag": {"0"},
				"mip6.bi.coa_ipv6": {tCoA2.String()}, "mip6.bi.coa_ipv4": {},
			},
		},
		{
			name: "de-registration BU, BIDs without CoA",
			p: &Packet{Src: tCoA1, Dst: tHA, HomeAddress: tHoA, MH: Message{Type: TypeBU,
				Sequence: 4243, Lifetime: 0, Flags: FlagA | FlagH, Options: Options{BIDs: []BID{{ID: 2}, {ID: 3}}}}},
			want: map[string][]string{
				"mip6.mhtype": {"5"}, "mip6.bu.lifetime": {"0"}, "mip6.bu.b_flag": {"0"},
				"mip6.bi.bid": {"2", "3"}, "mip6.bi.h_flag": {"0", "0"},
				"mip6.bi.coa_ipv6": {}, "mip6.bi.coa_ipv4": {},
			},
		},
		{
			name: "BA MCOA NOTCOMPLETE with per-BID status",
			p: &Packet{Src: tHA, Dst: tCoA1, RoutingHome: tHoA, MH: Message{Type: TypeBA,
				Status: StatusMCoANotComplete, Flags: BAFlagK, Sequence: 4242, Lifetime: 100,
				Options: Options{BIDs: []BID{
					{ID: 1, C: true, CoA: tCoA1},
					{ID: 2, PrioStatus: uint8(StatusMCoAMalformed)},
					{ID: 3, PrioStatus: uint8(StatusMCoAUnknownCoA)},
				}}}},
			want: map[string][]string{
				"mip6.mhtype": {"6"}, "mip6.ba.status": {"4"}, "mip6.ba.k_flag": {"1"},
				"mip6.ba.seqnr": {"4242"}, "mip6.ba.lifetime": {"100"},
				"ipv6.routing.mipv6.home_address": {tHoA.String()},
				"mip6.bi.bid":                     {"1", "2", "3"},
				"mip6.bi.status":                  {"0", "164", "167"},
				"mip6.bi.coa_ipv6":                {tCoA1.String()},
			},
		},
		{
			name: "BA MCOA RETURNHOME WO/NDP for a home binding",
			p: &Packet{Src: tHA, Dst: tHoA, MH: Message{Type: TypeBA,
				Status: StatusMCoAReturnHomeWoNDP, Sequence: 9, Lifetime: 100,
				Options: Options{BIDs: []BID{{ID: 4, H: true}}}}},
			want: map[string][]string{
				"mip6.ba.status": {"5"}, "mip6.bi.bid": {"4"}, "mip6.bi.status": {"0"},
				"mip6.bi.h_flag": {"1"}, "mip6.bi.coa_ipv6": {},
			},
		},
	}
	// One BA for each unsuccessful RFC 5648 status (4.4, 11).
	for _, st := range []Status{164, 165, 166, 167, 168, 169} {
		cases = append(cases, tsharkCase{
			name: "BA " + st.String(),
			p: &Packet{Src: tHA, Dst: tCoA1, RoutingHome: tHoA, MH: Message{Type: TypeBA,
				Status: st, Sequence: 10, Options: Options{BIDs: []BID{{ID: 1}}}}},
			want: map[string][]string{
				"mip6.ba.status": {s(int(st))}, "mip6.ba.lifetime": {"0"},
				"mip6.bi.bid": {"1"}, "mip6.bi.status": {"0"},
			},
		})
	}
	runTshark(t, cases, RFC5648)
}
