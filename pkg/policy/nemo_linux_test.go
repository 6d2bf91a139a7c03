package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// A vehicle's mobile router: one mobile network on lan0, the three
// access interfaces as uplinks.
var (
	mnp      = netip.MustParsePrefix("2001:db8:bbbb::/64")
	vehicle  = &Networks{Prefixes: []netip.Prefix{mnp}, Ingress: []string{"lan0"}, Uplinks: []string{"eth0", "wlan0", "wwan0"}}
	vehicle2 = &Networks{
		Prefixes: []netip.Prefix{mnp, netip.MustParsePrefix("2001:db8:bbbc::/64")},
		Ingress:  []string{"lan0", "lan1"}, Uplinks: []string{"eth0"},
	}
)

func nemoPolicies(t testing.TB) []Policy {
	return []Policy{
		{Name: "passengers-web", Protocol: protoTCP, DstPort: Ports{443, 443}, SrcPrefix: netip.MustParsePrefix("2001:db8:bbbb::/64"), Prefer: pref("wwan*")},
		{Name: "voice", Protocol: protoUDP, DstPort: Ports{5060, 5061}, Prefer: pref("wlan*", "eth*")},
		{Name: "alice", User: "alice", Prefer: pref("bid:1")},
	}
}

// TestEngineGoldenMobileRouter: the rules and chains of a mobile router
// follow the bindings like the home address's, and its guards stay while
// no binding is alive.
func TestEngineGoldenMobileRouter(t *testing.T) {
	f := &fakeOps{}
	var out strings.Builder
	step := f.stepper(t, &out)
	var e *Engine
	step("start", func() (err error) { e, err = newEngine(testConfig(), f); return err })
	ctx := context.Background()
	pols := nemoPolicies(t)
	step("no binding yet: only the guards", func() error {
		return e.Apply(ctx, State{HomeAddress: hoa, Policies: pols, Networks: vehicle})
	})
	all := State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan}, Policies: pols, Networks: vehicle}
	step("three bindings", func() error { return e.Apply(ctx, all) })
	step("eth0 dies", func() error {
		return e.Apply(ctx, State{HomeAddress: hoa, Bindings: []Binding{wlan, wwan}, Policies: pols, Networks: vehicle})
	})
	step("every binding gone", func() error {
		return e.Apply(ctx, State{HomeAddress: hoa, Policies: pols, Networks: vehicle})
	})
	step("two networks on two ingress interfaces, wwan0 alone", func() error {
		return e.Apply(ctx, State{HomeAddress: hoa, Bindings: []Binding{wwan}, Policies: pols, Networks: vehicle2})
	})
	step("a mobile host again", func() error {
		return e.Apply(ctx, State{HomeAddress: hoa, Bindings: []Binding{wwan}, Policies: pols})
	})
	step("close", e.Close)
	golden(t, "engine-nemo.golden", out.String())
}

func TestTableGoldenMobileRouter(t *testing.T) {
	c := testConfig()
	pl := compile(&c, newMarks(c.Mark, c.Mask), State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan},
		Policies: nemoPolicies(t), Networks: vehicle2})
	golden(t, "table-nemo.golden", buildTable(&c, &pl).String())
}

func TestMobileRouterRefusesBadNetworks(t *testing.T) {
	e, err := newEngine(testConfig(), &fakeOps{})
	if err != nil {
		t.Fatal(err)
	}
	bad := []*Networks{
		{Ingress: []string{"lan0"}},
		{Prefixes: []netip.Prefix{mnp}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:bbbb::1/64")}, Ingress: []string{"lan0"}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Ingress: []string{"lan0"}},
		{Prefixes: []netip.Prefix{mnp}, Ingress: []string{"lan*"}},
		{Prefixes: []netip.Prefix{mnp}, Ingress: []string{"averyveryverylongname"}},
		{Prefixes: []netip.Prefix{mnp}, Ingress: []string{"lan0"}, Uplinks: []string{"lan0"}},
	}
	for _, n := range bad {
		st := State{HomeAddress: hoa, Bindings: []Binding{eth}, Networks: n}
		if err := e.Apply(context.Background(), st); !errors.Is(err, ErrInvalid) {
			t.Errorf("Apply(networks %+v) = %v, want ErrInvalid", n, err)
		}
	}
}

// TestKernelMobileRouter: the kernel takes the rules and chains as we
// build them, and routes a mobile network's packets from the ingress
// interface into the tunnels: the best binding's, or a policy's.
func TestKernelMobileRouter(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t, nstest.Prefix()+"nemo")
	ns.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	for _, d := range []string{"lan0", "lan1", "eth0", "wlan0", "wwan0"} {
		ns.Exec(t, "ip", "link", "add", d, "type", "veth", "peer", "name", d+"p") // no dummy module everywhere
		ns.Exec(t, "ip", "link", "set", d+"p", "up")
		ns.Exec(t, "ip", "link", "set", d, "up")
	}
	ns.Exec(t, "ip", "-6", "addr", "add", "2001:db8:bbbb::1/64", "dev", "lan0", "nodad")
	for b := 1; b <= 3; b++ {
		dev := dataplane.DeviceName(uint16(b))
		ns.Exec(t, "ip", "tuntap", "add", dev, "mode", "tun")
		ns.Exec(t, "ip", "link", "set", dev, "up")
		ns.Exec(t, "ip", "-6", "route", "add", "default", "dev", dev, "table", fmt.Sprint(1000+b))
	}
	// The main table's default route leaves by an uplink: a mobile
	// network's packet must never take it.
	ns.Exec(t, "ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad")
	ns.Exec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "eth0")

	pols := []Policy{
		{Name: "web", Protocol: protoTCP, DstPort: Ports{443, 443}, SrcPrefix: mnp, Prefer: pref("wwan*")},
	}
	cfg := &Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var e *Engine
	if err := ns.Do(func() (err error) { e, err = New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	c, _ := cfg.withDefaults()
	check := func(st State) {
		t.Helper()
		if err := e.Apply(ctx, st); err != nil {
			t.Fatal(err)
		}
		expectApplied(t, ns, &c, st)
	}
	routeOf := func(args ...string) string {
		t.Helper()
		out, err := ns.Try(append([]string{"ip", "-6", "route", "get", "2001:db8:cccc::1", "from", "2001:db8:bbbb::5", "iif", "lan0"}, args...)...)
		if err != nil {
			return "error: " + strings.TrimSpace(out)
		}
		return out
	}

	check(State{HomeAddress: hoa, Policies: pols, Networks: vehicle})
	if out := routeOf(); !strings.Contains(out, "error") {
		t.Errorf("no binding: a mobile network's packet is routed: %s", out)
	}
	st := State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan}, Policies: pols, Networks: vehicle}
	check(st)
	if out := routeOf(); !strings.Contains(out, "dev mcoab1") {
		t.Errorf("a mobile network's packet goes to %s, want eth0's tunnel mcoab1", out)
	}
	if out := routeOf("mark", fmt.Sprint(e.Marks()[3])); !strings.Contains(out, "dev mcoab3") {
		t.Errorf("with wwan0's mark: %s, want mcoab3", out)
	}
	if out, err := ns.Try("ip", "-6", "route", "get", "2001:db8:cccc::1", "from", "2001:db8:9::5", "iif", "lan0"); err == nil && strings.Contains(out, "mcoab") {
		t.Errorf("a source outside the mobile networks goes into a tunnel: %s", out)
	}
	check(State{HomeAddress: hoa, Bindings: []Binding{wlan, wwan}, Policies: pols, Networks: vehicle})
	if out := routeOf(); !strings.Contains(out, "dev mcoab2") {
		t.Errorf("eth0 gone: %s, want wlan0's tunnel mcoab2", out)
	}
	check(State{HomeAddress: hoa, Bindings: []Binding{wwan}, Policies: pols, Networks: vehicle2})
}
