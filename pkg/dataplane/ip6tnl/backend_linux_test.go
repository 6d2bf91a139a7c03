package ip6tnl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// fakeOps records what the kernel backend asks of netlink, as ip(8)-like
// lines, and keeps just enough state to answer lookups.
type fakeOps struct {
	log    []string
	links  map[string]bool // existing links made by the backend (or left over)
	fail   map[string]error
	closed bool
}

var fakeIfaces = map[string]kLink{
	"eth0":  {"eth0", 2, 1500},
	"wlan0": {"wlan0", 3, 1500},
	"wwan0": {"wwan0", 4, 1400},
}

func newFakeOps() *fakeOps { return &fakeOps{links: map[string]bool{}, fail: map[string]error{}} }

func (f *fakeOps) Do(line string) error {
	f.log = append(f.log, line)
	for prefix, err := range f.fail {
		if strings.HasPrefix(line, prefix) {
			return err
		}
	}
	return nil
}

func (f *fakeOps) take() []string {
	l := f.log
	f.log = nil
	return l
}

func (f *fakeOps) Link(name string, index int) (kLink, error) {
	for _, l := range fakeIfaces {
		if l.Name == name || (name == "" && l.Index == index) {
			return l, nil
		}
	}
	return kLink{}, fmt.Errorf("link %q: not found", name)
}

func (f *fakeOps) Links(prefix string) ([]string, error) {
	var out []string
	for n := range f.links {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeOps) AddIp6tnl(name string, local, remote netip.Addr, parent kLink, mtu int) error {
	err := f.Do(fmt.Sprintf("link add ip6tnl %s local %s remote %s dev %s mtu %d", name, local, remote, parent.Name, mtu))
	if err == nil {
		f.links[name] = true
	}
	return err
}

func (f *fakeOps) AddDummy(name string) error { return f.Do("link add dummy " + name) }
func (f *fakeOps) SetUp(name string) error    { return f.Do("link set " + name + " up") }
func (f *fakeOps) SetMTU(name string, mtu int) error {
	return f.Do(fmt.Sprintf("link set %s mtu %d", name, mtu))
}
func (f *fakeOps) Del(name string) error {
	delete(f.links, name)
	return f.Do("link del " + name)
}
func (f *fakeOps) AddrReplace(dev string, p netip.Prefix) error {
	return f.Do(fmt.Sprintf("addr replace %s dev %s nodad noprefixroute", p, dev))
}
func (f *fakeOps) AddrDel(dev string, p netip.Prefix) error {
	return f.Do(fmt.Sprintf("addr del %s dev %s", p, dev))
}
func (f *fakeOps) RouteReplace(table uint32, dev string, src netip.Addr) error {
	return f.Do(fmt.Sprintf("route replace default dev %s table %d src %s", dev, table, src))
}
func (f *fakeOps) Stats(name string) (dataplane.Counters, error) {
	if !f.links[name] {
		return dataplane.Counters{}, errors.New("no link")
	}
	return dataplane.Counters{TxPackets: 1, RxPackets: 2}, nil
}
func (f *fakeOps) Close() { f.closed = true }

func kernelTunnel(bid uint16, iface string, coa netip.Addr) dataplane.Tunnel {
	return dataplane.Tunnel{BID: bid, Iface: iface, CoA: coa, HA: pkttest.THA, HoA: pkttest.THoA}
}

func wantLines(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", step, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestKernelBackendReconciles(t *testing.T) {
	ops := newFakeOps()
	ops.links["mcoab9"] = true // left by a run that crashed
	b := newKernelBackend(dataplane.Config{TableBase: 1000, HomeDevice: "mcoa0", Logger: slog.New(slog.DiscardHandler)}, ops)
	ctx := context.Background()

	err := b.SetTunnels(ctx, []dataplane.Tunnel{kernelTunnel(2, "wlan0", pkttest.TCoA[1]), kernelTunnel(1, "eth0", pkttest.TCoA[0])})
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "first set", ops.take(),
		"link del mcoab9",
		"link add dummy mcoa0",
		"link set mcoa0 up",
		"addr replace 2001:db8:aaaa::100/128 dev mcoa0 nodad noprefixroute",
		"link add ip6tnl mcoab1 local 2001:db8:1::ff:fe00:1 remote 2001:db8:aaaa::1 dev eth0 mtu 1460",
		"link set mcoab1 up",
		"route replace default dev mcoab1 table 1001 src 2001:db8:aaaa::100",
		"link add ip6tnl mcoab2 local 2001:db8:2::ff:fe00:2 remote 2001:db8:aaaa::1 dev wlan0 mtu 1460",
		"link set mcoab2 up",
		"route replace default dev mcoab2 table 1002 src 2001:db8:aaaa::100",
	)

	// The same set again changes nothing but re-asserts the routes.
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{kernelTunnel(1, "eth0", pkttest.TCoA[0]), kernelTunnel(2, "wlan0", pkttest.TCoA[1])}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "same set", ops.take(),
		"route replace default dev mcoab1 table 1001 src 2001:db8:aaaa::100",
		"route replace default dev mcoab2 table 1002 src 2001:db8:aaaa::100",
	)

	// BID 1 moves to a new CoA (a new link), BID 2 only changes MTU, BID
	// 3 appears on wwan0 (MTU 1400 -> 1360).
	moved := kernelTunnel(1, "eth0", netip.MustParseAddr("2001:db8:1::99"))
	mtu := kernelTunnel(2, "wlan0", pkttest.TCoA[1])
	mtu.MTU = 1400
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{moved, mtu, kernelTunnel(3, "wwan0", pkttest.TCoA[2])}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "move, MTU, new", ops.take(),
		"link del mcoab1",
		"link add ip6tnl mcoab1 local 2001:db8:1::99 remote 2001:db8:aaaa::1 dev eth0 mtu 1460",
		"link set mcoab1 up",
		"route replace default dev mcoab1 table 1001 src 2001:db8:aaaa::100",
		"link set mcoab2 mtu 1400",
		"route replace default dev mcoab2 table 1002 src 2001:db8:aaaa::100",
		"link add ip6tnl mcoab3 local 2001:db8:3::ff:fe00:3 remote 2001:db8:aaaa::1 dev wwan0 mtu 1360",
		"link set mcoab3 up",
		"route replace default dev mcoab3 table 1003 src 2001:db8:aaaa::100",
	)
	if st := b.Stats(); len(st.Tunnels) != 3 || st.Tunnels[3].RxPackets != 2 {
		t.Fatalf("stats %+v", st)
	}

	// A failing link is reported and retried by the next call.
	ops.fail["link add ip6tnl mcoab4"] = errors.New("EPERM")
	err = b.SetTunnels(ctx, []dataplane.Tunnel{moved, mtu, kernelTunnel(4, "eth0", pkttest.TCoA[0])})
	if err == nil || !strings.Contains(err.Error(), "bid 4") {
		t.Fatalf("err %v, want one naming bid 4", err)
	}
	ops.take()
	delete(ops.fail, "link add ip6tnl mcoab4")
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{moved, mtu, kernelTunnel(4, "eth0", pkttest.TCoA[0])}); err != nil {
		t.Fatal(err)
	}
	if got := ops.take(); !slices.Contains(got, "link add ip6tnl mcoab4 local 2001:db8:1::ff:fe00:1 remote 2001:db8:aaaa::1 dev eth0 mtu 1460") {
		t.Fatalf("retry did not add mcoab4: %q", got)
	}

	// A vanished interface takes only its own tunnel down.
	gone := kernelTunnel(4, "eth9", pkttest.TCoA[0])
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{moved, mtu, gone}); err == nil || !strings.Contains(err.Error(), "eth9") {
		t.Fatalf("err %v, want one naming eth9", err)
	}
	wantLines(t, "interface gone", ops.take(),
		"link del mcoab4",
		"route replace default dev mcoab1 table 1001 src 2001:db8:aaaa::100",
		"route replace default dev mcoab2 table 1002 src 2001:db8:aaaa::100",
	)

	// Bad input changes nothing.
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{kernelTunnel(0, "eth0", pkttest.TCoA[0])}); !errors.Is(err, dataplane.ErrInvalid) {
		t.Fatalf("BID 0: %v", err)
	}
	if got := ops.take(); len(got) != 0 {
		t.Fatalf("invalid set touched netlink: %q", got)
	}

	// Close removes everything.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := ops.take()
	slices.Sort(got[:2])
	wantLines(t, "close", got, "link del mcoab1", "link del mcoab2", "link del mcoa0")
	if !ops.closed {
		t.Fatal("ops not closed")
	}
	if err := b.SetTunnels(ctx, nil); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestKernelBackendNewHomeAddress(t *testing.T) {
	ops := newFakeOps()
	b := newKernelBackend(dataplane.Config{TableBase: 2000, HomeDevice: "mcoa0", Logger: slog.New(slog.DiscardHandler)}, ops)
	ctx := context.Background()
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{kernelTunnel(1, "eth0", pkttest.TCoA[0])}); err != nil {
		t.Fatal(err)
	}
	ops.take()
	t2 := kernelTunnel(1, "eth0", pkttest.TCoA[0])
	t2.HoA = netip.MustParseAddr("2001:db8:aaaa::200")
	if err := b.SetTunnels(ctx, []dataplane.Tunnel{t2}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "new home address", ops.take(),
		"addr del 2001:db8:aaaa::100/128 dev mcoa0",
		"addr replace 2001:db8:aaaa::200/128 dev mcoa0 nodad noprefixroute",
		"route replace default dev mcoab1 table 2001 src 2001:db8:aaaa::200",
	)
}
