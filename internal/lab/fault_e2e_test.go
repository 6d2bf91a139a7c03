package lab

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
)

var pingStatsRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingBurst sends count echo requests from the MN through iface to dst,
// interval apart, and returns how many were answered.
func pingBurst(t *testing.T, ctx context.Context, l *Lab, iface string, dst netip.Addr, count int, interval string) int {
	t.Helper()
	// The exit status is 1 when replies are missing: the counts decide.
	out, _ := l.Exec(ctx, MN, "ping", "-6", "-n", "-q", "-c", strconv.Itoa(count), "-i", interval, "-W", "1", "-I", iface, dst.String())
	m := pingStatsRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ping via %s to %s: no statistics:\n%s", iface, dst, out)
	}
	if sent, _ := strconv.Atoi(m[1]); sent != count {
		t.Fatalf("ping via %s to %s: %d sent, want %d:\n%s", iface, dst, sent, count, out)
	}
	recv, _ := strconv.Atoi(m[2])
	return recv
}

// snmp6 returns a counter of /proc/net/snmp6 (file "") or of
// /proc/net/dev_snmp6/FILE in a node.
func snmp6(t *testing.T, ctx context.Context, l *Lab, node, file, key string) int {
	t.Helper()
	path := "/proc/net/snmp6"
	if file != "" {
		path = "/proc/net/dev_snmp6/" + file
	}
	out, err := l.Exec(ctx, node, "cat", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("%s in %s: %q", key, path, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in %s of %s", key, path, node)
	return 0
}

func faultStatus(t *testing.T, l *Lab, node string) FaultState {
	t.Helper()
	st, err := l.FaultStatus(node)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A black hole on ar1 kills eth0's path upstream while its link looks as
// healthy as before; random loss drops about the share asked for in each
// direction; clear brings everything back.
func TestFault(t *testing.T) {
	requireE2E(t)
	nstest.Require(t, "nft")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	// Frequent RAs, so that RAs seen during the fault prove the router
	// still sends them.
	l := upForTest(t, ctx, &Config{MinRAInterval: 300 * time.Millisecond, MaxRAInterval: time.Second})
	coa, err := l.WaitCoA(ctx, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range []string{"eth0", "wlan0"} {
		if err := l.PingFrom(ctx, MN, ifc, HAAddr); err != nil {
			t.Fatalf("before any fault: %v", err)
		}
	}
	defRoute := func() string {
		t.Helper()
		out, err := l.Exec(ctx, MN, "ip", "-6", "route", "show", "default", "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		// Only the gateway: the expiry counts down.
		return strings.Join(strings.Fields(string(out))[:3], " ")
	}
	routeBefore := defRoute()

	// Black hole.
	if err := l.Fault(AR1, Fault{Kind: FaultBlackhole}); err != nil {
		t.Fatal(err)
	}
	ras := snmp6(t, ctx, l, MN, "eth0", "Icmp6InRouterAdvertisements")
	if got := pingBurst(t, ctx, l, "eth0", HAAddr, 5, "0.2"); got != 0 {
		t.Errorf("black hole on ar1: %d of 5 pings via eth0 (from %s) to the HA answered", got, coa)
	}
	if err := l.PingFrom(ctx, MN, "wlan0", HAAddr); err != nil {
		t.Errorf("black hole on ar1: via wlan0: %v", err)
	}
	// The router itself still answers on the link.
	if err := l.PingFrom(ctx, MN, "eth0", Accesses[0].RouterAddr); err != nil {
		t.Errorf("black hole on ar1: ar1's own address: %v", err)
	}
	st, err := l.Link(ctx, MN, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if st.NoCarrier() || st.OperState != "UP" {
		t.Errorf("black hole on ar1: eth0 operstate %s flags %v", st.OperState, st.Flags)
	}
	if now, ok, err := l.coa(ctx, "eth0", Accesses[0].Prefix); err != nil || !ok || now != coa {
		t.Errorf("black hole on ar1: eth0's care-of address %s became %s (%v, %v)", coa, now, ok, err)
	}
	if r := defRoute(); r != routeBefore {
		t.Errorf("black hole on ar1: eth0's default route %q became %q", routeBefore, r)
	}
	for snmp6(t, ctx, l, MN, "eth0", "Icmp6InRouterAdvertisements") == ras {
		if ctx.Err() != nil {
			t.Fatal("black hole on ar1: no Router Advertisement reached eth0")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fs := faultStatus(t, l, AR1)
	if fs.Fault.Kind != FaultBlackhole || fs.Dropped < 5 || fs.DroppedBytes == 0 {
		t.Errorf("FaultStatus(ar1) under a black hole = %+v, want >= 5 drops", fs)
	}
	if faults, err := l.Faults(); err != nil || len(faults) != 1 || faults[0].Node != AR1 {
		t.Errorf("Faults = %+v, %v; want ar1's", faults, err)
	}
	t.Logf("black hole: %+v", fs)

	// Random loss of 50 % in each direction.
	if err := l.Fault(AR1, Fault{Kind: FaultLoss, Percent: 50}); err != nil {
		t.Fatal(err)
	}
	if fs := faultStatus(t, l, AR1); fs.Fault != (Fault{Kind: FaultLoss, Percent: 50}) || fs.Dropped != 0 {
		t.Errorf("FaultStatus(ar1) after loss 50 = %+v, want a fresh counter", fs)
	}
	const n = 200
	echos := snmp6(t, ctx, l, HA, "", "Icmp6InEchos")
	recv := pingBurst(t, ctx, l, "eth0", HAAddr, n, "0.01")
	reached := snmp6(t, ctx, l, HA, "", "Icmp6InEchos") - echos
	fs = faultStatus(t, l, AR1)
	lostUp := 1 - float64(reached)/n
	lostDown := 1 - float64(recv)/float64(max(reached, 1))
	lostRT := 1 - float64(recv)/n
	t.Logf("loss 50%%: %d sent, %d reached the HA (%.0f%% lost), %d replies back (%.0f%% lost), round trips %.0f%% lost (1-0.5² = 75%% expected); %d dropped",
		n, reached, 100*lostUp, recv, 100*lostDown, 100*lostRT, fs.Dropped)
	// Binomial: about 5 standard deviations either side.
	if lostUp < 0.3 || lostUp > 0.7 {
		t.Errorf("loss 50%%: %.0f%% of echo requests lost towards the HA", 100*lostUp)
	}
	if lostDown < 0.25 || lostDown > 0.75 {
		t.Errorf("loss 50%%: %.0f%% of echo replies lost towards the MN", 100*lostDown)
	}
	if lostRT < 0.6 || lostRT > 0.9 {
		t.Errorf("loss 50%%: %.0f%% of round trips lost", 100*lostRT)
	}
	// Nothing else crosses ar1 in a lab without daemons.
	if lost := uint64(n - recv); fs.Dropped < lost || fs.Dropped > lost+5 {
		t.Errorf("loss 50%%: the counter shows %d drops for %d lost pings", fs.Dropped, lost)
	}

	// Clear.
	if err := l.Fault(AR1, Fault{}); err != nil {
		t.Fatal(err)
	}
	if fs := faultStatus(t, l, AR1); fs != (FaultState{Node: AR1}) {
		t.Errorf("FaultStatus(ar1) after clear = %+v", fs)
	}
	if out, err := l.Exec(ctx, AR1, "nft", "list", "tables"); err != nil || strings.Contains(string(out), FaultTable) {
		t.Errorf("after clear: nft list tables: %v\n%s", err, out)
	}
	if got := pingBurst(t, ctx, l, "eth0", HAAddr, 20, "0.01"); got != 20 {
		t.Errorf("after clear: %d of 20 pings via eth0 answered", got)
	}
	for _, ifc := range []string{"eth0", "wlan0", "wwan0"} {
		if err := l.PingFrom(ctx, MN, ifc, CNAddr); err != nil {
			t.Errorf("after clear: via %s to the CN: %v", ifc, err)
		}
	}

	// A black hole in the core cuts every path, then clears.
	if err := l.Fault(Core, Fault{Kind: FaultBlackhole}); err != nil {
		t.Fatal(err)
	}
	for _, ifc := range []string{"eth0", "wlan0", "wwan0"} {
		if got := pingBurst(t, ctx, l, ifc, CNAddr, 2, "0.1"); got != 0 {
			t.Errorf("black hole in core: %d pings via %s answered", got, ifc)
		}
	}
	if fs := faultStatus(t, l, Core); fs.Dropped < 6 {
		t.Errorf("black hole in core: %+v, want >= 6 drops", fs)
	}
	if err := l.Fault(Core, Fault{}); err != nil {
		t.Fatal(err)
	}
	if err := l.PingFrom(ctx, MN, "wwan0", CNAddr); err != nil {
		t.Errorf("after clearing core: %v", err)
	}
	if faults, err := l.Faults(); err != nil || len(faults) != 0 {
		t.Errorf("Faults after clearing = %+v, %v", faults, err)
	}
}
