package netmon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// fakeKernel is a netlink side under the test's control, in the manner of
// mdlayher/netlink's nltest: the test writes kernel messages (encoded as
// the kernel encodes them, decoded by the real decoder) and the dumps.
type fakeKernel struct {
	mu      sync.Mutex
	state   dump
	sub     *fakeSub
	subs    int
	dumps   int
	subFail bool
}

type fakeSub struct {
	msgs   chan []syscall.NetlinkMessage
	errc   chan error
	closed chan struct{}
	once   sync.Once
}

func (s *fakeSub) receive() ([]update, error) {
	select {
	case m := <-s.msgs:
		return decode(m), nil
	case err := <-s.errc:
		return nil, err
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *fakeSub) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (k *fakeKernel) subscribe(bool) (subscription, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.subFail {
		return nil, errors.New("no netlink today")
	}
	k.subs++
	k.sub = &fakeSub{msgs: make(chan []syscall.NetlinkMessage, 16), errc: make(chan error, 1), closed: make(chan struct{})}
	return k.sub, nil
}

func (k *fakeKernel) dump(links, routing bool) (*dump, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dumps++
	d := &dump{routing: routing}
	if links {
		d.links, d.addrs = slices.Clone(k.state.links), slices.Clone(k.state.addrs)
	}
	if routing {
		d.routes, d.rules = slices.Clone(k.state.routes), slices.Clone(k.state.rules)
	}
	return d, nil
}

func (k *fakeKernel) Close() error { return nil }

func (k *fakeKernel) set(f func(d *dump)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f(&k.state)
}

// send delivers messages on the current subscription.
func (k *fakeKernel) send(msgs ...syscall.NetlinkMessage) {
	k.mu.Lock()
	s := k.sub
	k.mu.Unlock()
	s.msgs <- msgs
}

func (k *fakeKernel) counts() (subs, dumps int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.subs, k.dumps
}

func message(typ uint16, parts ...[]byte) syscall.NetlinkMessage {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Len: uint32(unix.NLMSG_HDRLEN + len(b)), Type: typ}, Data: b}
}

// linkMsg encodes an RTM_NEWLINK or RTM_DELLINK of an Ethernet device.
func linkMsg(typ uint16, index int, name string, flags uint32) syscall.NetlinkMessage {
	info := nl.NewIfInfomsg(unix.AF_UNSPEC)
	info.Index, info.Flags, info.Type = int32(index), flags, unix.ARPHRD_ETHER
	oper := uint8(netlink.OperUp)
	if flags&unix.IFF_LOWER_UP == 0 {
		oper = uint8(netlink.OperLowerLayerDown)
	}
	return message(typ, info.Serialize(),
		nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)).Serialize(),
		nl.NewRtAttr(unix.IFLA_OPERSTATE, []byte{oper}).Serialize())
}

// addrMsg encodes an RTM_NEWADDR or RTM_DELADDR of an IPv6 address.
func addrMsg(typ uint16, index int, cidr string, flags uint32, pref, valid uint32) syscall.NetlinkMessage {
	p := netip.MustParsePrefix(cidr)
	m := nl.NewIfAddrmsg(unix.AF_INET6)
	m.Index, m.Prefixlen = uint32(index), uint8(p.Bits())
	ci := nl.IfaCacheInfo{IfaCacheinfo: unix.IfaCacheinfo{Prefered: pref, Valid: valid}}
	return message(typ, m.Serialize(),
		nl.NewRtAttr(unix.IFA_ADDRESS, p.Addr().AsSlice()).Serialize(),
		nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flags)).Serialize(),
		nl.NewRtAttr(unix.IFA_CACHEINFO, ci.Serialize()).Serialize())
}

func dev(index int, name string, flags uint32) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name, RawFlags: flags}}
}

func addr(index int, cidr string) netlink.Addr {
	p := netip.MustParsePrefix(cidr)
	return netlink.Addr{LinkIndex: index, IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)},
		PreferedLft: forever, ValidLft: forever}
}

const upFlags = unix.IFF_UP | unix.IFF_LOWER_UP

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeMonitor runs a Monitor on a fake kernel until the test ends.
func fakeMonitor(t *testing.T, cfg *Config, init func(d *dump)) (*Monitor, *fakeKernel, *clock.Fake) {
	t.Helper()
	k := &fakeKernel{}
	k.set(init)
	fc := clock.NewFake(t0)
	cfg.Clock = fc
	m, err := newMonitor(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	eventually(t, "Run", m.running.Load)
	return m, k, fc
}

// run runs m until the test ends, then closes it.
func run(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 100*time.Microsecond, what, cond)
}

// waitGen waits for a State newer than gen and returns it.
func waitGen(t *testing.T, m *Monitor, gen uint64) *State {
	t.Helper()
	eventually(t, "a new state", func() bool { return m.Current().Gen > gen })
	return m.Current()
}

func addrsOf(s *State) []string {
	var out []string
	for _, a := range s.Addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

func TestMonitorAppliesNotifications(t *testing.T) {
	m, k, fc := fakeMonitor(t, &Config{}, func(d *dump) {
		d.links = []netlink.Link{dev(3, "eth1", upFlags), dev(2, "eth0", upFlags)}
		d.addrs = []netlink.Addr{addr(2, "2001:db8:1::1/64"), addr(3, "2001:db8:2::1/64")}
	})
	s := m.Current()
	if s.Gen != 1 || len(s.Links) != 2 || s.Links[0].Attrs().Name != "eth0" {
		t.Fatalf("first state %+v", s)
	}
	changes, stop := m.Changes(Links)
	defer stop()

	// A new address comes first in its link's list (the kernel's order);
	// its lifetimes count down from when it was heard.
	k.send(addrMsg(unix.RTM_NEWADDR, 2, "2001:db8:1::2/64", unix.IFA_F_NODAD, 100, 200))
	s = waitGen(t, m, s.Gen)
	<-changes
	if got := addrsOf(s); !slices.Equal(got, []string{"2001:db8:1::2/64", "2001:db8:1::1/64", "2001:db8:2::1/64"}) {
		t.Errorf("addresses %v", got)
	}
	fc.Advance(10 * time.Second)
	k.send(linkMsg(unix.RTM_NEWLINK, 3, "eth1", unix.IFF_UP))
	s = waitGen(t, m, s.Gen)
	if a := s.Addrs[0]; a.PreferedLft != 90 || a.ValidLft != 190 || a.Flags != unix.IFA_F_NODAD {
		t.Errorf("after 10 s: %+v", a)
	}
	if s.Addrs[1].PreferedLft != forever {
		t.Errorf("a permanent address: %+v", s.Addrs[1])
	}

	// eth1 lost its carrier and got it back before anyone read: the count
	// shows it.
	if s.CarrierLosses(3) != 1 || s.CarrierLosses(2) != 0 {
		t.Errorf("losses %d %d", s.CarrierLosses(2), s.CarrierLosses(3))
	}
	k.send(linkMsg(unix.RTM_NEWLINK, 3, "eth1", upFlags))
	s = waitGen(t, m, s.Gen)
	if l := s.Links[1].Attrs(); l.OperState != netlink.OperUp || s.CarrierLosses(3) != 1 {
		t.Errorf("eth1 back: %+v, losses %d", l, s.CarrierLosses(3))
	}

	// A wireless event is an RTM_NEWLINK with IFLA_WIRELESS alone: not a
	// description of the link.
	wext := nl.NewIfInfomsg(unix.AF_UNSPEC)
	wext.Index = 3
	k.send(message(unix.RTM_NEWLINK, wext.Serialize(), nl.NewRtAttr(unix.IFLA_WIRELESS, []byte{8, 0, 0x15, 0x8b, 0, 0, 0, 0}).Serialize()),
		addrMsg(unix.RTM_NEWADDR, 3, "2001:db8:2::2/64", 0, forever, forever))
	s = waitGen(t, m, s.Gen)
	if l := s.Links[1].Attrs(); l.Name != "eth1" || l.OperState != netlink.OperUp {
		t.Errorf("after a wireless event: %+v", l)
	}

	// Deletions, several in one message batch: one State.
	k.send(addrMsg(unix.RTM_DELADDR, 2, "2001:db8:1::1/64", 0, forever, forever),
		linkMsg(unix.RTM_DELLINK, 3, "eth1", 0))
	s = waitGen(t, m, s.Gen)
	if got := addrsOf(s); !slices.Equal(got, []string{"2001:db8:1::2/64"}) || len(s.Links) != 1 {
		t.Errorf("after deletions: %v, %d links", got, len(s.Links))
	}
	if s.CarrierLosses(3) != 2 {
		t.Errorf("a deleted link's losses: %d", s.CarrierLosses(3))
	}
	// No routing here: route messages are ignored.
	_, dumps := k.counts()
	k.send(message(unix.RTM_NEWROUTE, make([]byte, unix.SizeofRtMsg)), addrMsg(unix.RTM_NEWADDR, 2, "2001:db8:1::3/64", 0, forever, forever))
	s = waitGen(t, m, s.Gen)
	if _, d := k.counts(); d != dumps || s.Routes != nil {
		t.Errorf("a route message without Routes: %d dumps, routes %v", d-dumps, s.Routes)
	}
}

func TestMonitorRoutes(t *testing.T) {
	rule := netlink.NewRule()
	rule.Priority, rule.Table = 5100, 101
	m, k, _ := fakeMonitor(t, &Config{Routes: true}, func(d *dump) { d.rules = []netlink.Rule{*rule} })
	s := m.Current()
	if len(s.Rules) != 1 || s.Routes != nil {
		t.Fatalf("first state: rules %v routes %v", s.Rules, s.Routes)
	}
	k.set(func(d *dump) {
		d.rules = nil
		d.routes = []netlink.Route{{Table: 101, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}}
	})
	links, stopLinks := m.Changes(Links)
	defer stopLinks()
	routing, stopRouting := m.Changes(Routes)
	defer stopRouting()
	_, dumps := k.counts()
	k.send(message(unix.RTM_DELRULE, make([]byte, 12)), message(unix.RTM_NEWROUTE, make([]byte, unix.SizeofRtMsg)))
	s = waitGen(t, m, s.Gen)
	if len(s.Rules) != 0 || len(s.Routes) != 1 {
		t.Errorf("after the change: rules %v routes %v", s.Rules, s.Routes)
	}
	if _, d := k.counts(); d != dumps+1 {
		t.Errorf("%d dumps for one batch of routing messages", d-dumps)
	}
	// Only routing changed: those who watch links are not woken.
	<-routing
	k.send(linkMsg(unix.RTM_NEWLINK, 2, "eth0", upFlags))
	<-links
	if len(routing) != 0 || len(links) != 0 {
		t.Errorf("more notifications: %d for routes, %d for links", len(routing), len(links))
	}
	if s = m.Current(); len(s.Links) != 1 || len(s.Routes) != 1 {
		t.Errorf("after a link change: %+v", s)
	}
}

// A subscription that fails (ENOBUFS: events were lost) is replaced, and
// everything is read again; a failing resubscription is retried.
func TestMonitorResubscribes(t *testing.T) {
	m, k, fc := fakeMonitor(t, &Config{}, func(d *dump) {
		d.links = []netlink.Link{dev(2, "eth0", upFlags)}
		d.addrs = []netlink.Addr{addr(2, "2001:db8:1::1/64")}
	})
	gen := m.Current().Gen
	// Changes whose events were lost.
	k.set(func(d *dump) { d.addrs = []netlink.Addr{addr(2, "2001:db8:1::4/64")} })
	k.mu.Lock()
	k.subFail = true
	k.sub.errc <- unix.ENOBUFS
	k.mu.Unlock()
	eventually(t, "a retry armed", func() bool { return len(fc.Pending()) > 0 })
	if subs, _ := k.counts(); subs != 1 {
		t.Errorf("%d subscriptions", subs)
	}
	k.set(func(*dump) { k.subFail = false })
	fc.Advance(minBackoff)
	s := waitGen(t, m, gen)
	if subs, _ := k.counts(); subs != 2 || !slices.Equal(addrsOf(s), []string{"2001:db8:1::4/64"}) {
		t.Errorf("%d subscriptions, addresses %v", subs, addrsOf(s))
	}
	// The new subscription is read.
	k.send(addrMsg(unix.RTM_NEWADDR, 2, "2001:db8:1::5/64", 0, forever, forever))
	s = waitGen(t, m, s.Gen)
	if len(s.Addrs) != 2 {
		t.Errorf("addresses %v", addrsOf(s))
	}
}

// A consumer that never reads holds up neither the monitor nor others,
// and finds one notification for many States.
func TestMonitorSlowConsumer(t *testing.T) {
	m, k, _ := fakeMonitor(t, &Config{}, func(d *dump) { d.links = []netlink.Link{dev(2, "eth0", upFlags)} })
	slow, stopSlow := m.Changes(Links)
	defer stopSlow()
	fast, stopFast := m.Changes(Links)
	defer stopFast()
	gen := m.Current().Gen
	for i := range 50 {
		k.send(addrMsg(unix.RTM_NEWADDR, 2, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i + 1)}), 64).String(), 0, forever, forever))
		select {
		case <-fast:
		case <-time.After(5 * time.Second):
			t.Fatal("the fast consumer was not told")
		}
	}
	s := waitGen(t, m, gen)
	eventually(t, "all addresses", func() bool { s = m.Current(); return len(s.Addrs) == 50 })
	if len(slow) != 1 {
		t.Errorf("%d notifications pending for the slow consumer", len(slow))
	}
}

func TestMonitorRefresh(t *testing.T) {
	k := &fakeKernel{}
	m, err := newMonitor(&Config{Clock: clock.NewFake(t0)}, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Refresh(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Refresh before Run: %v", err)
	}
	m.Close()

	m, k, _ = fakeMonitor(t, &Config{}, func(*dump) {})
	k.set(func(d *dump) { d.links = []netlink.Link{dev(7, "wwan0", upFlags)} })
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := m.Current(); len(s.Links) != 1 {
		t.Errorf("after Refresh: %+v", s.Links)
	}
	if err := m.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
}
