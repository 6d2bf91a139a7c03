package tun

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/homeagent"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// tunnelLab is a lab network with the userspace data plane on the mobile
// node and the home agent, configured directly with the known care-of
// addresses (no signaling), and ip rules standing in for pkg/policy.
type tunnelLab struct {
	l          *lab.Lab
	mn, ha, cn *nstest.NS
	be         dataplane.Backend
	hp         *homeagent.Forwarder
}

func newTunnelLab(t *testing.T, tools ...string) *tunnelLab {
	t.Helper()
	return newTunnelLabWith(t, false, tools...)
}

func newTunnelLabWith(t *testing.T, noOffload bool, tools ...string) *tunnelLab {
	t.Helper()
	nstest.Require(t, append([]string{"radvd", "ping", "nft"}, tools...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, &lab.Config{Prefix: nstest.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	tl := &tunnelLab{
		l:  l,
		mn: &nstest.NS{Name: l.NS(lab.MN)},
		ha: &nstest.NS{Name: l.NS(lab.HA)},
		cn: &nstest.NS{Name: l.NS(lab.CN)},
	}
	if err := tl.mn.Do(func() error {
		var err error
		tl.be, err = newBackend(dataplane.Config{Logger: pkttest.Quiet, NoOffload: noOffload})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tl.be.Close(); err != nil {
			t.Errorf("close backend: %v", err)
		}
	})
	if err := tl.ha.Do(func() error {
		var err error
		tl.hp, err = homeagent.New(&dataplane.HAConfig{Address: lab.HAAddr, Logger: pkttest.Quiet, NoOffload: noOffload})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tl.hp.Close(); err != nil {
			t.Errorf("close HA plane: %v", err)
		}
	})
	return tl
}

// tunnel is BID bid on the lab's access link bid (1 eth0, 2 wlan0, 3 wwan0).
func tunnel(bid uint16) dataplane.Tunnel {
	return dataplane.Tunnel{BID: bid, Iface: lab.Accesses[bid-1].Iface, CoA: pkttest.TCoA[bid-1], HA: lab.HAAddr, HoA: lab.HoA}
}

func binding(bid uint16, prio uint8) dataplane.HABinding {
	return dataplane.HABinding{HoA: lab.HoA, BID: bid, CoA: pkttest.TCoA[bid-1], Priority: prio}
}

func (tl *tunnelLab) Set(t *testing.T, bids []uint16, bs []dataplane.HABinding) {
	t.Helper()
	var ts []dataplane.Tunnel
	for _, b := range bids {
		ts = append(ts, tunnel(b))
	}
	if err := tl.be.SetTunnels(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
	if err := tl.hp.SetBindings(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
}

// policy stands in for pkg/policy: home-address traffic tries the BIDs'
// tables in order, and is unreachable rather than leaking out untunnelled.
func (tl *tunnelLab) policy(t *testing.T, bids ...uint16) {
	t.Helper()
	for {
		if _, err := tl.mn.Try("ip", "-6", "rule", "del", "pref", "100"); err != nil {
			break
		}
	}
	tl.mn.Try("ip", "-6", "rule", "del", "pref", "101")
	for _, b := range bids {
		tl.mn.Exec(t, "ip", "-6", "rule", "add", "from", lab.HoA.String(), "lookup", strconv.Itoa(config.DefaultTableBase+int(b)), "pref", "100")
	}
	tl.mn.Exec(t, "ip", "-6", "rule", "add", "from", lab.HoA.String(), "unreachable", "pref", "101")
}

var pingReply = regexp.MustCompile(`icmp_seq=(\d+) .*time=([0-9.]+) ms`)

// ping runs ping in ns and returns the sequence numbers answered and their
// round-trip times in milliseconds.
func ping(ns *nstest.NS, args ...string) (seqs []int, rtts []float64, out string) {
	o, _ := ns.Try(append([]string{"ping", "-6", "-n"}, args...)...)
	for _, m := range pingReply.FindAllStringSubmatch(o, -1) {
		s, _ := strconv.Atoi(m[1])
		r, _ := strconv.ParseFloat(m[2], 64)
		seqs = append(seqs, s)
		rtts = append(rtts, r)
	}
	return seqs, rtts, o
}

func TestTunnelPingThroughHomeAgent(t *testing.T) {
	tl := newTunnelLab(t)
	hoa := lab.HoA.String()

	// BID 1 (eth0) and BID 2 (wlan0) registered; the mobile node sends on
	// BID 1.
	tl.Set(t, []uint16{1, 2}, []dataplane.HABinding{binding(1, 20), binding(2, 10)})
	tl.policy(t, 1, 2)
	if out := tl.mn.Exec(t, "ip", "-6", "addr", "show", "dev", config.DefaultHomeDevice); !strings.Contains(out, hoa+"/128") {
		t.Fatalf("home address not on %s: %s", config.DefaultHomeDevice, out)
	}
	if out := tl.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); !strings.Contains(out, "default dev mcoab1") || !strings.Contains(out, "src "+hoa) {
		t.Fatalf("table 1001: %q", out)
	}
	// Count the outer packets leaving with the bypass mark (and those
	// without it).
	tl.mn.Exec(t, "nft", "add table ip6 mcoatest; add chain ip6 mcoatest out { type filter hook output priority 0 ; }; "+
		"add rule ip6 mcoatest out meta l4proto 41 meta mark 0x4d000000 counter; "+
		"add rule ip6 mcoatest out meta l4proto 41 meta mark != 0x4d000000 counter")
	if seqs, _, out := ping(tl.cn, "-c", "3", "-i", "0.2", "-W", "2", hoa); len(seqs) != 3 {
		t.Fatalf("CN -> HoA through BID 1:\n%s\nMN %+v\nHA %+v", out, tl.be.Stats(), tl.hp.Stats())
	}
	ms, hs := tl.be.Stats(), tl.hp.Stats()
	if c := ms.Tunnels[1]; c.RxPackets < 3 || c.TxPackets < 3 {
		t.Fatalf("MN BID 1 counters %+v, want >= 3 each way", c)
	}
	if c := hs.Bindings[dataplane.BindingKey{HoA: lab.HoA, BID: 1}]; c.RxPackets < 3 || c.TxPackets < 3 {
		t.Fatalf("HA BID 1 counters %+v", c)
	}
	if c := ms.Tunnels[2]; c.TxPackets != 0 || c.RxPackets != 0 {
		t.Fatalf("MN BID 2 carried packets: %+v", c)
	}
	counters := regexp.MustCompile(`counter packets (\d+)`).FindAllStringSubmatch(tl.mn.Exec(t, "nft", "list", "chain", "ip6", "mcoatest", "out"), -1)
	if len(counters) != 2 || counters[0][1] == "0" || counters[1][1] != "0" {
		t.Fatalf("outer packets with the bypass mark, without: %v", counters)
	}

	// Switch to BID 2 while a ping runs: BID 1 goes on both sides.
	done := make(chan struct{})
	var seqs []int
	var out string
	go func() {
		defer close(done)
		seqs, _, out = ping(tl.cn, "-c", "40", "-i", "0.05", "-W", "1", hoa)
	}()
	time.Sleep(500 * time.Millisecond)
	tl.Set(t, []uint16{2}, []dataplane.HABinding{binding(2, 10)})
	<-done
	if len(seqs) < 30 || seqs[len(seqs)-1] < 38 {
		t.Fatalf("ping across the switch: %d of 40 answered, last %v:\n%s", len(seqs), seqs[max(len(seqs)-1, 0):], out)
	}
	t.Logf("switch from BID 1 to BID 2: %d of 40 pings answered", len(seqs))
	if c := tl.be.Stats().Tunnels[2]; c.RxPackets < 10 || c.TxPackets < 10 {
		t.Fatalf("MN BID 2 counters %+v after the switch", c)
	}
	if out := tl.mn.Exec(t, "ip", "link", "show"); strings.Contains(out, "mcoab1") {
		t.Fatalf("mcoab1 left after BID 1 went:\n%s", out)
	}

	// Three bindings; the home agent prefers BID 1 by priority, but the
	// mobile node answers on BID 3: the home agent follows it.
	tl.Set(t, []uint16{1, 2, 3}, []dataplane.HABinding{binding(1, 20), binding(2, 10), binding(3, 5)})
	tl.policy(t, 3, 1)
	before := tl.hp.Stats()
	// A peer the home agent has not seen: priority first (BID 1), then
	// the reverse flow (BID 3).
	haSrc := "2001:db8:ff0a::2"
	if seqs, _, out := ping(tl.ha, "-c", "5", "-i", "0.2", "-W", "2", "-I", haSrc, hoa); len(seqs) != 5 {
		t.Fatalf("HA -> HoA: %s", out)
	}
	after := tl.hp.Stats()
	d := func(bid uint16) uint64 {
		k := dataplane.BindingKey{HoA: lab.HoA, BID: bid}
		return after.Bindings[k].TxPackets - before.Bindings[k].TxPackets
	}
	if d(1) != 1 || d(3) != 4 || d(2) != 0 {
		t.Fatalf("HA sent %d on BID 1, %d on BID 2, %d on BID 3; want 1 (priority), 0, 4 (following the replies)", d(1), d(2), d(3))
	}
	if c := after.Bindings[dataplane.BindingKey{HoA: lab.HoA, BID: 3}]; c.RxPackets < 5 {
		t.Fatalf("HA BID 3 counters %+v", c)
	}

	// Path MTU discovery: a packet too big for the tunnel gets a Packet
	// Too Big from the mobile node's own data plane. The device's MTU is
	// raised behind the backend's back so that the kernel hands it over.
	tl.mn.Exec(t, "ip", "link", "set", dataplane.DeviceName(3), "mtu", "1500")
	_, _, out = ping(tl.mn, "-c", "1", "-W", "1", "-M", "do", "-s", "1452", "-I", hoa, lab.CNAddr.String())
	if !strings.Contains(out, "mtu=1460") {
		t.Fatalf("no Packet Too Big with mtu 1460:\n%s", out)
	}
	if d := tl.be.Stats().Drops; d.TooBig == 0 {
		t.Fatalf("drops %+v: TooBig not counted", d)
	}
	// and a packet that fits still goes.
	if seqs, _, out := ping(tl.mn, "-c", "1", "-W", "2", "-M", "do", "-s", "1412", "-I", hoa, lab.CNAddr.String()); len(seqs) != 1 {
		t.Fatalf("1460-byte ping from the HoA: %s", out)
	}

	// A device deleted behind the backend's back comes again with the
	// next SetTunnels.
	tl.mn.Exec(t, "ip", "link", "del", dataplane.DeviceName(3))
	tl.Set(t, []uint16{1, 2, 3}, []dataplane.HABinding{binding(1, 20), binding(2, 10), binding(3, 5)})
	if seqs, _, out := ping(tl.cn, "-c", "2", "-i", "0.2", "-W", "2", hoa); len(seqs) != 2 {
		t.Fatalf("after re-making %s: %s", dataplane.DeviceName(3), out)
	}

	// Nothing was dropped for a bad reason on the way.
	hd := tl.hp.Stats().Drops
	if hd.Spoofed != 0 || hd.Malformed != 0 || hd.WriteErr != 0 {
		t.Fatalf("HA drops %+v", hd)
	}

	// No bindings: the routes go, and the home address with the last
	// tunnel.
	tl.Set(t, nil, nil)
	if out := tl.ha.Exec(t, "ip", "-6", "route", "show", "dev", config.DefaultHADevice); strings.Contains(out, hoa) {
		t.Fatalf("HA route left: %s", out)
	}
	if out := tl.mn.Exec(t, "ip", "-br", "link", "show"); strings.Contains(out, "mcoab") || strings.Contains(out, config.DefaultHomeDevice+" ") {
		t.Fatalf("devices left:\n%s", out)
	}
}

func TestTunnelRejectsStrangers(t *testing.T) {
	tl := newTunnelLab(t)
	tl.Set(t, []uint16{1}, []dataplane.HABinding{binding(1, 0)})
	tl.policy(t, 1)
	// A tunnelled packet from a registered CoA whose inner source is not
	// the binding's home address, and one from an unregistered CoA.
	spoof := pkttest.IP6(0, 0, packet.ProtoICMPv6, 64, netip.MustParseAddr("2001:db8:aaaa::666"), lab.CNAddr, pkttest.Echo(128, 9, 1, 8))
	honest := pkttest.IP6(0, 0, packet.ProtoICMPv6, 64, lab.HoA, lab.CNAddr, pkttest.Echo(128, 9, 1, 8))
	sendRaw := func(iface string, coa netip.Addr, inner []byte) {
		t.Helper()
		if err := tl.mn.Do(func() error {
			s, err := tunio.NewRawSocket(255, 0, iface)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Connect(lab.HAAddr); err != nil {
				return err
			}
			buf := pkttest.WithHeadroom(inner)
			src, dst := coa.As16(), lab.HAAddr.As16()
			n, err := packet.Encap(buf, &src, &dst)
			if err != nil {
				return err
			}
			wb := tunio.NewMsgBatch(1, false, false)
			wb.Set(0, buf[:n])
			_, err = s.Send(wb, 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	sendRaw("eth0", pkttest.TCoA[0], spoof)
	sendRaw("wlan0", pkttest.TCoA[1], honest)
	deadline := time.Now().Add(3 * time.Second)
	for {
		d := tl.hp.Stats().Drops
		if d.Spoofed == 1 && d.Unknown == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HA drops %+v, want 1 spoofed and 1 unknown", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := tl.hp.Stats().Bindings[dataplane.BindingKey{HoA: lab.HoA, BID: 1}]; c.RxPackets != 0 {
		t.Fatalf("HA accepted a packet: %+v", c)
	}
	// No ICMPv6 error from either kernel about protocol 41: the raw
	// sockets hold it off. (The MN's and HA's Icmp6OutParmProblems stay 0.)
	for _, ns := range []*nstest.NS{tl.mn, tl.ha} {
		out := ns.Exec(t, "cat", "/proc/net/snmp6")
		if m := regexp.MustCompile(`Icmp6OutParmProblems\s+(\d+)`).FindStringSubmatch(out); m == nil || m[1] != "0" {
			t.Fatalf("%s sent parameter problems: %v", ns.Name, m)
		}
	}
}

// TCP through the tunnel arrives intact both ways, with TUN offloads (TSO
// super-packets cut and merged by the data plane) and without.
func TestTunnelTCPIntegrity(t *testing.T) {
	for _, noOffload := range []bool{false, true} {
		t.Run(fmt.Sprintf("noOffload=%v", noOffload), func(t *testing.T) {
			tl := newTunnelLabWith(t, noOffload)
			tl.Set(t, []uint16{1}, []dataplane.HABinding{binding(1, 1)})
			tl.policy(t, 1)
			const size = 8 << 20
			data := pkttest.Pattern(size, 42)
			want := sha256.Sum256(data)

			var ln net.Listener
			if err := tl.cn.Do(func() error {
				var err error
				ln, err = net.Listen("tcp6", "["+lab.CNAddr.String()+"]:0")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			// The CN echoes the hash of what it got, then sends data back.
			srvErr := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					srvErr <- err
					return
				}
				defer c.Close()
				h := sha256.New()
				if _, err := io.CopyN(h, c, size); err != nil {
					srvErr <- fmt.Errorf("server read: %w", err)
					return
				}
				if _, err := c.Write(h.Sum(nil)); err != nil {
					srvErr <- err
					return
				}
				_, err = c.Write(data)
				srvErr <- err
			}()
			var c net.Conn
			if err := tl.mn.Do(func() error {
				var err error
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: lab.HoA.AsSlice()}, Timeout: 5 * time.Second}
				c, err = d.Dial("tcp6", ln.Addr().String())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			if _, err := c.Write(data); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 32)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[:]) {
				t.Fatal("MN -> CN: data corrupted")
			}
			h := sha256.New()
			if _, err := io.CopyN(h, c, size); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatal("CN -> MN: data corrupted")
			}
			if err := <-srvErr; err != nil {
				t.Fatal(err)
			}
			var m1 runtime.MemStats
			runtime.ReadMemStats(&m1)
			ms, hs := tl.be.Stats(), tl.hp.Stats()
			pkts := ms.Tunnels[1].TxPackets + ms.Tunnels[1].RxPackets + hs.Bindings[dataplane.BindingKey{HoA: lab.HoA, BID: 1}].TxPackets + hs.Bindings[dataplane.BindingKey{HoA: lab.HoA, BID: 1}].RxPackets
			t.Logf("%d packets through the data planes, %d allocations in the whole process meanwhile", pkts, m1.Mallocs-m0.Mallocs)
			if allocs := m1.Mallocs - m0.Mallocs; pkts < 1000 || allocs > pkts/100 {
				t.Fatalf("%d allocations for %d packets: the packet loops allocate", allocs, pkts)
			}
			if ms.Tunnels[1].TxBytes < size || ms.Tunnels[1].RxBytes < size {
				t.Fatalf("the transfer did not go through the tunnel: %+v", ms.Tunnels[1])
			}
			if ms.Drops != (dataplane.Drops{}) || hs.Drops.Malformed+hs.Drops.Spoofed+hs.Drops.WriteErr != 0 {
				t.Fatalf("drops: MN %+v HA %+v", ms.Drops, hs.Drops)
			}
		})
	}
}

// newBackend starts the userspace backend with cfg's defaults.
func newBackend(cfg dataplane.Config) (dataplane.Backend, error) {
	c, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	return New(c)
}
