package bpftun

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/mcoad/mcoad/internal/nstest"
)

// TestCorrespondentIn: a packet with a Home Address option from a care-of
// address bound to that home address arrives as from the home address; an
// unbound one is dropped and reported for a Binding Error.
func TestCorrespondentIn(t *testing.T) {
	h := loadedHome(t, ha)
	if err := h.SetCorrespondent(7, hoa, []Binding{{CoA: coa, BID: 1}, {CoA: coa2, BID: 2}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bes, err := h.BindingErrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := udp(5000, 7000, "optimised")
	a := hoa.As16()
	// A header with another option (type 0x1e: skip if unknown) keeps it;
	// the Home Address option turns into padding.
	mixed := append([]byte{nhUDP, 2, 0x1e, 0, 201, 16}, a[:]...)
	mixed = append(mixed, 1, 0)
	mixedOut := append([]byte{nhUDP, 2, 0x1e, 0, 1, 16}, make([]byte, 16)...)
	mixedOut = append(mixedOut, 1, 0)
	tests := []progCase{
		{name: "bound care-of address", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, haoHeader(nhUDP, hoa, data))), want: ether(0x86dd, ip6(hoa, cn, nhUDP, data))},
		{name: "second binding", frame: ether(0x86dd, ip6(coa2, cn, nhDstOpts, haoHeader(nhUDP, hoa, data))), want: ether(0x86dd, ip6(hoa, cn, nhUDP, data))},
		{name: "other options stay", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, append(mixed, data...))), want: ether(0x86dd, ip6(hoa, cn, nhDstOpts, append(mixedOut, data...)))},
		{name: "unbound care-of address", frame: ether(0x86dd, ip6(spoofer, cn, nhDstOpts, haoHeader(nhUDP, hoa, data))), ret: tcActShot, drop: DropNoBinding},
		{name: "unbound home address", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, haoHeader(nhUDP, hoa2, data))), ret: tcActShot, drop: DropNoBinding},
		{name: "signaling", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, haoHeader(nhMH, hoa, make([]byte, 16)))), ret: tcPass},
		{name: "no home address option", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, ext(nhUDP, 0, data))), ret: tcPass},
		{name: "option to discard", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, append([]byte{nhUDP, 0, 0x80, 0, 1, 2, 0, 0}, data...))), ret: tcActShot, drop: DropMalformed},
		{name: "short home address option", frame: ether(0x86dd, ip6(coa, cn, nhDstOpts, append([]byte{nhUDP, 0, 201, 4, 0, 0, 0, 0}, data...))), ret: tcActShot, drop: DropMalformed},
	}
	runCases(t, h.Decap(), h, tests)
	for _, want := range []BindingError{{Src: spoofer, Dst: cn, HoA: hoa}, {Src: coa, Dst: cn, HoA: hoa2}} {
		select {
		case got := <-bes:
			if got != want {
				t.Errorf("binding error %+v, want %+v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no binding error reported for %+v", want)
		}
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st[HomeBID{7, 1}].RxPackets != 2 || st[HomeBID{7, 2}].RxPackets != 1 {
		t.Errorf("counters %+v: want 2 packets on BID 1, 1 on BID 2", st)
	}
}

// TestCorrespondentOut: a packet to a bound home address goes to the care-of
// address of the best binding, or of the one its flow came in on, with a
// type 2 routing header, and is redirected to the care-of address's next
// hop (looked up in a namespace of the test's, where the program runs;
// with forwarding on, and off as on a host).
func TestCorrespondentOut(t *testing.T) {
	h := loadedHome(t, ha)
	ns := nstest.New(t, nstest.Prefix()+"cn")
	nstest.Veth(t, ns, "c0", ns, "c1")
	ns.Exec(t, "ip", "-6", "addr", "add", "2001:db8:fe::1/64", "dev", "c0", "nodad")
	ns.Exec(t, "ip", "-6", "route", "add", "2001:db8::/32", "via", "2001:db8:fe::2", "dev", "c0")
	ns.Exec(t, "sysctl", "-qw", "net.ipv6.conf.c0.forwarding=1")
	if err := h.SetCorrespondent(3, hoa, []Binding{{CoA: coa, BID: 1}, {CoA: coa2, BID: 2}}); err != nil {
		t.Fatal(err)
	}
	data := udp(7000, 5000, "answer")
	runIn := func(prog *ebpf.Program, frame []byte) (ret uint32, out []byte) {
		t.Helper()
		err := ns.Do(func() error {
			ifi, err := net.InterfaceByName("c0")
			if err != nil {
				return err
			}
			// struct __sk_buff up to ifindex: the packet leaves c0.
			ctx := make([]byte, 44)
			binary.NativeEndian.PutUint32(ctx[40:], uint32(ifi.Index))
			opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Context: ctx}
			ret, err = prog.Run(opts)
			out = opts.DataOut
			return err
		})
		if err != nil {
			t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
		}
		return ret, out
	}
	const tcActRedirect = 7
	toCoA := func(c netip.Addr) []byte {
		return ether(0x86dd, ip6(cn, c, nhRouting, rh2Header(nhUDP, 1, hoa, data)))
	}
	if ret, out := runIn(h.CNOut(), ether(0x86dd, ip6(cn, hoa, nhUDP, data))); ret != tcActRedirect || !bytes.Equal(out, toCoA(coa)) {
		t.Fatalf("a new flow: returned %d with\n % x\nwant %d with\n % x", ret, out, tcActRedirect, toCoA(coa))
	}
	// The mobile node's packet of this flow came from the second binding.
	learn := ether(0x86dd, ip6(coa2, cn, nhDstOpts, haoHeader(nhUDP, hoa, udp(5000, 7000, "q"))))
	if ret, _ := run(t, h.Decap(), learn); ret != tcActOK {
		t.Fatalf("Home Address option from the second binding: returned %d", ret)
	}
	if ret, out := runIn(h.CNOut(), ether(0x86dd, ip6(cn, hoa, nhUDP, data))); ret != tcActRedirect || !bytes.Equal(out, toCoA(coa2)) {
		t.Errorf("the flow: returned %d with\n % x\nwant it to the second binding\n % x", ret, out, toCoA(coa2))
	}
	ns.Exec(t, "sysctl", "-qw", "net.ipv6.conf.c0.forwarding=0")
	// Another flow with the same peer: the peer's binding.
	if ret, out := runIn(h.CNOut(), ether(0x86dd, ip6(cn, hoa, nhUDP, udp(7001, 5001, "x")))); ret != tcActRedirect || netip.AddrFrom16([16]byte(out[38:54])) != coa2 {
		t.Errorf("without forwarding: returned %d with % x, want redirected to %v", ret, out, coa2)
	}
	other := netip.MustParseAddr("2001:db8:5::5")
	for _, f := range [][]byte{
		ether(0x86dd, ip6(cn, other, nhUDP, data)),                             // not bound
		ether(0x86dd, ip6(cn, hoa, nhRouting, rh2Header(nhUDP, 1, hoa, data))), // a routing header already
		ether(0x86dd, ip6(cn, hoa, nhMH, make([]byte, 16))),                    // signaling
	} {
		if ret, out := runIn(h.CNOut(), f); ret != tcPass || !bytes.Equal(out, f) {
			t.Errorf("returned %d with % x, want the frame passed untouched", ret, out)
		}
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st[HomeBID{3, 1}].TxPackets != 1 || st[HomeBID{3, 2}].TxPackets != 2 {
		t.Errorf("counters %+v: want one packet sent on BID 1, two on BID 2", st)
	}
}
