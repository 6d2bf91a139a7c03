package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// cnEnv is the data-plane lab with a second mcoa-ha in the cn node acting
// as a pure correspondent node.
type cnEnv struct {
	*env
	cn     *control.Client
	cnSock string
	rr     *capture // the CN's link from before mcoad started (setupCN's captureRR)
}

// startCN runs mcoa-ha in the cn node as a correspondent node alone (no
// [home_agent]) with its route-optimised data path (the userspace data
// plane), and checks that it says so.
func (e *env) startCN() (*control.Client, string) {
	e.t.Helper()
	d, err := e.lab.StartCN(e.ctx, &lab.CNConfig{Bin: bins.ha})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Stop() })
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	st, err := d.Client.Status(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(st.Roles) != 1 || st.Roles[0] != control.RoleCorrespondent || st.HomeAgent.IsValid() ||
		len(st.Correspondent) != 1 || st.Correspondent[0] != lab.CNAddr {
		e.t.Fatalf("correspondent mcoa-ha status: roles %v, home agent %v, correspondent %v", st.Roles, st.HomeAgent, st.Correspondent)
	}
	return d.Client, d.Socket
}

// setupCN is the data-plane lab with the correspondent's mcoa-ha and
// mcoad registered with the HA; with captureRR, the Mobility Headers on
// the CN's link are captured from before mcoad starts (ce.rr).
func setupCN(t *testing.T, captureRR bool, backend string) *cnEnv {
	t.Helper()
	var tools []string
	if captureRR {
		tools = []string{"tshark"}
	}
	e := setup(t, opts{noMN: true, ha: lab.HAConfig{Backend: backend}, tools: tools})
	ce := &cnEnv{env: e}
	ce.cn, ce.cnSock = e.startCN()
	if captureRR {
		ce.rr = e.startCapture(lab.CN, lab.Uplink)
	}
	e.mnCfg.Backend = backend
	e.mnCfg.Extra = fmt.Sprintf("\n[[correspondent]]\naddress = %q\n", lab.CNAddr)
	e.startMN()
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	return ce
}

// cnCache returns the correspondent's bindings (home_registration false)
// by interface name, and fails on anything it does not expect.
func (ce *cnEnv) cnCache() (map[string]control.CacheEntry, error) {
	ctx, cancel := context.WithTimeout(ce.ctx, 5*time.Second)
	defer cancel()
	c, err := ce.cn.Cache(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]control.CacheEntry{}
	for _, x := range c {
		if x.HomeRegistration || x.HoA != lab.HoA {
			return nil, fmt.Errorf("unexpected CN cache entry %+v", x)
		}
		n := ce.ifaceOf(x.CoA)
		if n == "" || ce.bids[n] != x.BID {
			return nil, fmt.Errorf("CN cache entry %+v: CoA and BID do not match an interface (%v)", x, ce.bids)
		}
		out[n] = x
	}
	return out, nil
}

func (ce *cnEnv) cnCacheIs(want ...string) error {
	got, err := ce.cnCache()
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("CN cache %v, want %v", got, want)
	}
	for _, n := range want {
		if _, ok := got[n]; !ok {
			return fmt.Errorf("CN cache %v, want %v", got, want)
		}
	}
	return nil
}

// mnCNBindings returns mcoad's role "cn" bindings that are registered.
func (ce *cnEnv) mnCNBindings() (map[uint16]control.Binding, error) {
	ctx, cancel := context.WithTimeout(ce.ctx, 5*time.Second)
	defer cancel()
	bs, err := ce.mn.Client.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uint16]control.Binding{}
	for _, b := range bs {
		if b.Role != control.RoleCN {
			continue
		}
		if b.Peer != lab.CNAddr {
			return nil, fmt.Errorf("cn binding with peer %v", b.Peer)
		}
		if b.State == "registered" {
			out[b.BID] = b
		}
	}
	return out, nil
}

// TestCorrespondentRegistration, on each data plane of the mobile node and
// home agent (forBackends; the correspondent on tun): with ebpf the HoTI
// enters the tunnel by its BID's mark.
func TestCorrespondentRegistration(t *testing.T) { forBackends(t, testCorrespondentRegistration) }

func testCorrespondentRegistration(t *testing.T, backend string) {
	ce := setupCN(t, true, backend)
	e := ce.env
	ce.waitCNRegistered(ifaces...)
	// The HoTI went from the home address through a tunnel to the HA and
	// the HoT came back through one: the only traffic of the home address.
	m := e.metrics(e.ha)
	rx, tx := lab.SumMetric(m, "mcoa_ha_tunnel_rx_packets_total"), lab.SumMetric(m, "mcoa_ha_tunnel_tx_packets_total")
	if rx < 1 || tx < 1 {
		t.Errorf("HA tunnel packets rx %v tx %v: the home test did not go through the tunnel", rx, tx)
	}
	// Each CoA had its own care-of test, the home address one home test:
	// the init messages as they reached the CN's link.
	sent, err := ce.rr.CountMHUntil(e.ctx, 5*time.Second, func(n map[lab.MHSent]int) bool {
		all := n[lab.MHSent{Type: proto.TypeHoTI, Src: lab.HoA}] > 0
		for _, i := range ifaces {
			all = all && n[lab.MHSent{Type: proto.TypeCoTI, Src: e.coas[i]}] > 0
		}
		return all
	})
	ce.rr.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ifaces {
		if sent[lab.MHSent{Type: proto.TypeCoTI, Src: e.coas[n]}] < 1 {
			t.Errorf("no CoTI from %s on the CN's link: %v", e.coas[n], sent)
		}
	}
	if c := sent[lab.MHSent{Type: proto.TypeHoTI, Src: lab.HoA}]; c != 1 {
		t.Errorf("%d HoTIs from the home address on the CN's link, want 1: %v", c, sent)
	}

	// A BU with a forged authenticator changes nothing: from wlan0's CoA,
	// claiming eth0's BID.
	before, err := ce.cnCache()
	if err != nil {
		t.Fatal(err)
	}
	ns := &nstest.NS{Name: e.lab.NS(lab.MN)}
	var conn *mhsock.Conn
	if err := ns.Do(func() error {
		var err error
		conn, err = mhsock.Listen(&mhsock.Config{NoICMPFilter: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kbm := make([]byte, 20)
	rand.Read(kbm)
	forged := &proto.Packet{Src: e.coas["wlan0"], Dst: lab.CNAddr, HomeAddress: lab.HoA, HopLimit: 64, MH: proto.Message{
		Type: proto.TypeBU, PayloadProto: proto.ProtoNone, Sequence: before["eth0"].Sequence + 1, Flags: proto.FlagA, Lifetime: 100,
		Options: proto.Options{HasNonceIndices: true, HasAuthData: true, BIDs: []proto.BID{{ID: e.bids["eth0"]}}}}}
	if err := conn.Send(forged, proto.BADSigner{Kbm: kbm, CoA: forged.Src, Correspondent: lab.CNAddr}); err != nil {
		t.Fatalf("send forged BU: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	after, err := ce.cnCache()
	if err != nil {
		t.Fatal(err)
	}
	if after["eth0"].CoA != before["eth0"].CoA || after["eth0"].Sequence != before["eth0"].Sequence || len(after) != 3 {
		t.Fatalf("forged BU changed the CN cache: before %+v after %+v", before, after)
	}

	// Cutting eth0 removes that CN binding.
	if err := e.lab.CutLink("eth0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("eth0's CN binding removed", registerTimeout, func() error { return ce.cnCacheIs("wlan0", "wwan0") })

	// A new CoA: from the moment mcoad sees eth0's address again to its
	// home binding and to its correspondent binding, in mcoad's own event
	// times (the care-of test runs while the home BU is in flight).
	evctx, evcancel := context.WithCancel(e.ctx)
	defer evcancel()
	stream, err := e.mn.Client.Events(evctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	evs := make(chan control.Event, 256)
	go func() {
		defer close(evs)
		for {
			ev, err := stream.Next()
			if err != nil {
				return
			}
			evs <- ev
		}
	}()
	// RFC 6275's MAX_UPDATE_RATE (3 BUs a second to one peer) would delay
	// the BU right after the de-registration: measure out of its window.
	time.Sleep(time.Second)
	if err := e.lab.RestoreLink("eth0"); err != nil {
		t.Fatal(err)
	}
	bid := e.bids["eth0"]
	var tCoA, tHA, tCN time.Time
	timeout := time.After(registerTimeout)
	for tCN.IsZero() {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("mcoad's event stream ended")
			}
			b := ev.Binding
			switch {
			case ev.Kind == "interface" && ev.Interface != nil && ev.Interface.Name == "eth0" && ev.Interface.CoA.IsValid() && tCoA.IsZero():
				tCoA = ev.Time
			case b != nil && b.BID == bid && b.Role == control.RoleHA && b.State == "pending" && tCoA.IsZero():
				tCoA = ev.Time
			case b != nil && b.BID == bid && b.Role == control.RoleHA && b.State == "registered" && tHA.IsZero():
				tHA = ev.Time
			case b != nil && b.BID == bid && b.Role == control.RoleCN && b.State == "registered" && !ev.Removed:
				tCN = ev.Time
			}
		case <-timeout:
			t.Fatalf("eth0's CN binding after the link came back: events of CoA %v, HA %v, CN %v", tCoA, tHA, tCN)
		}
	}
	e.waitFor("eth0's CN binding in the CN's cache", registerTimeout, func() error { return ce.cnCacheIs(ifaces...) })
	rtt := pingRTT(t, e)
	t.Logf("new CoA -> CN binding %v (-> HA binding %v, then %v more; RTT MN-CN %v; target 2 RTT + 5 ms = %v)",
		tCN.Sub(tCoA).Round(time.Microsecond), tHA.Sub(tCoA).Round(time.Microsecond), tCN.Sub(tHA).Round(time.Microsecond),
		rtt, 2*rtt+5*time.Millisecond)
}

// pingRTT measures the round trip from the MN's eth0 CoA to the CN.
func pingRTT(t *testing.T, e *env) time.Duration {
	out, err := e.lab.Exec(e.ctx, lab.MN, "ping", "-c", "3", "-i", "0.2", "-I", e.coas["eth0"].String(), lab.CNAddr.String())
	if err != nil {
		t.Logf("ping: %v: %s", err, out)
		return 0
	}
	// rtt min/avg/max/mdev = a/b/c/d ms
	s := string(out)
	i := strings.Index(s, "= ")
	if i < 0 {
		return 0
	}
	f := strings.Split(s[i+2:], "/")
	if len(f) < 2 {
		return 0
	}
	d, _ := time.ParseDuration(f[1] + "ms")
	return d
}

// waitCNRegistered waits until the CN holds a binding for each of want
// and the MN lists them registered.
func (ce *cnEnv) waitCNRegistered(want ...string) {
	e := ce.env
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%v in the CN's cache", want), registerTimeout, func() error { return ce.cnCacheIs(want...) })
	e.waitFor(fmt.Sprintf("cn bindings of %v on the MN", want), registerTimeout, func() error {
		bs, err := ce.mnCNBindings()
		if err != nil {
			return err
		}
		for _, n := range want {
			if b, ok := bs[e.bids[n]]; !ok || b.CoA != e.coas[n] {
				return fmt.Errorf("cn bindings %+v, want BID %d with %v", bs, e.bids[n], e.coas[n])
			}
		}
		return nil
	})
}

// cnMetrics are the correspondent's metrics.
func (ce *cnEnv) cnMetrics() map[string]float64 {
	ce.t.Helper()
	ctx, cancel := context.WithTimeout(ce.ctx, 5*time.Second)
	defer cancel()
	text, err := ce.cn.Metrics(ctx)
	if err != nil {
		ce.t.Fatalf("metrics of the CN: %v", err)
	}
	return lab.ParseMetrics(text)
}

// haTunnel sums the HA's tunnel packet counters, both directions.
func (e *env) haTunnel() float64 {
	m := e.metrics(e.ha)
	return lab.SumMetric(m, "mcoa_ha_tunnel_tx_packets_total") + lab.SumMetric(m, "mcoa_ha_tunnel_rx_packets_total")
}

// roCounts are the MN's route-optimised packet counters (tx, rx) by
// interface; ok is false while the data plane has no route for iface.
func (e *env) roCounts() (tx, rx map[string]float64, routes map[string]bool) {
	m := e.metrics(e.mn)
	tx, rx, routes = map[string]float64{}, map[string]float64{}, map[string]bool{}
	for _, n := range ifaces {
		k := fmt.Sprintf(`{bid="%d"}`, e.bids[n])
		v, ok := m["mcoad_ro_tx_packets_total"+k]
		tx[n], rx[n], routes[n] = v, m["mcoad_ro_rx_packets_total"+k], ok
	}
	return tx, rx, routes
}

// TestCorrespondentRouteOptimisation: with the CN bindings registered, a
// ping from the CN to the home address goes route-optimised both ways on
// eth0 (the best BID): a type 2 routing header to eth0's care-of address,
// the answer from it with a Home Address option, as Wireshark decodes them
// on eth0, and nothing through the home agent's tunnels. Cutting eth0
// moves the ping to wlan0's route-optimised path once eth0's CN binding is
// gone; the ping goes on.
func TestCorrespondentRouteOptimisation(t *testing.T) {
	ce := setupCN(t, false, "tun")
	e := ce.env
	nstest.Require(t, "tshark")
	ce.waitCNRegistered(ifaces...)
	e.waitFor("route-optimised routes in the MN's data plane", 10*time.Second, func() error {
		if _, _, routes := e.roCounts(); !routes["eth0"] || !routes["wlan0"] || !routes["wwan0"] {
			return fmt.Errorf("routes %v", routes)
		}
		return nil
	})

	c := e.startCapture(lab.MN, "eth0")
	ha0 := e.haTunnel()
	tx0, rx0, _ := e.roCounts()
	const pings = 5
	if out, err := e.lab.Exec(e.ctx, lab.CN, "ping", "-6", "-c", strconv.Itoa(pings), "-i", "0.2", "-W", "2", lab.HoA.String()); err != nil {
		t.Fatalf("ping CN -> HoA: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond) // the last reply into the capture file
	c.stop(t)
	if d := e.haTunnel() - ha0; d != 0 {
		t.Errorf("the HA's tunnels carried %v packets during the ping, want none", d)
	}
	tx1, rx1, _ := e.roCounts()
	if tx1["eth0"]-tx0["eth0"] < pings || rx1["eth0"]-rx0["eth0"] < pings {
		t.Errorf("route-optimised on eth0: tx %v -> %v, rx %v -> %v, want %d more each", tx0, tx1, rx0, rx1, pings)
	}
	cm := ce.cnMetrics()
	if v := cm[fmt.Sprintf(`mcoa_cn_ro_tx_packets_total{bid="%d",hoa="%s"}`, e.bids["eth0"], lab.HoA)]; v < pings {
		t.Errorf("CN sent %v packets with a type 2 routing header to eth0's binding, want %d (%v)", v, pings, cm)
	}

	// Wireshark on eth0: requests with a type 2 routing header to the
	// care-of address, replies from it with a Home Address option; the
	// ICMPv6 checksums check out over the home address.
	out, err := exec.CommandContext(e.ctx, "tshark", "-n", "-r", c.File, "-Y", "icmpv6.type == 128 || icmpv6.type == 129",
		"-T", "fields", "-E", "separator=/t", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "icmpv6.type",
		"-e", "ipv6.routing.type", "-e", "ipv6.routing.mipv6.home_address", "-e", "ipv6.opt.mipv6.home_address",
		"-e", "icmpv6.checksum.status").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", c.File, err)
	}
	coa, cn, hoa := e.coas["eth0"].String(), lab.CNAddr.String(), lab.HoA.String()
	wantReq := strings.Join([]string{cn, coa, "128", "2", hoa, "", "1"}, "\t")
	wantRep := strings.Join([]string{coa, cn, "129", "", "", hoa, "1"}, "\t")
	var req, rep int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch l {
		case wantReq:
			req++
		case wantRep:
			rep++
		default:
			t.Errorf("on eth0: %q, want %q or %q", l, wantReq, wantRep)
		}
	}
	// The counters above count every packet; a capture stopped by a
	// signal may lose its last one.
	if req < pings-1 || rep < pings-1 {
		t.Errorf("on eth0: %d requests with a type 2 routing header, %d replies with a Home Address option, want %d each:\n%s", req, rep, pings, out)
	}

	// Cut eth0 while pinging: once eth0's CN binding is gone (removed
	// through another care-of address), the CN answers through wlan0's,
	// the next best, and the ping goes on.
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.lab.Exec(e.ctx, lab.CN, "ping", "-6", "-i", "0.05", "-w", "8", "-W", "1", lab.HoA.String())
		done <- result{out, err}
	}()
	time.Sleep(500 * time.Millisecond)
	tx0, rx0, _ = e.roCounts()
	if err := e.lab.CutLink("eth0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("eth0's CN binding removed", registerTimeout, func() error { return ce.cnCacheIs("wlan0", "wwan0") })
	e.waitFor("the ping route-optimised on wlan0", 5*time.Second, func() error {
		tx, rx, routes := e.roCounts()
		if routes["eth0"] {
			return fmt.Errorf("eth0 still has a route: %v", routes)
		}
		if tx["wlan0"]-tx0["wlan0"] < 10 || rx["wlan0"]-rx0["wlan0"] < 10 {
			return fmt.Errorf("wlan0: tx %v -> %v, rx %v -> %v", tx0, tx, rx0, rx)
		}
		return nil
	})
	r := <-done
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindSubmatch(r.out)
	if m == nil {
		t.Fatalf("ping during the cut: %v\n%s", r.err, r.out)
	}
	sent, got := atoi(m[1]), atoi(m[2])
	t.Logf("ping every 50 ms over the cut of eth0: %d sent, %d answered", sent, got)
	if got < sent/2 {
		t.Errorf("ping over the cut: %d of %d answered", got, sent)
	}

	// A data packet with a Home Address option that no binding covers
	// (another home address, from wlan0's care-of address) is dropped
	// and answered with a Binding Error (status 1).
	be0 := ce.cnMetrics()
	stranger := netip.MustParseAddr("2001:db8:aaaa::200")
	pkt := make([]byte, 40+24+8)
	pkt[0], pkt[6], pkt[7] = 0x60, 60, 64
	pkt[5] = 24 + 8
	copy(pkt[8:24], e.coas["wlan0"].AsSlice())
	copy(pkt[24:40], lab.CNAddr.AsSlice())
	copy(pkt[40:48], []byte{17, 2, 1, 2, 0, 0, 201, 16})
	copy(pkt[48:64], stranger.AsSlice())
	copy(pkt[64:], []byte{0x12, 0x34, 0x56, 0x78, 0, 8, 0, 0})
	var conn *mhsock.Conn
	var wlan0 int
	if err := e.inNode(lab.MN, func() (err error) {
		i, err := net.InterfaceByName("wlan0")
		if err != nil {
			return err
		}
		wlan0 = i.Index
		conn, err = mhsock.Listen(&mhsock.Config{NoICMPFilter: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e.waitFor("a Binding Error for an unbound Home Address option", 5*time.Second, func() error {
		if err := conn.SendRaw(pkt, wlan0); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		m := ce.cnMetrics()
		drops := m[`mcoa_cn_dataplane_drops_total{reason="no_binding"}`] - be0[`mcoa_cn_dataplane_drops_total{reason="no_binding"}`]
		bes := m["mcoa_ha_be_sent_total"] - be0["mcoa_ha_be_sent_total"]
		if drops < 1 || bes < 1 {
			return fmt.Errorf("no-binding drops %v, Binding Errors sent %v", drops, bes)
		}
		return nil
	})
}

func atoi(b []byte) int {
	n, _ := strconv.Atoi(string(b))
	return n
}
