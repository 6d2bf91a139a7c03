package bpftun

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/tsharktest"
)

// haoHeader is the Destination Options header with the Home Address
// option as RFC 6275 6.3 and pkg/proto lay it out (PadN, option at 8n+6).
func haoHeader(next byte, hoa netip.Addr, rest []byte) []byte {
	a := hoa.As16()
	h := append([]byte{next, 2, 1, 2, 0, 0, 201, 16}, a[:]...)
	return append(h, rest...)
}

// rh2Header is a type 2 routing header holding hoa (RFC 6275 6.4).
func rh2Header(next byte, segleft byte, hoa netip.Addr, rest []byte) []byte {
	a := hoa.As16()
	h := append([]byte{next, 2, 2, segleft, 0, 0, 0, 0}, a[:]...)
	return append(h, rest...)
}

const (
	nhDstOpts = 60
	nhRouting = 43
	nhMH      = 135
	loIndex   = 1 // a test run's packets come from the loopback device
)

// TestROOut: a packet from the home address to a correspondent bound on
// its uplink leaves from the care-of address with a Home Address option;
// anything else passes as it is.
func TestROOut(t *testing.T) {
	p := loaded(t)
	if err := p.SetHome(hoa); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRO(cn, loIndex, coa, 3); err != nil {
		t.Fatal(err)
	}
	data := udp(5000, 7000, "route optimised")
	other := netip.MustParseAddr("2001:db8:5::5")
	tests := []struct {
		name  string
		frame []byte
		want  []byte // nil: passed untouched
	}{
		{name: "to a bound correspondent", frame: ether(0x86dd, ip6(hoa, cn, nhUDP, data)),
			want: ether(0x86dd, ip6(coa, cn, nhDstOpts, haoHeader(nhUDP, hoa, data)))},
		{name: "to another destination", frame: ether(0x86dd, ip6(hoa, other, nhUDP, data))},
		{name: "not from the home address", frame: ether(0x86dd, ip6(coa, cn, nhUDP, data))},
		{name: "hop-by-hop first", frame: ether(0x86dd, ip6(hoa, cn, 0, ext(nhUDP, 0, data)))},
		{name: "destination options of its own", frame: ether(0x86dd, ip6(hoa, cn, nhDstOpts, ext(nhUDP, 0, data)))},
		{name: "signaling", frame: ether(0x86dd, ip6(hoa, cn, nhMH, make([]byte, 16)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ret, out := run(t, p.ROOut(), tt.frame)
			want, wantRet := tt.want, uint32(tcActOK)
			if want == nil {
				want, wantRet = tt.frame, tcPass
			}
			if ret != wantRet || !bytes.Equal(out, want) {
				t.Fatalf("returned %d with\n % x\nwant %d with\n % x", ret, out, wantRet, want)
			}
		})
	}
	ro, err := p.ROStats()
	if err != nil {
		t.Fatal(err)
	}
	if ro[3].TxPackets != 1 || ro[3].TxBytes != uint64(40+len(data)) {
		t.Errorf("route optimisation counters %+v, want one packet of %d bytes on BID 3", ro, 40+len(data))
	}
	if st, _ := p.Stats(); len(st) != 0 {
		t.Errorf("tunnel counters %+v: route optimisation counted as a tunnel", st)
	}
	if err := p.DeleteRO(cn, loIndex); err != nil {
		t.Fatal(err)
	}
	frame := ether(0x86dd, ip6(hoa, cn, nhUDP, data))
	if ret, out := run(t, p.ROOut(), frame); ret != tcPass || !bytes.Equal(out, frame) {
		t.Errorf("after DeleteRO: returned %d, want the frame untouched", ret)
	}
}

// TestROIn: the type 2 routing header of a packet to a care-of address
// goes when it holds the home address; the home address becomes the
// destination. One for another address is dropped; signaling is left to
// the Mobility Header socket.
func TestROIn(t *testing.T) {
	p := loaded(t)
	for _, err := range []error{p.SetHome(hoa), p.SetEndpoint(coa, 4)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	data := udp(7000, 5000, "answer")
	tests := []progCase{
		{name: "to the home address", frame: ether(0x86dd, ip6(cn, coa, nhRouting, rh2Header(nhUDP, 1, hoa, data))),
			want: ether(0x86dd, ip6(cn, hoa, nhUDP, data))},
		{name: "another home address", frame: ether(0x86dd, ip6(cn, coa, nhRouting, rh2Header(nhUDP, 1, hoa2, data))), ret: tcActShot, drop: DropNotHome},
		{name: "no segment left", frame: ether(0x86dd, ip6(cn, coa, nhRouting, rh2Header(nhUDP, 0, hoa, data))), ret: tcActShot, drop: DropNotHome},
		{name: "signaling", frame: ether(0x86dd, ip6(cn, coa, nhRouting, rh2Header(nhMH, 1, hoa, make([]byte, 16)))), ret: tcPass},
		{name: "not to a care-of address", frame: ether(0x86dd, ip6(cn, cn, nhRouting, rh2Header(nhUDP, 1, hoa, data))), ret: tcPass},
		{name: "another routing type", frame: ether(0x86dd, ip6(cn, coa, nhRouting, append([]byte{nhUDP, 2, 0, 1}, make([]byte, 20)...))), ret: tcPass},
		{name: "truncated", frame: ether(0x86dd, ip6(cn, coa, nhRouting, []byte{nhUDP, 2, 2, 1})), ret: tcPass},
	}
	runCases(t, p.Decap(), p, tests)
	ro, err := p.ROStats()
	if err != nil {
		t.Fatal(err)
	}
	if ro[4].RxPackets != 1 || ro[4].RxBytes != uint64(40+len(data)) {
		t.Errorf("route optimisation counters %+v, want one packet of %d bytes on BID 4", ro, 40+len(data))
	}
}

// TestTsharkDecodesROOut: Wireshark reads the packet ro_out makes as RFC
// 6275 lays it out: from the care-of address, the Home Address option
// holding the home address, the UDP datagram intact behind it.
func TestTsharkDecodesROOut(t *testing.T) {
	p := loaded(t)
	if err := p.SetHome(hoa); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRO(cn, loIndex, coa, 1); err != nil {
		t.Fatal(err)
	}
	ret, out := run(t, p.ROOut(), ether(0x86dd, ip6(hoa, cn, nhUDP, udp(4000, 5000, "wireshark"))))
	if ret != tcActOK {
		t.Fatalf("ro_out returned %d", ret)
	}
	got := tsharktest.Decode(t, [][]byte{out[14:]})[0]
	for k, v := range map[string]string{
		"ipv6.src": coa.String(), "ipv6.dst": cn.String(), "ipv6.plen": "41",
		"ipv6.opt.type": "0xc9", "ipv6.opt.length": "16", "ipv6.opt.mipv6.home_address": hoa.String(),
		"ipv6.dstopts.nxt": "17", "ipv6.dstopts.len_oct": "24",
		"udp.srcport": "4000", "udp.dstport": "5000", "udp.length": "17",
	} {
		if vs := got[k]; len(vs) == 0 || vs[len(vs)-1] != v {
			t.Errorf("%s = %q, want %q", k, vs, v)
		}
	}
}
