package routeopt

import (
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/internal/tsharktest"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// TestTsharkDecodesRO: Wireshark reads the data packets route optimisation
// makes as RFC 6275 lays them out: the Home Address option with the home
// address from the care-of address, and the type 2 routing header with the
// home address to the care-of address, the upper layer intact behind them.
func TestTsharkDecodesRO(t *testing.T) {
	coa := pkttest.TCoA[1].As16()
	b := room(roUDP(64))
	ns, nn, err := InsertHAO(b, packet.Headroom, len(b)-packet.Headroom, &coa)
	if err != nil {
		t.Fatal(err)
	}
	hao := b[ns : ns+nn]
	b = room(pkttest.IP6(0, 0, packet.ProtoICMPv6, 64, pkttest.TCN, pkttest.THoA, pkttest.Echo(128, 7, 3, 32)))
	ns, nn, err = InsertRH2(b, packet.Headroom, len(b)-packet.Headroom, &coa)
	if err != nil {
		t.Fatal(err)
	}
	rh2 := b[ns : ns+nn]
	got := tsharktest.Decode(t, [][]byte{hao, rh2})
	for i, want := range []map[string]string{{
		"ipv6.src": pkttest.TCoA[1].String(), "ipv6.dst": pkttest.TCN.String(),
		"ipv6.opt.type": "0xc9", "ipv6.opt.length": "16", "ipv6.opt.mipv6.home_address": pkttest.THoA.String(),
		"ipv6.dstopts.nxt": "17", "ipv6.dstopts.len_oct": "24",
		"udp.srcport": "4000", "udp.dstport": "5000", "udp.length": "72",
	}, {
		"ipv6.src": pkttest.TCN.String(), "ipv6.dst": pkttest.TCoA[1].String(),
		"ipv6.routing.type": "2", "ipv6.routing.segleft": "1", "ipv6.routing.len_oct": "24", "ipv6.routing.mipv6.home_address": pkttest.THoA.String(),
		"icmpv6.type": "128", "icmpv6.echo.identifier": "0x0007", "icmpv6.checksum.status": "1",
	}} {
		for k, v := range want {
			if vs := got[i][k]; len(vs) == 0 || vs[len(vs)-1] != v {
				t.Errorf("packet %d: %s = %q, want %q", i, k, vs, v)
			}
		}
		if t.Failed() {
			for k, v := range got[i] {
				t.Logf("%s = %q", k, v)
			}
		}
	}
}
