package proxynd

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
)

// The home agent's namespace has the home link home0; a host on the home
// link resolves the home address and must get the home agent's MAC while a
// binding exists, and nothing once it is gone.
func TestProxyNDDefendsHomeAddress(t *testing.T) {
	nstest.Require(t, "ping")
	p := nstest.Prefix()
	ha := nstest.New(t, p+"ha")
	host := nstest.New(t, p+"host")
	nstest.Veth(t, ha, "home0", host, "eth0")
	ha.Exec(t, "ip", "addr", "add", "2001:db8:aaaa::1/64", "dev", "home0", "nodad")
	host.Exec(t, "ip", "addr", "add", "2001:db8:aaaa::2/64", "dev", "eth0", "nodad")
	hoa := netip.MustParseAddr("2001:db8:aaaa::100")

	var proxy *Proxy
	var haMAC string
	if err := ha.Do(func() error {
		ifi, err := net.InterfaceByName("home0")
		if err != nil {
			return err
		}
		haMAC = ifi.HardwareAddr.String()
		proxy, err = New("home0", nil)
		if err != nil {
			return err
		}
		return proxy.Set([]netip.Addr{hoa})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	if out := ha.Exec(t, "ip", "-6", "neigh", "show", "proxy", "dev", "home0"); !strings.Contains(out, hoa.String()) {
		t.Fatalf("no proxy entry for %s: %q", hoa, out)
	}
	lladdr := func() string {
		host.Try("ping", "-6", "-c", "1", "-W", "1", hoa.String())
		out, _ := host.Try("ip", "-6", "neigh", "show", hoa.String(), "dev", "eth0")
		return out
	}
	if out := lladdr(); !strings.Contains(out, "lladdr "+haMAC) {
		t.Fatalf("home address not resolved to the home agent's MAC %s: %q", haMAC, out)
	}

	if err := proxy.Set(nil); err != nil {
		t.Fatal(err)
	}
	if out := ha.Exec(t, "ip", "-6", "neigh", "show", "proxy", "dev", "home0"); strings.Contains(out, hoa.String()) {
		t.Fatalf("proxy entry left after the last binding went: %q", out)
	}
	host.Exec(t, "ip", "-6", "neigh", "flush", "dev", "eth0")
	if out := lladdr(); strings.Contains(out, "lladdr "+haMAC) {
		t.Fatalf("home agent still answers for %s: %q", hoa, out)
	}
	if got := proxy.Proxied(); len(got) != 0 {
		t.Fatalf("Proxied() = %v after Set(nil)", got)
	}
}

// A proxy entry left by a killed home agent is adopted by the next one's
// Proxy (inside the given prefixes only), so that its first Set keeps
// it when wanted and removes it otherwise.
func TestProxyNDAdoptsLeftovers(t *testing.T) {
	p := nstest.Prefix()
	ha := nstest.New(t, p+"ha")
	host := nstest.New(t, p+"host")
	nstest.Veth(t, ha, "home0", host, "eth0")
	ha.Exec(t, "ip", "addr", "add", "2001:db8:aaaa::1/64", "dev", "home0", "nodad")
	for _, a := range []string{"2001:db8:aaaa::100", "2001:db8:aaaa::200", "2001:db8:bbbb::1"} {
		ha.Exec(t, "ip", "-6", "neigh", "add", "proxy", a, "dev", "home0")
	}
	keep := netip.MustParseAddr("2001:db8:aaaa::100")
	var adopted []netip.Addr
	if err := ha.Do(func() error {
		proxy, err := New("home0", nil)
		if err != nil {
			return err
		}
		defer proxy.Close()
		if adopted, err = proxy.Adopt([]netip.Prefix{netip.MustParsePrefix("2001:db8:aaaa::/64")}); err != nil {
			return err
		}
		if err := proxy.Set([]netip.Addr{keep}); err != nil {
			return err
		}
		out := ha.Exec(t, "ip", "-6", "neigh", "show", "proxy", "dev", "home0")
		if !strings.Contains(out, "2001:db8:aaaa::100") || strings.Contains(out, "2001:db8:aaaa::200") || !strings.Contains(out, "2001:db8:bbbb::1") {
			t.Errorf("proxy entries after adopting and setting %v: %q", keep, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(adopted) != 2 {
		t.Errorf("adopted %v, want the two inside 2001:db8:aaaa::/64", adopted)
	}
}
