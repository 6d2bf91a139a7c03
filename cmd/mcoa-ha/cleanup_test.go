package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/config"
)

// -cleanup's kernel part, in a namespace of its own: what a killed
// mcoa-ha leaves goes, what is not its own stays, and a second run finds
// nothing to do.
func TestCleanupKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		if nstest.Required() {
			t.Fatal("MCOA_E2E=1 but not root")
		}
		t.Skip("needs root for a network namespace")
	}
	nstest.Require(t, "ip", "nft")
	ns := nstest.New(t, nstest.Prefix()+"hacln")
	ns.Exec(t, "ip", "link", "add", "home0", "type", "veth", "peer", "name", "home1")
	ns.Exec(t, "ip", "link", "set", "home0", "up")
	ns.Exec(t, "ip", "-6", "neigh", "add", "proxy", "2001:db8:aaaa::100", "dev", "home0") // served: goes
	ns.Exec(t, "ip", "-6", "neigh", "add", "proxy", "2001:db8:eeee::7", "dev", "home0")   // not served: stays
	ns.Exec(t, "nft", "add table ip6 mcoa_ha_mh; add table ip6 other")
	ns.Exec(t, "ip", "tuntap", "add", "mcoaha0", "mode", "tun") // persistent: a leftover
	for _, r := range [][]string{
		{"fwmark", "0x4d000000/0x4d000000", "goto", "5002", "pref", "5000"},
		{"iif", "lo", "lookup", "900", "pref", "5001"},
		{"nop", "pref", "5002"},
		{"lookup", "77", "pref", "4000"}, // someone else's
	} {
		ns.Exec(t, append([]string{"ip", "-6", "rule", "add"}, r...)...)
	}
	cfg := &config.HA{}
	cfg.HomeAgent.Address = netip.MustParseAddr("2001:db8:aaaa::1")
	cfg.HomeAgent.Interface = "home0"
	cfg.HomeAgent.Serve = []netip.Prefix{netip.MustParsePrefix("2001:db8:aaaa::/64")}
	cfg.Correspondent.Enabled = true
	for i := range 2 {
		if err := ns.Do(func() error { return cleanupKernel(cfg) }); err != nil {
			t.Fatalf("cleanup %d: %v", i+1, err)
		}
		proxies := ns.Exec(t, "ip", "-6", "neigh", "show", "proxy")
		if strings.Contains(proxies, "2001:db8:aaaa::100") || !strings.Contains(proxies, "2001:db8:eeee::7") {
			t.Fatalf("cleanup %d: proxy entries left: %s", i+1, proxies)
		}
		tables := ns.Exec(t, "nft", "list", "tables")
		if strings.Contains(tables, "mcoa_ha_mh") || !strings.Contains(tables, "table ip6 other") {
			t.Fatalf("cleanup %d: nftables: %s", i+1, tables)
		}
		rules := ns.Exec(t, "ip", "-6", "rule", "show")
		if strings.Contains(rules, "5000:") || strings.Contains(rules, "5001:") || strings.Contains(rules, "5002:") || !strings.Contains(rules, "4000:") {
			t.Fatalf("cleanup %d: rules: %s", i+1, rules)
		}
		if out, err := ns.Try("ip", "link", "show", "mcoaha0"); err == nil {
			t.Fatalf("cleanup %d: mcoaha0 left: %s", i+1, out)
		}
	}
	// Without a configuration (a file that does not load): the tables and
	// devices only.
	ns.Exec(t, "nft", "add table ip6 mcoa_ha_mh")
	if err := ns.Do(func() error { return cleanupKernel(nil) }); err != nil {
		t.Fatal(err)
	}
	if tables := ns.Exec(t, "nft", "list", "tables"); strings.Contains(tables, "mcoa_ha_mh") {
		t.Fatalf("cleanup without a configuration: %s", tables)
	}
}
