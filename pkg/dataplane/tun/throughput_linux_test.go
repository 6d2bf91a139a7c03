package tun

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// benchWanted: the throughput measurement runs with MCOA_BENCH=1 or when
// -run names it, never as part of a plain `go test ./...`.
func benchWanted() bool {
	if os.Getenv("MCOA_BENCH") == "1" {
		return true
	}
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), "Throughput")
}

func iperf(t *testing.T, ns *nstest.NS, args ...string) (bps float64, retrans int) {
	t.Helper()
	var out string
	var err error
	for range 20 { // the server may still be starting
		out, err = ns.Try(append([]string{"iperf3", "-J", "-c", lab.CNAddr.String()}, args...)...)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3 %v: %v\n%s", args, err, out)
	}
	r, err := lab.ParseIperf([]byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r.BitsPerSecond, r.Retransmits
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestThroughput measures the userspace tunnel against the direct path in
// the same lab: TCP throughput HoA<->CN through MN -> HA -> CN versus
// CoA<->CN directly (target ratio >= 0.3), and the round-trip time the
// tunnel adds (target p50 < 100 us). It logs figures and asserts none.
//
//	go test -run TestThroughput -v ./pkg/dataplane
func TestThroughput(t *testing.T) {
	if testing.Short() || !benchWanted() {
		t.Skip("a measurement: MCOA_BENCH=1 or -run TestThroughput")
	}
	tl := newTunnelLab(t, "iperf3")
	tl.Set(t, []uint16{1}, []dataplane.HABinding{binding(1, 10)})
	tl.policy(t, 1)
	coa := pkttest.TCoA[0].String()
	// The direct path leaves by eth0 too, so both cross the same access link.
	tl.mn.Exec(t, "ip", "-6", "route", "add", lab.CNPrefix.String(), "via", lab.Accesses[0].RouterAddr.String(), "dev", "eth0", "table", "900")
	tl.mn.Exec(t, "ip", "-6", "rule", "add", "from", coa, "lookup", "900", "pref", "90")

	srv := tl.cn.Command("iperf3", "-s", "-B", lab.CNAddr.String())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	for _, dir := range []struct {
		name string
		args []string
	}{{"MN->CN", nil}, {"CN->MN", []string{"-R"}}} {
		direct, dr := iperf(t, tl.mn, append([]string{"-B", coa, "-t", "5"}, dir.args...)...)
		tunnelled, tr := iperf(t, tl.mn, append([]string{"-B", lab.HoA.String(), "-t", "5"}, dir.args...)...)
		// The lab's veths pass 64 KiB TSO packets whole through every
		// hop of the direct path; the tunnel's outer packets must be
		// real segments. The same direct path with TSO and GSO off on
		// both ends forwards segments too: the per-packet baseline.
		setSegmentation(t, tl.mn, "eth0", false)
		setSegmentation(t, tl.cn, lab.Uplink, false)
		segmented, _ := iperf(t, tl.mn, append([]string{"-B", coa, "-t", "5"}, dir.args...)...)
		setSegmentation(t, tl.mn, "eth0", true)
		setSegmentation(t, tl.cn, lab.Uplink, true)
		t.Logf("TCP %s: direct %.2f Gbit/s (%d retransmits), tunnel %.2f Gbit/s (%d retransmits), ratio %.2f (target >= 0.3); direct without TSO/GSO %.2f Gbit/s, ratio to it %.2f",
			dir.name, direct/1e9, dr, tunnelled/1e9, tr, tunnelled/direct, segmented/1e9, tunnelled/segmented)
	}

	_, direct, out := ping(tl.mn, "-c", "50", "-i", "0.01", "-I", coa, lab.CNAddr.String())
	_, tunnelled, out2 := ping(tl.mn, "-c", "50", "-i", "0.01", "-I", lab.HoA.String(), lab.CNAddr.String())
	if len(direct) < 45 || len(tunnelled) < 45 {
		t.Fatalf("pings lost:\n%s\n%s", out, out2)
	}
	// The tunnel's path is the triangle MN -> HA -> CN; the same triangle
	// routed by the kernel alone is what the tunnel itself adds to.
	_, toHA, out3 := ping(tl.mn, "-c", "50", "-i", "0.01", "-I", coa, lab.HAAddr.String())
	_, haCN, out4 := ping(tl.ha, "-c", "50", "-i", "0.01", lab.CNAddr.String())
	if len(toHA) < 45 || len(haCN) < 45 {
		t.Fatalf("pings lost:\n%s\n%s", out3, out4)
	}
	dm, tm := median(direct)*1000, median(tunnelled)*1000
	tri := (median(toHA) + median(haCN)) * 1000
	t.Logf("RTT p50: direct %.0f us, tunnel %.0f us, added %.0f us (target < 100 us); the triangle MN-HA-CN without tunnel %.0f us, tunnel overhead over it %.0f us",
		dm, tm, tm-dm, tri, tm-tri)
	st := tl.be.Stats()
	t.Logf("MN counters %+v drops %+v", st.Tunnels[1], st.Drops)
	hs := tl.hp.Stats()
	t.Logf("HA counters %+v drops %+v", hs.Bindings[dataplane.BindingKey{HoA: lab.HoA, BID: 1}], hs.Drops)
}

func setSegmentation(t *testing.T, ns *nstest.NS, dev string, on bool) {
	t.Helper()
	if err := lab.SetSegmentation(ns.Name, dev, on); err != nil {
		t.Fatal(err)
	}
}
