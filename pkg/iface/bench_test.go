package iface

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// benchState is 64 interfaces with 4 addresses each: a link-local, two
// global care-of candidates and a deprecated one.
func benchState() ([]netlink.Link, []netlink.Addr) {
	var links []netlink.Link
	var addrs []netlink.Addr
	for i := range 64 {
		idx := i + 2
		links = append(links, eth(idx, fmt.Sprintf("eth%d", i), up))
		addrs = append(addrs,
			mkAddr(idx, fmt.Sprintf("2001:db8:%x:1::%x/64", i, idx), 0),
			mkAddr(idx, fmt.Sprintf("2001:db8:%x:2::%x/64", i, idx), 0),
			mkAddr(idx, fmt.Sprintf("2001:db8:%x:3::%x/64", i, idx), ifaDeprecated, 0, 300),
			mkAddr(idx, fmt.Sprintf("fe80::%x/64", idx), 0),
		)
	}
	return links, addrs
}

// BenchmarkSnapshotDiff is one read turned into a Snapshot and compared
// with the previous one (issue 5: 64 interfaces x 4 addresses < 1 ms).
func BenchmarkSnapshotDiff(b *testing.B) {
	for _, mode := range []BIDMode{BIDPerInterface, BIDPerCoA} {
		b.Run(string(mode), func(b *testing.B) {
			c, st := testSelector(b, &Config{BIDMode: mode, HomeAddress: netip.MustParseAddr("2001:db8:aaaa::100"),
				Rules: []Rule{{Match: "eth1*", Priority: 10}, {Match: "eth2*", Priority: 20}, {Match: "eth*", Priority: 30}}})
			links, addrs := benchState()
			prev := c.build(links, addrs, t0, st)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s := c.build(links, addrs, t0, st)
				if !equalCareOfs(prev.CareOfs, s.CareOfs) {
					b.Fatal("snapshot changed")
				}
				prev = s
			}
		})
	}
}
