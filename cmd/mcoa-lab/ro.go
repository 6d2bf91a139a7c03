package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

// roCorrespondent is mcoad's [[correspondent]] in `demo -ro`: the lab's CN.
var roCorrespondent = fmt.Sprintf("\n[[correspondent]]\naddress = %q\n", lab.CNAddr)

// roPings is the number of pings of step 2.
const roPings = 5

// runRO is `mcoa-lab demo -ro`: mcoad registers each care-of address with
// a correspondent node (return routability per CoA, one binding per BID),
// the CN's packets to the home address and the answers go
// route-optimised, and a lost interface takes only its own binding.
func (d *demo) runRO(ctx context.Context, prefix string, bins map[string]string) error {
	d.printf("mcoa-lab demo -ro: route optimisation with a correspondent node, one binding per BID\n\n")
	d.printf("Building the lab of `mcoa-lab demo`; the correspondent (cn) runs mcoa-ha as a correspondent\n")
	d.printf("node alone, with the TUN data plane; mcoad has cn as its [[correspondent]].\n")
	t := time.Now()
	l, err := lab.Up(ctx, &lab.Config{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	d.lab, d.dp = l, true
	if d.coas, err = l.CoAs(ctx); err != nil {
		return err
	}
	d.printf("  lab %s up in %v; care-of addresses by SLAAC:\n", l.Prefix, ms(time.Since(t)))
	for _, n := range demoIfaces {
		d.printf("    %-6s %-24s (priority %d)\n", n, d.coas[n], demoPriority[n])
	}
	if d.ha, err = l.StartHA(ctx, &lab.HAConfig{Bin: bins[lab.HABinary], Backend: "tun"}); err != nil {
		return err
	}
	cn, err := l.StartCN(ctx, &lab.CNConfig{Bin: bins[lab.HABinary]})
	if err != nil {
		return err
	}
	st, err := cn.Client.Status(ctx)
	if err != nil {
		return err
	}
	if !slices.Equal(st.Roles, []string{control.RoleCorrespondent}) || !slices.Equal(st.Correspondent, []netip.Addr{lab.CNAddr}) {
		return fmt.Errorf("the CN's mcoa-ha has roles %v for %v, want correspondent alone for %s", st.Roles, st.Correspondent, lab.CNAddr)
	}
	d.printf("  mcoa-ha in %s: home agent; mcoa-ha in %s: correspondent node alone (roles %v)\n", l.NS(lab.HA), l.NS(lab.CN), st.Roles)

	return d.runSteps(ctx, []demoStep{
		{"registration with the HA (bulk), then with the CN: return routability per care-of address", func(ctx context.Context) error {
			return d.roRegister(ctx, bins[lab.MNBinary], cn)
		}},
		{"a ping from the CN to the home address goes route-optimised, not through the HA", d.roPing},
		{"eth0 loses its carrier: its CN binding goes, the ping moves to wlan0's route-optimised path", d.roCut},
		{"eth0's carrier comes back: registered again with the HA and the CN", d.roRestore},
	})
}

func (d *demo) roRegister(ctx context.Context, bin string, cn *lab.Daemon) error {
	cnMark := cn.BUMark()
	tun0, err := d.haTunnel(ctx)
	if err != nil {
		return err
	}
	rr, err := d.cnLinkCapture(ctx, "cn-register.pcapng")
	if err != nil {
		return err
	}
	if err := d.register(ctx, &lab.MNConfig{Bin: bin, Backend: "tun", Extra: roCorrespondent}); err != nil {
		return err
	}
	// From here on the tables show the CN's cache too.
	d.cn = cn
	if _, err := within(ctx, 10*time.Second, "three bindings in the CN's cache", func(ctx context.Context) error {
		if err := d.cnCacheIs(ctx, demoIfaces...); err != nil {
			return err
		}
		return d.mnRegisteredAs(ctx, control.RoleCN, 3)
	}); err != nil {
		return err
	}
	took := time.Since(d.mnUp)
	// What went on the wire: the test inits as the CN's link saw them,
	// the BUs as the CN reports them.
	if err := d.checkTestInits(ctx, rr); err != nil {
		return err
	}
	if err := d.checkCNBUs(cn, cnMark); err != nil {
		return err
	}
	tun1, err := d.haTunnel(ctx)
	if err != nil {
		return err
	}
	if tun1.rx-tun0.rx < 1 || tun1.tx-tun0.tx < 1 {
		return fmt.Errorf("the HA's tunnels carried %v packets in and %v out: the home test did not go through them", tun1.rx-tun0.rx, tun1.tx-tun0.tx)
	}
	d.printf("   return routability: one HoTI from %s through the HA's tunnel (HA tunnel packets: %.0f in, %.0f out),\n",
		lab.HoA, tun1.rx-tun0.rx, tun1.tx-tun0.tx)
	d.printf("   one CoTI from each care-of address; then one BU per BID from its care-of address, BA status 0\n")
	d.printf("   the CN holds BIDs %d/%d/%d %v after mcoad started\n", d.bids["eth0"], d.bids["wlan0"], d.bids["wwan0"], ms(took))
	d.tables(ctx)
	d.printf("   ok: three home registrations (role ha) and three correspondent bindings (role cn), one per BID\n")
	return nil
}

// cnLinkCapture captures the Mobility Headers on the CN's link into file
// (in the lab's directory); nil without tshark.
func (d *demo) cnLinkCapture(ctx context.Context, file string) (*lab.Capture, error) {
	if lab.CheckTools("tshark") != nil {
		return nil, nil
	}
	return d.lab.StartCapture(ctx, lab.CN, lab.Uplink, lab.MHFilter, filepath.Join(d.lab.Dir, file))
}

// testInits counts the HoTIs and CoTIs capture c holds once done says
// all that was awaited is there (at most 5s), then stops it; nil without
// a capture (no tshark).
func (d *demo) testInits(ctx context.Context, c *lab.Capture, done func(map[lab.MHSent]int) bool) (map[lab.MHSent]int, error) {
	if c == nil {
		d.printf("   (no tshark: the test init messages on the CN's link are not counted)\n")
		return nil, nil
	}
	defer c.Stop()
	return c.CountMHUntil(ctx, 5*time.Second, done)
}

// checkTestInits checks that one HoTI came from the home address and one
// CoTI from each care-of address.
func (d *demo) checkTestInits(ctx context.Context, c *lab.Capture) error {
	sent, err := d.testInits(ctx, c, func(n map[lab.MHSent]int) bool {
		all := n[lab.MHSent{Type: proto.TypeHoTI, Src: lab.HoA}] > 0
		for _, i := range demoIfaces {
			all = all && n[lab.MHSent{Type: proto.TypeCoTI, Src: d.coas[i]}] > 0
		}
		return all
	})
	if err != nil || sent == nil {
		return err
	}
	if n := sent[lab.MHSent{Type: proto.TypeHoTI, Src: lab.HoA}]; n != 1 {
		return fmt.Errorf("mcoad sent %d HoTIs from the home address, want 1", n)
	}
	for _, n := range demoIfaces {
		if c := sent[lab.MHSent{Type: proto.TypeCoTI, Src: d.coas[n]}]; c != 1 {
			return fmt.Errorf("mcoad sent %d CoTIs from %s's care-of address %s, want 1", c, n, d.coas[n])
		}
	}
	return nil
}

// checkCoTIsOf checks that the CoTIs of capture c came from iface's
// care-of address alone, at least one.
func (d *demo) checkCoTIsOf(ctx context.Context, c *lab.Capture, iface string) error {
	own := lab.MHSent{Type: proto.TypeCoTI, Src: d.coas[iface]}
	inits, err := d.testInits(ctx, c, func(n map[lab.MHSent]int) bool { return n[own] > 0 })
	if err != nil || inits == nil {
		return err
	}
	cotis := 0
	for k, n := range inits {
		if k.Type == proto.TypeCoTI {
			cotis += n
		}
	}
	if n := inits[own]; n < 1 || n != cotis {
		return fmt.Errorf("mcoad sent %d CoTIs, %d of them from %s's care-of address, want %s's alone (the CN's link saw %v)", cotis, n, iface, iface, inits)
	}
	return nil
}

// checkCNBUs checks that the CN accepted one BU from each care-of
// address since mark, each carrying its BID alone.
func (d *demo) checkCNBUs(cn *lab.Daemon, mark int) error {
	var from []string
	for _, bu := range d.cnBUs(cn, mark) {
		if bu.Status != 0 || bu.HoA != lab.HoA {
			return fmt.Errorf("the CN reported a BU %+v, want status 0 from %s", bu, lab.HoA)
		}
		if len(bu.BIDs) != 1 {
			return fmt.Errorf("a BU to the CN from %s carries %d BIDs, want one per BU", bu.Src, len(bu.BIDs))
		}
		from = append(from, d.ifaceOf(bu.Src))
	}
	slices.Sort(from)
	if !slices.Equal(from, demoIfaces) {
		return fmt.Errorf("the CN accepted BUs from %v, want one from each care-of address", from)
	}
	return nil
}

// cnBUs are the BUs the correspondent's mcoa-ha processed since mark.
func (d *demo) cnBUs(cn *lab.Daemon, mark int) []control.BU {
	var out []control.BU
	for _, bu := range lab.Processed(cn.BUsSince(mark)) {
		if bu.Correspondent {
			out = append(out, bu)
		}
	}
	return out
}

// tunnelPackets is what the HA's tunnels carried, summed over bindings.
type tunnelPackets struct{ rx, tx float64 }

func (d *demo) haTunnel(ctx context.Context) (tunnelPackets, error) {
	m, err := d.ha.Metrics(ctx)
	return tunnelPackets{rx: lab.SumMetric(m, "mcoa_ha_tunnel_rx_packets_total"), tx: lab.SumMetric(m, "mcoa_ha_tunnel_tx_packets_total")}, err
}

// roCounts are the MN's route-optimised packet counters by interface, and
// which interfaces have a route-optimised route (a counter at all).
type roCounts struct {
	tx, rx map[string]float64
	route  map[string]bool
}

func (d *demo) roCounts(ctx context.Context) (roCounts, error) {
	m, err := d.mn.Metrics(ctx)
	c := roCounts{tx: map[string]float64{}, rx: map[string]float64{}, route: map[string]bool{}}
	for _, n := range demoIfaces {
		k := fmt.Sprintf(`{bid="%d"}`, d.bids[n])
		c.tx[n], c.route[n] = m["mcoad_ro_tx_packets_total"+k]
		c.rx[n] = m["mcoad_ro_rx_packets_total"+k]
	}
	return c, err
}

// cnRO is the CN's count of route-optimised packets to (tx, with a type 2
// routing header) and from (rx, with a Home Address option) n's binding.
func (d *demo) cnRO(ctx context.Context, n string) (tx, rx float64, err error) {
	m, err := d.cn.Metrics(ctx)
	k := fmt.Sprintf(`{bid="%d",hoa="%s"}`, d.bids[n], lab.HoA)
	return m["mcoa_cn_ro_tx_packets_total"+k], m["mcoa_cn_ro_rx_packets_total"+k], err
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// cnPing pings the home address from the CN with ping's args and returns
// how many echo requests went and how many were answered.
func (d *demo) cnPing(ctx context.Context, args ...string) (sent, got int, err error) {
	out, err := d.lab.Exec(ctx, lab.CN, "ping", append(append([]string{"-6", "-n"}, args...), lab.HoA.String())...)
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("ping %s from the CN: %v\n%s", lab.HoA, err, out)
	}
	sent, _ = strconv.Atoi(string(m[1]))
	got, _ = strconv.Atoi(string(m[2]))
	return sent, got, nil
}

func (d *demo) roPing(ctx context.Context) error {
	if _, err := within(ctx, 10*time.Second, "route-optimised routes for the three BIDs in mcoad's data plane", func(ctx context.Context) error {
		c, err := d.roCounts(ctx)
		if err == nil && (!c.route["eth0"] || !c.route["wlan0"] || !c.route["wwan0"]) {
			err = fmt.Errorf("routes %v", c.route)
		}
		return err
	}); err != nil {
		return err
	}
	var capt *lab.Capture
	if lab.CheckTools("tshark") == nil {
		var err error
		if capt, err = d.lab.StartCapture(ctx, lab.MN, "eth0", roFilter, filepath.Join(d.lab.Dir, "mn-eth0-ro.pcapng")); err != nil {
			return err
		}
		defer capt.Stop()
	}
	tun0, err := d.haTunnel(ctx)
	if err != nil {
		return err
	}
	ro0, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	cntx0, cnrx0, err := d.cnRO(ctx, "eth0")
	if err != nil {
		return err
	}
	sent, got, err := d.cnPing(ctx, "-c", strconv.Itoa(roPings), "-i", "0.2", "-W", "2")
	if err != nil {
		return err
	}
	if got != sent {
		return fmt.Errorf("cn$ ping -c %d %s: %d of %d answered", roPings, lab.HoA, got, sent)
	}
	d.printf("   cn$ ping -c %d %s: %d transmitted, %d received\n", roPings, lab.HoA, sent, got)
	tun1, err := d.haTunnel(ctx)
	if err != nil {
		return err
	}
	ro1, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	cntx1, cnrx1, err := d.cnRO(ctx, "eth0")
	if err != nil {
		return err
	}
	if tun1 != tun0 {
		return fmt.Errorf("the HA's tunnels carried %v packets in and %v out during the ping, want none", tun1.rx-tun0.rx, tun1.tx-tun0.tx)
	}
	mntx, mnrx := ro1.tx["eth0"]-ro0.tx["eth0"], ro1.rx["eth0"]-ro0.rx["eth0"]
	if mntx < roPings || mnrx < roPings {
		return fmt.Errorf("mcoad's route-optimised counters for eth0 grew by %v sent, %v received, want %d each", mntx, mnrx, roPings)
	}
	if cntx1-cntx0 < roPings || cnrx1-cnrx0 < roPings {
		return fmt.Errorf("the CN's route-optimised counters for eth0's binding grew by %v sent, %v received, want %d each", cntx1-cntx0, cnrx1-cnrx0, roPings)
	}
	d.printf("   HA tunnels: no packet in or out (%.0f / %.0f before and after)\n", tun0.rx+tun0.tx, tun1.rx+tun1.tx)
	d.printf("   MN mcoad_ro_{tx,rx}_packets_total{bid=\"%d\"} (eth0): +%.0f / +%.0f\n", d.bids["eth0"], mntx, mnrx)
	d.printf("   CN mcoa_cn_ro_{tx,rx}_packets_total{bid=\"%d\"} (eth0's binding): +%.0f / +%.0f\n", d.bids["eth0"], cntx1-cntx0, cnrx1-cnrx0)
	if capt == nil {
		d.printf("   (no tshark: the capture on eth0 is skipped)\n")
	} else if err := d.summariseROCapture(ctx, capt); err != nil {
		return err
	}
	d.printf("   ok: both directions route-optimised on eth0 (the best BID), nothing through the home agent\n")
	return nil
}

// roFilter captures on the MN's eth0 the packets whose first extension
// header is a routing header or destination options.
const roFilter = "ip6 proto 43 or ip6 proto 60"

// summariseROCapture stops the capture and checks, with Wireshark's
// decoding, that the echo requests came to eth0's care-of address with a
// type 2 routing header and the replies left it with a Home Address
// option, both for the home address.
func (d *demo) summariseROCapture(ctx context.Context, c *lab.Capture) error {
	time.Sleep(300 * time.Millisecond) // the last reply into the file
	c.Stop()
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-r", c.File, "-Y", "icmpv6.type == 128 || icmpv6.type == 129", "-T", "fields",
		"-e", "icmpv6.type", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.routing.type",
		"-e", "ipv6.routing.mipv6.home_address", "-e", "ipv6.opt.mipv6.home_address").Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return fmt.Errorf("tshark -r %s: %w: %s", c.File, err, ee.Stderr)
	} else if err != nil {
		return fmt.Errorf("tshark -r %s: %w", c.File, err)
	}
	coa, cn, hoa := d.coas["eth0"].String(), lab.CNAddr.String(), lab.HoA.String()
	var req, rep int
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch line {
		case strings.Join([]string{"128", cn, coa, "2", hoa, ""}, "\t"):
			req++
		case strings.Join([]string{"129", coa, cn, "", "", hoa}, "\t"):
			rep++
		default:
			return fmt.Errorf("on the MN's eth0: %q is neither an echo request with a type 2 routing header for %s nor a reply with a Home Address option", line, hoa)
		}
	}
	// A capture stopped by a signal may lose its last packet; the
	// counters above counted them all.
	if req < roPings-1 || rep < roPings-1 {
		return fmt.Errorf("on the MN's eth0: %d echo requests with a type 2 routing header, %d replies with a Home Address option, want %d each", req, rep, roPings)
	}
	d.printf("   tshark on the MN's eth0: %d echo requests %s -> %s with a type 2 routing header (home address %s),\n", req, cn, coa, hoa)
	d.printf("   %d echo replies %s -> %s with a Home Address option (%s)\n", rep, coa, cn, hoa)
	return nil
}

// pingResult is what cnPing said.
type pingResult struct {
	sent, got int
	err       error
}

// cnPingEvery pings the home address from the CN every interval for
// deadline on a goroutine; the channel gets the result.
func (d *demo) cnPingEvery(ctx context.Context, interval, deadline time.Duration) <-chan pingResult {
	done := make(chan pingResult, 1)
	go func() {
		var r pingResult
		r.sent, r.got, r.err = d.cnPing(ctx, "-i", strconv.FormatFloat(interval.Seconds(), 'f', -1, 64),
			"-w", strconv.Itoa(int(deadline/time.Second)), "-W", "1")
		done <- r
	}()
	return done
}

func (d *demo) roCut(ctx context.Context) error {
	const interval, deadline = 50 * time.Millisecond, 3 * time.Second
	done := d.cnPingEvery(ctx, interval, deadline)
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	d.printf("   the CN pings %s every %v for %v\n", lab.HoA, interval, deadline)
	ro0, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	cnMark := d.cn.BUMark()
	if err := d.lab.CutLink("eth0"); err != nil {
		return err
	}
	took, err := within(ctx, 10*time.Second, "eth0's binding removed from the CN's cache", func(ctx context.Context) error {
		return d.cnCacheIs(ctx, "wlan0", "wwan0")
	})
	if err != nil {
		return err
	}
	via, err := d.removalVia("CN", d.cnBUs(d.cn, cnMark))
	if err != nil {
		return err
	}
	d.printf("   binding %d (eth0) removed from the CN's cache %v after the carrier loss, by a BU from %s\n",
		d.bids["eth0"], ms(took), via)
	if _, err := within(ctx, 5*time.Second, "the ping route-optimised on wlan0", func(ctx context.Context) error {
		return d.roMovedTo(ctx, "wlan0", ro0)
	}); err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "eth0's home registration removed", func(ctx context.Context) error {
		if err := d.checkCache(ctx, "wlan0", "wwan0"); err != nil {
			return err
		}
		if err := d.mnRegistered(ctx, 2); err != nil {
			return err
		}
		return d.mnRegisteredAs(ctx, control.RoleCN, 2)
	}); err != nil {
		return err
	}
	var r pingResult
	select {
	case r = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return r.err
	}
	ro1, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	d.printf("   the ping went on through wlan0's route-optimised path (mcoad's counters for wlan0: +%.0f sent, +%.0f received)\n",
		ro1.tx["wlan0"]-ro0.tx["wlan0"], ro1.rx["wlan0"]-ro0.rx["wlan0"])
	d.printf("   cn$ ping -i %v -w %v %s: %d transmitted, %d answered, %d lost over the cut\n",
		interval.Seconds(), deadline.Seconds(), lab.HoA, r.sent, r.got, r.sent-r.got)
	if r.got < r.sent/2 {
		return fmt.Errorf("only %d of %d pings answered over the cut", r.got, r.sent)
	}
	d.tables(ctx)
	d.printf("   ok: wlan0 and wwan0 stay bound at the HA and the CN; the ping answered through wlan0\n")
	return nil
}

// roMovedTo checks that the route-optimised traffic left eth0 for iface
// since ro0: eth0 has no route-optimised route, and iface carried at least
// 10 packets each way.
func (d *demo) roMovedTo(ctx context.Context, iface string, ro0 roCounts) error {
	ro1, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	if ro1.route["eth0"] {
		return fmt.Errorf("eth0 still has a route-optimised route: %v", ro1.route)
	}
	if ro1.tx[iface]-ro0.tx[iface] < 10 || ro1.rx[iface]-ro0.rx[iface] < 10 {
		return fmt.Errorf("%s's route-optimised packets: tx %v -> %v, rx %v -> %v", iface, ro0.tx[iface], ro1.tx[iface], ro0.rx[iface], ro1.rx[iface])
	}
	return nil
}

func (d *demo) roRestore(ctx context.Context) error {
	rr, err := d.cnLinkCapture(ctx, "cn-restore.pcapng")
	if err != nil {
		return err
	}
	back, err := d.relink(ctx)
	if err != nil {
		return err
	}
	if _, err := within(ctx, 10*time.Second, "eth0 bound at the CN again", func(ctx context.Context) error {
		if err := d.cnCacheIs(ctx, demoIfaces...); err != nil {
			return err
		}
		return d.mnRegisteredAs(ctx, control.RoleCN, 3)
	}); err != nil {
		return err
	}
	took := time.Since(back)
	if err := d.checkCoTIsOf(ctx, rr, "eth0"); err != nil {
		return err
	}
	d.printf("   eth0 bound at the CN again %v after its carrier came back (a care-of test for eth0 alone)\n", ms(took))
	if err := d.mnRegistered(ctx, 3); err != nil {
		return err
	}
	d.tables(ctx)
	// eth0 is the best BID again: the CN's packets go back to it.
	if _, err := within(ctx, 5*time.Second, "eth0's route-optimised route back", func(ctx context.Context) error {
		c, err := d.roCounts(ctx)
		if err == nil && !c.route["eth0"] {
			err = fmt.Errorf("routes %v", c.route)
		}
		return err
	}); err != nil {
		return err
	}
	ro0, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	sent, got, err := d.cnPing(ctx, "-c", "3", "-i", "0.2", "-W", "2")
	if err != nil {
		return err
	}
	ro1, err := d.roCounts(ctx)
	if err != nil {
		return err
	}
	// The MN answers from eth0, the best BID; the CN sends on the BID
	// the MN last used towards it (its flow memory), so its first echo
	// request may still take wlan0, and the rest follow the MN to eth0.
	tx, rx := ro1.tx["eth0"]-ro0.tx["eth0"], ro1.rx["eth0"]-ro0.rx["eth0"]
	rxAll := rx + ro1.rx["wlan0"] - ro0.rx["wlan0"] + ro1.rx["wwan0"] - ro0.rx["wwan0"]
	if got != sent || tx < 3 || rx < 2 || rxAll < 3 {
		return fmt.Errorf("ping after eth0 came back: %d of %d answered; eth0's route-optimised packets +%v sent, +%v received (+%v received in all)",
			got, sent, tx, rx, rxAll)
	}
	d.printf("   cn$ ping -c 3 %s: %d answered; route-optimised on eth0 again: the MN's replies %.0f of 3,\n", lab.HoA, got, tx)
	d.printf("   the CN's requests %.0f of 3 (the CN follows the BID the MN last answered on)\n", rx)
	d.printf("   ok: three bindings with the HA and three with the CN again\n")
	return nil
}
