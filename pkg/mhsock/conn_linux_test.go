package mhsock

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/proto"
)

// requireE2E skips the test unless it runs as root with ip, nft and
// sysctl, and fails it instead when MCOA_E2E=1.
func requireE2E(t testing.TB) { t.Helper(); nstest.Require(t, "nft", "sysctl") }

// newNS makes a namespace without duplicate address detection, so that
// addresses are usable at once.
func newNS(t testing.TB, name string) *nstest.NS {
	ns := nstest.New(t, name)
	ns.Exec(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return ns
}

// listenIn opens a Conn inside ns and closes it in t.Cleanup.
func listenIn(t testing.TB, ns *nstest.NS, cfg *Config) *Conn {
	t.Helper()
	var c *Conn
	if err := ns.Do(func() (err error) { c, err = Listen(cfg); return err }); err != nil {
		t.Fatalf("Listen in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ifindexIn(t testing.TB, ns *nstest.NS, name string) int {
	t.Helper()
	var idx int
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			idx = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatalf("interface %s in %s: %v", name, ns.Name, err)
	}
	return idx
}

// recv waits for one packet, failing the test after a generous timeout.
func recv(t testing.TB, c *Conn, r *Received) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Recv(ctx, r); err != nil {
		t.Fatalf("Recv: %v (stats %+v)", err, c.Stats())
	}
}

// icmpWatch counts the ICMPv6 Parameter Problem messages that reach a
// namespace, by code, with a raw ICMPv6 socket there.
type icmpWatch struct {
	mu    sync.Mutex
	codes map[uint8]int
}

func watchICMP(t testing.TB, ns *nstest.NS) *icmpWatch {
	t.Helper()
	w := &icmpWatch{codes: map[uint8]int{}}
	var f *os.File
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), "icmp")
		return nil
	}); err != nil {
		t.Fatalf("ICMPv6 socket in %s: %v", ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			n, err := f.Read(b)
			if err != nil {
				return
			}
			if n >= 2 && b[0] == 4 { // Parameter Problem
				w.mu.Lock()
				w.codes[b[1]]++
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { f.Close(); <-done })
	return w
}

func (w *icmpWatch) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.codes {
		n += v
	}
	return n
}

// kernelHasMIP6 reports whether the running kernel has the MIPv6 module
// loaded (Debian and Ubuntu build it as a module).
func kernelHasMIP6() bool {
	_, err := os.Stat("/sys/module/mip6")
	return err == nil
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 2*time.Second, 10*time.Millisecond, what, cond)
}

func suppressed(t testing.TB, c *Conn) uint64 {
	t.Helper()
	n, err := c.ICMPSuppressed()
	if err != nil {
		t.Fatalf("ICMPSuppressed: %v", err)
	}
	return n
}

func tableExists(t testing.TB, ns *nstest.NS, name string) bool {
	t.Helper()
	var found bool
	if err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv6)
		if err != nil {
			return err
		}
		for _, tb := range tables {
			found = found || tb.Name == name
		}
		return nil
	}); err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	return found
}

// pair is two namespaces joined by one veth: a (the mobile node, tCoA on
// "va") and b (the home agent, tHA on "vb").
type pair struct {
	a, b *nstest.NS
}

func newPair(t *testing.T) pair {
	requireE2E(t)
	p := nstest.Prefix()
	a, b := newNS(t, p+"a"), newNS(t, p+"b")
	nstest.Veth(t, a, "va", b, "vb")
	a.Exec(t, "ip", "addr", "add", tCoA.String()+"/64", "dev", "va", "nodad")
	b.Exec(t, "ip", "addr", "add", tHA.String()+"/64", "dev", "vb", "nodad")
	return pair{a, b}
}

// TestBindingUpdateRoundTrip: a BU with a Home Address option from A to B,
// a BA with a type 2 routing header back, a plain Mobility Header; no
// Parameter Problem reaches either side, because each side's rules drop
// the one its kernel makes; the tables go with Close.
func TestBindingUpdateRoundTrip(t *testing.T) {
	n := newPair(t)
	icmpA, icmpB := watchICMP(t, n.a), watchICMP(t, n.b)
	ca := listenIn(t, n.a, &Config{NFTable: "mcoad_mh_test", Mark: 0x4d48})
	cb := listenIn(t, n.b, &Config{NFTable: "mcoa_ha_mh_test", NoPin: true})
	if !tableExists(t, n.a, "mcoad_mh_test") || !tableExists(t, n.b, "mcoa_ha_mh_test") {
		t.Fatal("nftables tables missing after Listen")
	}

	var r Received
	bu := testBU()
	if err := ca.Send(bu, nil); err != nil {
		t.Fatalf("send BU: %v", err)
	}
	recv(t, cb, &r)
	p := &r.Packet
	if p.Src != tCoA || p.Dst != tHA || p.HomeAddress != tHoA || p.RoutingHome.IsValid() {
		t.Errorf("BU addresses: src %s dst %s hoa %s rh %s", p.Src, p.Dst, p.HomeAddress, p.RoutingHome)
	}
	if p.MH.Type != proto.TypeBU || p.MH.Sequence != bu.MH.Sequence || len(p.MH.Options.BIDs) != 1 || p.MH.Options.BIDs[0].ID != 3 {
		t.Errorf("BU message: %+v", p.MH)
	}
	if want := ifindexIn(t, n.b, "vb"); r.Ifindex != want || r.IfName != "vb" {
		t.Errorf("BU came in on %d %q, want %d vb", r.Ifindex, r.IfName, want)
	}
	if len(p.MHBytes) < 8 || !strings.HasSuffix(string(r.Raw), string(p.MHBytes)) {
		t.Errorf("MHBytes %x not the tail of %x", p.MHBytes, r.Raw)
	}

	if err := cb.Send(testBA(), nil); err != nil {
		t.Fatalf("send BA: %v", err)
	}
	recv(t, ca, &r)
	if p.Src != tHA || p.Dst != tCoA || p.RoutingHome != tHoA || p.HomeAddress.IsValid() || p.MH.Type != proto.TypeBA {
		t.Errorf("BA: src %s dst %s rh %s hoa %s type %v", p.Src, p.Dst, p.RoutingHome, p.HomeAddress, p.MH.Type)
	}
	if r.IfName != "va" {
		t.Errorf("BA came in on %q", r.IfName)
	}

	// A plain Mobility Header (CoTI): the raw socket of protocol 135 keeps
	// the kernel quiet, so no rule has to fire for it.
	coti := &proto.Packet{Src: tCoA, Dst: tHA, HopLimit: 64,
		MH: proto.Message{Type: proto.TypeCoTI, Cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}}
	if err := ca.Send(coti, nil); err != nil {
		t.Fatalf("send CoTI: %v", err)
	}
	recv(t, cb, &r)
	if r.Packet.MH.Type != proto.TypeCoTI || r.Packet.MH.Cookie != coti.MH.Cookie {
		t.Errorf("CoTI: %+v", r.Packet.MH)
	}

	// Each kernel answered its packet with a Parameter Problem (code 2 in
	// B for the HAO, code 0 in A for the routing header) and the rules
	// dropped it.
	if !kernelHasMIP6() { // a MIPv6 kernel drops these packets silently
		eventually(t, "B's rule to drop the HAO reply", func() bool { return suppressed(t, cb) >= 1 })
		eventually(t, "A's rule to drop the routing header reply", func() bool { return suppressed(t, ca) >= 1 })
	}
	counts, err := cb.nft.counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts["mobility header"] != 0 {
		t.Errorf("the kernel answered a plain Mobility Header despite the raw socket: %v", counts)
	}
	// Let any leaked ICMP arrive: a BU round trip after the fact.
	if err := ca.Send(bu, nil); err != nil {
		t.Fatal(err)
	}
	recv(t, cb, &r)
	if a, b := icmpA.total(), icmpB.total(); a != 0 || b != 0 {
		t.Errorf("Parameter Problems leaked: %d reached A, %d reached B", a, b)
	}
	if s := cb.Stats(); s.Received != 3 || s.Checksum+s.Malformed+s.NotMH != 0 {
		t.Errorf("B stats %+v", s)
	}

	if err := ca.Close(); err != nil {
		t.Errorf("Close A: %v", err)
	}
	if err := cb.Close(); err != nil {
		t.Errorf("Close B: %v", err)
	}
	if tableExists(t, n.a, "mcoad_mh_test") || tableExists(t, n.b, "mcoa_ha_mh_test") {
		t.Error("nftables table still there after Close")
	}
	if err := cb.Recv(context.Background(), &r); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Recv after Close: %v", err)
	}
	if err := ca.Send(bu, nil); err == nil {
		t.Error("Send after Close succeeded")
	}
}

// TestICMPWithoutFilter is the control for the test above: without the
// table, this kernel (no CONFIG_IPV6_MIP6) does answer a Home Address
// option with Parameter Problem code 2.
func TestICMPWithoutFilter(t *testing.T) {
	n := newPair(t)
	if kernelHasMIP6() {
		t.Skip("the kernel has MIPv6: it does not answer the Home Address option")
	}
	icmpA := watchICMP(t, n.a)
	ca := listenIn(t, n.a, &Config{NoICMPFilter: true})
	cb := listenIn(t, n.b, &Config{NoICMPFilter: true, NoPin: true})
	if err := ca.Send(testBU(), nil); err != nil {
		t.Fatal(err)
	}
	var r Received
	recv(t, cb, &r)
	eventually(t, "a Parameter Problem in A", func() bool { return icmpA.total() > 0 })
	icmpA.mu.Lock()
	defer icmpA.mu.Unlock()
	if icmpA.codes[2] == 0 {
		t.Errorf("Parameter Problem codes %v, want code 2", icmpA.codes)
	}
}

// TestStaleTableReplaced: a table of the same name left by a crashed run
// (with a rule that would drop everything we send) is replaced.
func TestStaleTableReplaced(t *testing.T) {
	n := newPair(t)
	n.a.Exec(t, "nft", "add table ip6 mcoad_mh; add chain ip6 mcoad_mh output { type filter hook output priority 0; policy drop; }")
	ca := listenIn(t, n.a, nil)
	cb := listenIn(t, n.b, &Config{NoPin: true})
	if err := ca.Send(testBU(), nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	var r Received
	recv(t, cb, &r)
	if out := n.a.Exec(t, "nft", "list", "table", "ip6", "mcoad_mh"); strings.Contains(out, "policy drop") {
		t.Errorf("stale table kept:\n%s", out)
	}
}

// TestSendPinsInterface: A has two links to B and prefers the first for
// everything; a packet from the second link's address must still leave
// through the second link. The second link appears after both Conns
// listen, so B's AF_PACKET socket must also cover new interfaces.
func TestSendPinsInterface(t *testing.T) {
	requireE2E(t)
	p := nstest.Prefix()
	a, b := newNS(t, p+"a"), newNS(t, p+"b")
	coa1, coa2 := netip.MustParseAddr("2001:db8:1::2"), netip.MustParseAddr("2001:db8:2::2")
	ha := netip.MustParseAddr("2001:db8:ff::1")
	b.Exec(t, "ip", "addr", "add", ha.String()+"/128", "dev", "lo")

	ca := listenIn(t, a, nil)
	caFree := listenIn(t, a, &Config{NoPin: true, NoICMPFilter: true})
	cb := listenIn(t, b, &Config{NoPin: true})

	nstest.Veth(t, a, "va1", b, "vb1")
	nstest.Veth(t, a, "va2", b, "vb2")
	a.Exec(t, "ip", "addr", "add", coa1.String()+"/64", "dev", "va1", "nodad")
	a.Exec(t, "ip", "addr", "add", coa2.String()+"/64", "dev", "va2", "nodad")
	b.Exec(t, "ip", "addr", "add", "2001:db8:1::1/64", "dev", "vb1", "nodad")
	b.Exec(t, "ip", "addr", "add", "2001:db8:2::1/64", "dev", "vb2", "nodad")
	a.Exec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "va1", "metric", "100")
	a.Exec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:2::1", "dev", "va2", "metric", "200")

	bu := func(src netip.Addr) *proto.Packet {
		p := testBU()
		p.Src, p.Dst = src, ha
		return p
	}
	var r Received
	for _, c := range []struct {
		conn *Conn
		src  netip.Addr
		want string
	}{
		{ca, coa1, "vb1"},
		{ca, coa2, "vb2"},
		{caFree, coa2, "vb1"}, // control: the routing table's choice
	} {
		if err := c.conn.Send(bu(c.src), nil); err != nil {
			t.Fatalf("send from %s: %v", c.src, err)
		}
		recv(t, cb, &r)
		if r.Packet.Src != c.src || r.IfName != c.want {
			t.Errorf("BU from %s (pinned %v) came in on %q, want %q", r.Packet.Src, !c.conn.noPin, r.IfName, c.want)
		}
	}

	// A mark of its own routes the packet by the rule for that mark (the
	// mobile node's HoTI into an eBPF tunnel), whatever the source's link.
	a.Exec(t, "ip", "-6", "rule", "add", "fwmark", "0x4e000000/0xff000000", "lookup", "100")
	a.Exec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:2::1", "dev", "va2", "table", "100")
	if err := ca.SendMarked(0x4e000000, bu(coa1), nil); err != nil {
		t.Fatalf("marked send: %v", err)
	}
	if recv(t, cb, &r); r.Packet.Src != coa1 || r.IfName != "vb2" {
		t.Errorf("marked BU from %s came in on %q, want vb2", r.Packet.Src, r.IfName)
	}

	// A source that is nobody's address.
	if err := ca.Send(bu(netip.MustParseAddr("2001:db8:9::9")), nil); !errors.Is(err, ErrNoInterface) {
		t.Errorf("send from a foreign address: %v", err)
	}
	if err := ca.SendRaw([]byte{0x45, 0}, 0); !errors.Is(err, ErrBadPacket) {
		t.Errorf("SendRaw of garbage: %v", err)
	}
}

// TestRecvContext: cancelling the context wakes Recv; a later Recv with a
// fresh context works again.
func TestRecvContext(t *testing.T) {
	n := newPair(t)
	ca := listenIn(t, n.a, &Config{NoICMPFilter: true})
	cb := listenIn(t, n.b, &Config{NoICMPFilter: true, NoPin: true})
	var r Received
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cb.Recv(ctx, &r) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv after cancel: %v", err)
	}
	if err := ca.Send(testBU(), nil); err != nil {
		t.Fatal(err)
	}
	recv(t, cb, &r)
	if r.Packet.MH.Type != proto.TypeBU {
		t.Errorf("got %v", r.Packet.MH.Type)
	}
}

// BenchmarkSendRecv is a BU from one namespace to another through the
// Conns: two syscalls, a veth, the kernel's filter and the parse.
func BenchmarkSendRecv(b *testing.B) {
	requireE2E(b)
	p := nstest.Prefix()
	na, nb := newNS(b, p+"a"), newNS(b, p+"b")
	nstest.Veth(b, na, "va", nb, "vb")
	na.Exec(b, "ip", "addr", "add", tCoA.String()+"/64", "dev", "va", "nodad")
	nb.Exec(b, "ip", "addr", "add", tHA.String()+"/64", "dev", "vb", "nodad")
	ca := listenIn(b, na, &Config{NoICMPFilter: true})
	cb := listenIn(b, nb, &Config{NoPin: true})
	bu := testBU()
	var r Received
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := ca.Send(bu, nil); err != nil {
			b.Fatal(err)
		}
		if err := cb.Recv(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecvDoesNotAllocate: in steady state (same Received, same context)
// Recv allocates nothing per packet.
func TestRecvDoesNotAllocate(t *testing.T) {
	n := newPair(t)
	ca := listenIn(t, n.a, &Config{NoICMPFilter: true})
	cb := listenIn(t, n.b, &Config{NoICMPFilter: true, NoPin: true})
	const runs = 50
	pkt := mustAppend(t, testBU())
	ifindex := ifindexIn(t, n.a, "va")
	// Queue them all first: AllocsPerRun then measures Recv alone.
	for range runs + 2 {
		if err := ca.SendRaw(pkt, ifindex); err != nil {
			t.Fatal(err)
		}
	}
	var r Received
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cb.Recv(ctx, &r); err != nil { // warm up r and the context watch
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(runs, func() {
		if err := cb.Recv(ctx, &r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Recv allocates %.1f times per packet", allocs)
	}
}
