package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/config"
)

// Ports of the test flows and the policies that steer them.
const (
	udpPort   = lab.VoicePort // policy "voice": UDP to wlan0, else eth0
	tcpPort   = 5002          // policy "bulk": TCP to wwan0, else eth0
	probePort = 6000          // CN -> HoA probes (no policy: the HA's choice)
)

const dataplanePolicies = lab.VoicePolicy + `
[[policy]]
name = "bulk"
protocol = "tcp"
dst_port = 5002
prefer = ["wwan*", "eth*"]
`

// setupDataplane is a lab with mcoa-ha and mcoad both running the
// userspace data plane, every interface registered.
func setupDataplane(t *testing.T) *env { return setupDataplaneWith(t, 0, "tun") }

// setupDataplaneFor is setupDataplane for a test that runs longer than
// setup's two minutes (d: its own length).
func setupDataplaneFor(t *testing.T, d time.Duration) *env { return setupDataplaneWith(t, d, "tun") }

// backends are the data planes that tests run through forBackends on
// both ends: the userspace one and the eBPF programs. (mcoad on tun with
// mcoa-ha on ebpf loses the inner UDP checksums in a lab of veths: they
// stay partial through the home agent's encapsulation, which only a
// kernel decapsulation, or a real NIC, completes.)
var backends = []string{"tun", "ebpf"}

// forBackends runs test once per data plane, as parallel subtests named
// dataplane=<backend>.
func forBackends(t *testing.T, test func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run("dataplane="+b, func(t *testing.T) {
			t.Parallel()
			test(t, b)
		})
	}
}

// setupDataplaneWith is setupDataplaneFor with both daemons' data planes
// on backend.
func setupDataplaneWith(t *testing.T, d time.Duration, backend string) *env {
	t.Helper()
	e := setup(t, opts{noMN: true, timeout: d + 2*time.Minute})
	// The lab writes mcoa-ha's [dataplane] as "none": switch it on.
	text, err := os.ReadFile(e.ha.Config)
	if err != nil {
		t.Fatal(err)
	}
	on := strings.Replace(string(text), "[dataplane]\nbackend = \"none\"", "[dataplane]\nbackend = \""+backend+"\"", 1)
	if on == string(text) {
		t.Fatalf("no [dataplane] backend = \"none\" in %s to switch on", e.ha.Config)
	}
	if err := os.WriteFile(e.ha.Config, []byte(on), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.ha.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.mnCfg.Backend = backend
	e.mnCfg.Extra = dataplanePolicies
	e.startMN()
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	e.waitFor("three bindings registered on the MN", registerTimeout, func() error { return e.registered(ifaces...) })
	e.waitFor("three tunnels on the MN", registerTimeout, func() error {
		for _, n := range ifaces {
			if err := e.mnTunnel(n); err != nil {
				return err
			}
		}
		return nil
	})
	return e
}

// mnTunnel checks that the MN has a tunnel for interface n: its device
// (tun), or its table's route with the encapsulation (ebpf).
func (e *env) mnTunnel(n string) error {
	if e.mnCfg.Backend != "ebpf" {
		if _, err := e.lab.Exec(e.ctx, lab.MN, "ip", "link", "show", fmt.Sprintf("mcoab%d", e.bids[n])); err != nil {
			return fmt.Errorf("no tunnel for %s: %v", n, err)
		}
		return nil
	}
	table := strconv.Itoa(int(config.DefaultTableBase) + int(e.bids[n]))
	out, err := e.lab.Exec(e.ctx, lab.MN, "ip", "-6", "route", "show", "table", table)
	if err != nil || !strings.Contains(string(out), "encap bpf") {
		return fmt.Errorf("no tunnel route for %s in table %s: %q %v", n, table, out, err)
	}
	return nil
}

// inNode runs fn on a thread inside one of the lab's namespaces; sockets
// made in fn stay there.
func (e *env) inNode(node string, fn func() error) error {
	return (&nstest.NS{Name: e.lab.NS(node)}).Do(fn)
}

// tunnelPackets is the MN's count of packets sent (dir "tx") or received
// ("rx") through each interface's tunnel.
func (e *env) tunnelPackets(dir string) map[string]float64 {
	e.t.Helper()
	m := e.metrics(e.mn)
	out := map[string]float64{}
	for _, n := range ifaces {
		out[n] = m[fmt.Sprintf(`mcoad_tunnel_%s_packets_total{bid="%d"}`, dir, e.bids[n])]
	}
	return out
}

// ourRules is `ip -6 rule` in the mn node, mcoad's rules only.
func (e *env) ourRules() []string {
	e.t.Helper()
	out, err := e.lab.Exec(e.ctx, lab.MN, "ip", "-6", "rule")
	if err != nil {
		e.t.Fatal(err)
	}
	var rs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "proto 77") {
			rs = append(rs, strings.Join(strings.Fields(l), " "))
		}
	}
	return rs
}

// leftovers lists what mcoad installed in the mn node that is still there.
func (e *env) leftovers() []string {
	e.t.Helper()
	var left []string
	for _, r := range e.ourRules() {
		left = append(left, "rule "+r)
	}
	out, err := e.lab.Exec(e.ctx, lab.MN, "nft", "list", "tables")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "mcoad") {
			left = append(left, l)
		}
	}
	out, err = e.lab.Exec(e.ctx, lab.MN, "ip", "-o", "link", "show")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "mcoa") {
			left = append(left, "link "+strings.TrimSuffix(f[1], ":"))
		}
	}
	out, err = e.lab.Exec(e.ctx, lab.MN, "ip", "-6", "route", "show", "table", "all")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); strings.Contains(l, "encap bpf") && slices.Contains(f, "table") {
			left = append(left, "route table "+f[slices.Index(f, "table")+1])
		}
	}
	out, err = e.lab.Exec(e.ctx, lab.MN, "ip", "-6", "addr", "show", "to", lab.HoA.String()+"/128")
	if err != nil {
		e.t.Fatal(err)
	}
	if strings.Contains(string(out), lab.HoA.String()) {
		left = append(left, "address "+lab.HoA.String())
	}
	return left
}

// startStream sends a datagram from node to dst (an address of rnode)
// every interval until the test ends (lab.Stream).
func (e *env) startStream(node, rnode string, dst netip.AddrPort, interval time.Duration) *lab.Stream {
	e.t.Helper()
	s, err := e.lab.StartStream(node, rnode, dst, interval)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// startTCP keeps writing on one TCP connection from node to dst until
// the test ends (lab.TCPFlow).
func (e *env) startTCP(node, rnode string, dst netip.AddrPort) *lab.TCPFlow {
	e.t.Helper()
	f, err := e.lab.StartTCP(node, rnode, dst)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(f.Close)
	return f
}

// rxGrowsOn waits until the MN receives at least n more packets through
// want's tunnel while the others carry fewer than a tenth of that.
func (e *env) rxGrowsOn(what, want string, n float64, others ...string) {
	e.t.Helper()
	e.tunnelGrows(what, "rx", want, n, others...)
}

// growsOn waits until the tunnel of want carries at least n more packets
// while the others carry fewer than a tenth of that.
func (e *env) growsOn(what, want string, n float64, others ...string) {
	e.t.Helper()
	e.tunnelGrows(what, "tx", want, n, others...)
}

// tunnelGrows waits until want's tunnel counts at least n more packets in
// direction dir ("tx" or "rx") while the others count fewer than a tenth
// of that.
func (e *env) tunnelGrows(what, dir, want string, n float64, others ...string) {
	e.t.Helper()
	verb := map[string]string{"tx": "sent", "rx": "received"}[dir]
	base := e.tunnelPackets(dir)
	e.waitFor(what, 10*time.Second, func() error {
		now := e.tunnelPackets(dir)
		if d := now[want] - base[want]; d < n {
			return fmt.Errorf("%s's tunnel %s %v packets, want %v (all: %v -> %v)", want, verb, d, n, base, now)
		}
		for _, o := range others {
			if d := now[o] - base[o]; d > n/10 {
				return fmt.Errorf("%s's tunnel %s %v packets, want few (all: %v -> %v)", o, verb, d, base, now)
			}
		}
		return nil
	})
}

// TestDataPlane, on each data plane (forBackends): the home
// address works both ways; a UDP and a TCP flow at once each go out the
// interface their policy names; cutting a flow's interface moves it to the
// next preferred one and restoring it moves it back; a killed mcoad leaves
// no duplicate rules behind once started again, and nothing at all once
// stopped or cleaned up.
func TestDataPlane(t *testing.T) {
	t.Parallel()
	forBackends(t, testDataPlane)
}

func testDataPlane(t *testing.T, backend string) {
	e := setupDataplaneWith(t, 0, backend)

	// The home address both ways: CN -> HoA and the replies.
	if out, err := e.lab.Exec(e.ctx, lab.CN, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", lab.HoA.String()); err != nil {
		t.Fatalf("ping CN -> HoA: %v\n%s", err, out)
	}
	// MN -> CN from a socket that binds nothing: the home address is its
	// source.
	if out, err := e.lab.Exec(e.ctx, lab.MN, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", lab.CNAddr.String()); err != nil {
		t.Fatalf("ping MN -> CN: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "from "+lab.CNAddr.String()) {
		t.Errorf("ping MN -> CN: %s", out)
	}

	// A UDP flow (policy voice: wlan0) and a TCP flow (policy bulk:
	// wwan0) at the same time; other traffic takes eth0, the best.
	udp := e.startStream(lab.MN, lab.CN, netip.AddrPortFrom(lab.CNAddr, udpPort), 5*time.Millisecond)
	tcp := e.startTCP(lab.MN, lab.CN, netip.AddrPortFrom(lab.CNAddr, tcpPort))
	if udp.Local != lab.HoA || tcp.Local != lab.HoA {
		t.Fatalf("flows from %s (udp) and %s (tcp), want the home address %s", udp.Local, tcp.Local, lab.HoA)
	}
	e.waitFor("both flows deliver", 10*time.Second, func() error {
		if udp.Got() < 50 || tcp.Read() < 50_000 {
			return fmt.Errorf("udp %d datagrams, tcp %d bytes", udp.Got(), tcp.Read())
		}
		return nil
	})
	e.growsOn("UDP on wlan0", "wlan0", 100, "eth0")
	e.growsOn("TCP on wwan0", "wwan0", 100, "eth0")
	e.checkWire("wlan0", "udp", udpPort)
	e.checkWire("wwan0", "tcp", tcpPort)
	// Downstream, the HA sends each flow back the way it came: the TCP
	// flow's acknowledgements through wwan0's tunnel.
	haTx := func() map[string]float64 {
		m := e.metrics(e.ha)
		out := map[string]float64{}
		for k, v := range m {
			for _, n := range ifaces {
				if strings.HasPrefix(k, "mcoa_ha_tunnel_tx_packets_total{") && strings.Contains(k, fmt.Sprintf(`bid="%d"`, e.bids[n])) {
					out[n] += v
				}
			}
		}
		return out
	}
	haBase := haTx()
	e.waitFor("the HA sends the TCP flow's ACKs through wwan0", 10*time.Second, func() error {
		now := haTx()
		if d := now["wwan0"] - haBase["wwan0"]; d < 100 {
			return fmt.Errorf("HA tunnelled %v packets to wwan0 (%v -> %v)", d, haBase, now)
		}
		return nil
	})
	counters := e.nftCounters()
	if counters["mcoad: policy voice bid "+strconv.Itoa(int(e.bids["wlan0"]))] == 0 ||
		counters["mcoad: policy bulk bid "+strconv.Itoa(int(e.bids["wwan0"]))] == 0 {
		t.Errorf("policy counters %v", counters)
	}

	// Cut wlan0: the UDP flow goes on over eth0 at once, and comes back
	// when wlan0 does.
	lostBefore := udp.Sent() - udp.Got()
	if err := e.lab.CutLink("wlan0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("wlan0's binding gone", registerTimeout, func() error { return e.registered("eth0", "wwan0") })
	e.growsOn("UDP moves to eth0", "eth0", 100, "wlan0")
	lost := udp.Sent() - udp.Got() - lostBefore
	t.Logf("UDP datagrams lost over the cut of wlan0: %d (one every 5ms); gaps %v", lost, udp.Gaps())
	if err := e.lab.RestoreLink("wlan0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("wlan0 registered again", 3*registerTimeout, func() error { return e.registered(ifaces...) })
	e.growsOn("UDP back on wlan0", "wlan0", 100, "eth0")
	if err := tcp.Err(); err != nil {
		t.Errorf("TCP flow: %v", err)
	}
	udp.Close()
	tcp.Close()

	// A policy added at run time (mcoactl) takes a flow that followed the
	// priorities (eth0) to wwan0. Deleted, it leaves that flow where it is
	// (a flow keeps its BID while the BID lives) and new flows follow the
	// priorities again.
	other := e.startStream(lab.MN, lab.CN, netip.AddrPortFrom(lab.CNAddr, 5003), 5*time.Millisecond)
	e.growsOn("UDP to 5003 on eth0, the best", "eth0", 100, "wlan0", "wwan0")
	e.mcoactl(e.mn, "policy", "add", "late", "-protocol", "udp", "-dst-port", "5003", "-prefer", "wwan*")
	if out := string(e.mcoactl(e.mn, "policy", "list")); !strings.Contains(out, "late") || !strings.Contains(out, "voice") {
		t.Errorf("mcoactl policy list:\n%s", out)
	}
	e.growsOn("UDP to 5003 on wwan0 after policy add", "wwan0", 100, "eth0", "wlan0")
	e.mcoactl(e.mn, "policy", "delete", "late")
	e.growsOn("the flow stays on wwan0 after policy delete", "wwan0", 100, "eth0", "wlan0")
	other.Close()
	other = e.startStream(lab.MN, lab.CN, netip.AddrPortFrom(lab.CNAddr, 5003), 5*time.Millisecond)
	e.growsOn("a new flow to 5003 on eth0", "eth0", 100, "wlan0", "wwan0")
	other.Close()

	// Large transfers through the tunnels, both ways, do not stall.
	e.bulk(lab.MN, lab.CN, netip.AddrPortFrom(lab.CNAddr, tcpPort), 8<<20)
	e.bulk(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, 7000), 8<<20)

	// Killed, then started again: the same rules, once each.
	before := e.ourRules()
	if len(before) == 0 {
		t.Fatal("no ip rules of mcoad")
	}
	if err := e.mn.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.mn.Proc().Done()
	if err := e.mn.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitFor("registered after the restart", registerTimeout, func() error { return e.registered(ifaces...) })
	e.waitFor("the same rules, once each", registerTimeout, func() error {
		after := e.ourRules()
		if !slices.Equal(sortedCopy(after), sortedCopy(before)) {
			return fmt.Errorf("rules:\n%s\nbefore the kill:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
		}
		return nil
	})
	if out, err := e.lab.Exec(e.ctx, lab.CN, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", lab.HoA.String()); err != nil {
		t.Errorf("ping CN -> HoA after the restart: %v\n%s", err, out)
	}

	// Stopped: nothing left.
	if err := e.mn.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Errorf("after mcoad stopped: %s", strings.Join(left, "; "))
	}
	// Killed: mcoad -cleanup removes what it left.
	if err := e.mn.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitFor("registered again, rules in place", registerTimeout, func() error {
		if err := e.registered(ifaces...); err != nil {
			return err
		}
		if n := len(e.ourRules()); n != len(before) {
			return fmt.Errorf("%d rules, want %d", n, len(before))
		}
		return nil
	})
	if err := e.mn.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.mn.Proc().Done()
	if len(e.ourRules()) == 0 {
		t.Fatal("a killed mcoad left no rules: nothing for -cleanup to do")
	}
	if out, err := e.lab.Exec(e.ctx, lab.MN, bins.mcoad, "-cleanup", "-config", e.mn.Config); err != nil {
		t.Fatalf("mcoad -cleanup: %v\n%s", err, out)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Errorf("after mcoad -cleanup: %s", strings.Join(left, "; "))
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "([^"]+)"`)

// nftCounters are the packet counters of mcoad's nftables rules, by
// comment.
func (e *env) nftCounters() map[string]int {
	e.t.Helper()
	out, err := e.lab.Exec(e.ctx, lab.MN, "nft", "list", "table", "ip6", "mcoad")
	if err != nil {
		e.t.Fatalf("nft: %v: %s", err, out)
	}
	m := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		if s := nftCounterRE.FindStringSubmatch(l); s != nil {
			n, _ := strconv.Atoi(s[1])
			m[s[2]] = n
		}
	}
	return m
}

// checkWire captures a second of the access link of iface at its router
// and wants tunnelled packets of the flow there (IPv6 in IPv6 from the
// interface's care-of address to the HA, inner protocol and port).
func (e *env) checkWire(iface, proto string, port int) {
	e.t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if nstest.Required() {
			e.t.Fatalf("no tshark for the wire check of %s (MCOA_E2E=1)", iface)
		}
		e.t.Logf("no tshark: wire check of %s skipped", iface)
		return
	}
	acc, err := lab.AccessOf(iface)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	filter := fmt.Sprintf("ipv6.src == %s && ipv6.dst == %s && ipv6.nxt == 41 && %s.dstport == %d", e.coas[iface], lab.HAAddr, proto, port)
	out, err := e.lab.Exec(ctx, acc.Router, "tshark", "-n", "-i", lab.RouterDownlink, "-a", "duration:1",
		"-Y", filter, "-T", "fields", "-e", "frame.number")
	if err != nil {
		var ee *lab.ExecError
		if errors.As(err, &ee) {
			e.t.Fatalf("tshark on %s %s: %v", acc.Router, lab.RouterDownlink, err)
		}
		e.t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && strings.Trim(l, "0123456789") == "" {
			n++
		}
	}
	if n < 10 {
		e.t.Errorf("%s: %d tunnelled %s packets to port %d in a second on %s's link, want the flow there\n%s", iface, n, proto, port, acc.Router, out)
	} else {
		e.t.Logf("%s: %d tunnelled %s/%d packets in a second on the wire", iface, n, proto, port)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// failoverCuts is how many carrier cuts a fail-over test makes: n, short
// with -short, MCOA_FAILOVER_CUTS if set.
func failoverCuts(n, short int) int {
	if testing.Short() {
		n = short
	}
	if c, err := strconv.Atoi(os.Getenv("MCOA_FAILOVER_CUTS")); err == nil && c > 0 {
		n = c
	}
	return n
}

// TestFailover measures the outage of a stream of datagrams from the CN to
// the home address, one every millisecond, each time the carrier of the
// interface it arrives on (eth0, the best) goes, and each time it comes
// back (the HA moves the stream back to it): 5 cuts, 2 with -short,
// MCOA_FAILOVER_CUTS=N for more. Cuts are a second and a half apart, so
// that the BUs they cause stay under RFC 6275's MAX_UPDATE_RATE (3 per
// second), which would otherwise delay them. It asserts only that the
// stream survives every cut; the figures are logged.
func TestFailover(t *testing.T) {
	t.Parallel()
	forBackends(t, testFailover)
}

func testFailover(t *testing.T, backend string) {
	cuts := failoverCuts(5, 2)
	e := setupDataplaneWith(t, 0, backend)
	probe := e.startStream(lab.CN, lab.MN, netip.AddrPortFrom(lab.HoA, probePort), time.Millisecond)
	e.waitFor("probes arrive", 5*time.Second, func() error {
		if probe.Got() < 200 {
			return fmt.Errorf("%d probes arrived", probe.Got())
		}
		return nil
	})
	e.rxGrowsOn("probes come through eth0", "eth0", 100, "wlan0", "wwan0")
	var down, up []time.Duration
	for i := 0; i < cuts; i++ {
		down = append(down, e.cutEth0(i, probe, nil))
		back := time.Now()
		if err := e.lab.RestoreLink("eth0"); err != nil {
			t.Fatal(err)
		}
		e.waitFor(fmt.Sprintf("cut %d: eth0 registered again", i+1), 3*registerTimeout, func() error { return e.registered(ifaces...) })
		e.probesFlow(fmt.Sprintf("cut %d: probes after the restore", i+1), probe)
		d, _ := probe.Outage(back, time.Second)
		up = append(up, d)
	}
	probe.Close()
	// The probes since the last restore went through the HA's bindings
	// (a binding's counters start again when it comes back).
	if tx := lab.SumMetric(e.metrics(e.ha), "mcoa_ha_tunnel_tx_packets_total"); tx < 100 {
		t.Errorf("the HA counts %v packets tunnelled, want at least the 100 probes since the restore", tx)
	}
	t.Logf("fail-over outage of a 1ms CN -> HoA stream over %d carrier cuts of eth0: p50 %v, p90 %v, max %v; all %v",
		cuts, percentile(down, 0.5), percentile(down, 0.9), percentile(down, 1), down)
	t.Logf("outage when eth0 comes back: p50 %v, max %v; all %v", percentile(up, 0.5), percentile(up, 1), up)
	t.Logf("probes: %d sent, %d received", probe.Sent(), probe.Got())
}

// cutEth0 cuts eth0's carrier (cut i of a series, a second after the last
// so that the BUs stay under RFC 6275's MAX_UPDATE_RATE), waits until eth0's
// binding is gone, then for after (if any), then until probe's stream flows
// again, and returns the stream's outage.
func (e *env) cutEth0(i int, probe *lab.Stream, after func()) time.Duration {
	e.t.Helper()
	time.Sleep(time.Second)
	cut := time.Now()
	if err := e.lab.CutLink("eth0"); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor(fmt.Sprintf("cut %d: eth0's binding gone", i+1), registerTimeout, func() error { return e.registered("wlan0", "wwan0") })
	if after != nil {
		after()
	}
	e.probesFlow(fmt.Sprintf("cut %d: probes arrive again", i+1), probe)
	d, _ := probe.Outage(cut, time.Second)
	return d
}

// probesFlow waits until 100 more of probe's packets arrived.
func (e *env) probesFlow(what string, probe *lab.Stream) {
	e.t.Helper()
	n := probe.Got()
	e.waitFor(what, 5*time.Second, func() error {
		if probe.Got() < n+100 {
			return fmt.Errorf("%d probes since", probe.Got()-n)
		}
		return nil
	})
}

// bulk sends n bytes on a new TCP connection from node to dst and checks
// they all arrive.
func (e *env) bulk(node, rnode string, dst netip.AddrPort, n int) {
	e.t.Helper()
	var ln net.Listener
	if err := e.inNode(rnode, func() (err error) { ln, err = net.Listen("tcp6", dst.String()); return err }); err != nil {
		e.t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var total int64
		buf := make([]byte, 256<<10)
		for {
			k, err := c.Read(buf)
			total += int64(k)
			if err != nil {
				got <- total
				return
			}
		}
	}()
	start := time.Now()
	err := e.inNode(node, func() error {
		c, err := net.DialTimeout("tcp6", dst.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err = c.Write(make([]byte, n))
		return err
	})
	if err != nil {
		e.t.Fatalf("bulk %s -> %s: %v", node, dst, err)
	}
	if total := <-got; total != int64(n) {
		e.t.Fatalf("bulk %s -> %s: %d of %d bytes arrived", node, dst, total, n)
	}
	e.t.Logf("bulk %s -> %s: %d MiB in %v", node, dst, n>>20, time.Since(start).Round(time.Millisecond))
}
