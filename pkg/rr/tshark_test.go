package rr

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/tsharktest"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

func hex64(b [8]byte) string { return fmt.Sprintf("0x%x", b[:]) }

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func TestTsharkDecodesRR(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})

	type pkt struct {
		name string
		b    []byte
		want map[string][]string
	}
	var all []pkt
	add := func(name string, p *proto.Packet, sign proto.Signer, want map[string][]string) *proto.Packet {
		b, err := proto.AppendPacket(nil, p, nil, sign)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var q proto.Packet
		if err := proto.ParsePacket(b, &q, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want["ipv6.src"] = []string{p.Src.String()}
		want["ipv6.dst"] = []string{p.Dst.String()}
		want["mip6.csum"] = []string{fmt.Sprintf("0x%04x", binary.BigEndian.Uint16(q.MHBytes[4:]))}
		if q.MH.Options.HasAuthData {
			want["mip6.bad.auth"] = []string{colonHex(q.MHBytes[q.MH.AuthOffset : q.MH.AuthOffset+12])}
		}
		all = append(all, pkt{name, b, want})
		return &q
	}

	inits, _ := m.Need(tCN, tCoA2)
	hotiP, cotiP := inits[0], inits[1]
	hoti := add("HoTI", &hotiP, nil, map[string][]string{"mip6.mhtype": {"1"}, "mip6.hoti.cookie": {hex64(hotiP.MH.Cookie)}})
	coti := add("CoTI", &cotiP, nil, map[string][]string{"mip6.mhtype": {"2"}, "mip6.coti.cookie": {hex64(cotiP.MH.Cookie)}})
	var hot, cot proto.Packet
	if err := c.Answer(hoti, &hot); err != nil {
		t.Fatal(err)
	}
	if err := c.Answer(coti, &cot); err != nil {
		t.Fatal(err)
	}
	idx := fmt.Sprint(hot.MH.NonceIndex)
	add("HoT", &hot, nil, map[string][]string{"mip6.mhtype": {"3"}, "mip6.hot.nindex": {idx},
		"mip6.hot.cookie": {hex64(hotiP.MH.Cookie)}, "mip6.hot.token": {hex64(hot.MH.KeygenToken)}})
	add("CoT", &cot, nil, map[string][]string{"mip6.mhtype": {"4"}, "mip6.cot.nindex": {idx},
		// Wireshark shows the Care-of Keygen Token under the HoT's field
		// name (its CoT dissector reuses that field).
		"mip6.cot.cookie": {hex64(cotiP.MH.Cookie)}, "mip6.hot.token": {hex64(cot.MH.KeygenToken)}})
	m.HandleHoT(&hot)
	m.HandleCoT(&cot)

	p, sign, err := m.BU(BUParams{CN: tCN, CoA: tCoA2, BID: 2, Priority: 7, Sequence: 321, Lifetime: 400 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bu := add("BU", &p, sign, map[string][]string{
		"mip6.mhtype": {"5"}, "mip6.bu.seqnr": {"321"}, "mip6.bu.lifetime": {"100"},
		"mip6.bu.a_flag": {"1"}, "mip6.bu.h_flag": {"0"},
		"ipv6.opt.mipv6.home_address": {tHoA.String()},
		"mip6.ni.hni":                 {idx}, "mip6.ni.cni": {idx},
		"mip6.bi.bid": {"2"}, "mip6.bi.status": {"7"}, "mip6.bi.h_flag": {"0"},
	})
	if st, err := c.VerifyBU(bu); st != 0 || err != nil {
		t.Fatalf("CN refuses the BU: %v %v", st, err)
	}
	ba := proto.Packet{Src: tCN, Dst: tCoA2, RoutingHome: tHoA, MH: proto.Message{Type: proto.TypeBA,
		Sequence: 321, Lifetime: 100, Options: proto.Options{BIDs: []proto.BID{{ID: 2}}, HasAuthData: true}}}
	add("BA", &ba, c.BASigner(tCoA2, tCN), map[string][]string{
		"mip6.mhtype": {"6"}, "mip6.ba.status": {"0"}, "mip6.ba.seqnr": {"321"},
		"ipv6.routing.mipv6.home_address": {tHoA.String()}, "mip6.bi.bid": {"2"},
	})

	var raw [][]byte
	for _, x := range all {
		raw = append(raw, x.b)
	}
	got := tsharktest.Decode(t, raw)
	for i, x := range all {
		t.Run(x.name, func(t *testing.T) {
			d := got[i]
			if d["proto:mipv6"] == nil {
				t.Fatalf("no Mobility Header decoded: %v", d)
			}
			for name, vals := range x.want {
				if g := d[name]; strings.Join(g, ",") != strings.Join(vals, ",") {
					t.Errorf("%s: tshark shows %q, want %q", name, g, vals)
				}
			}
			if d["_ws.malformed"] != nil || d["_ws.expert"] != nil {
				t.Errorf("tshark reports a problem: %v", d["_ws.expert.message"])
			}
		})
	}
}
