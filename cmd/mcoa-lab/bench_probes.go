package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// countTable is the nftables table probeCost counts in.
const countTable = "mcoa_lab_count"

// probeCostFigure: what crossed ar3's forward path between wwan0's
// care-of address and the HA in window, wwan0 carrying no traffic.
type probeCostFigure struct {
	iface               string
	window              time.Duration
	echoPkts, echoBytes uint64 // echo requests and replies (IPv6 packets)
	allPkts, allBytes   uint64 // anything from or to the care-of address
	probes              float64
}

// probeCost counts, with an nftables table of its own in ar3's forward
// path, the ICMPv6 echo requests from wwan0's care-of address to the HA
// and their replies (mcoad's keepalive probes of an idle path) over
// b.o.probeWin, with no traffic on wwan0.
func (b *bench) probeCost(ctx context.Context) (f probeCostFigure, err error) {
	f.iface, f.window = "wwan0", b.o.probeWin
	b.logf("liveness probe traffic on idle %s for %v (nftables counters in ar3)", f.iface, f.window)
	if err := b.allAlive(ctx, 15*time.Second); err != nil {
		return f, err
	}
	coa := b.coas[f.iface]
	bids, err := b.bids(ctx)
	if err != nil {
		return f, err
	}
	if err := b.startCounting(ctx, coa); err != nil {
		return f, err
	}
	defer b.lab.Exec(context.Background(), lab.AR3, "nft", "delete", "table", "inet", countTable)
	m0, err := b.mn.Metrics(ctx)
	if err != nil {
		return f, err
	}
	series := fmt.Sprintf(`mcoad_path_probes_total{bid="%d",interface="%s"}`, bids[f.iface], f.iface)
	if _, ok := m0[series]; !ok {
		return f, fmt.Errorf("mcoad has no metric %s", series)
	}
	if err := sleepCtx(ctx, f.window); err != nil {
		return f, err
	}
	m1, err := b.mn.Metrics(ctx)
	if err != nil {
		return f, err
	}
	out, err := b.lab.Output(ctx, lab.AR3, "nft", "-j", "list", "table", "inet", countTable)
	if err != nil {
		return f, fmt.Errorf("nft: %w: %s", err, out)
	}
	if err := f.addCounters(out); err != nil {
		return f, err
	}
	f.probes = m1[series] - m0[series]
	b.logf("  %s: %d echo packets, %d bytes; %d packets, %d bytes from or to %s in all; mcoad sent %.0f probes",
		f.iface, f.echoPkts, f.echoBytes, f.allPkts, f.allBytes, coa, f.probes)
	if f.echoPkts == 0 {
		return f, fmt.Errorf("no probe of %s crossed ar3 in %v", f.iface, f.window)
	}
	return f, nil
}

// startCounting loads countTable into ar3: counters of the echo probes
// between coa and the HA, and of all that comes from or goes to coa.
func (b *bench) startCounting(ctx context.Context, coa netip.Addr) error {
	script := fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority %[2]d; policy accept;
		ip6 saddr %[3]s ip6 daddr %[4]s icmpv6 type echo-request counter comment "echo"
		ip6 saddr %[4]s ip6 daddr %[3]s icmpv6 type echo-reply counter comment "echo"
		ip6 saddr %[3]s counter comment "all"
		ip6 daddr %[3]s counter comment "all"
	}
}
`, countTable, lab.FaultPriority-100, coa, lab.HAAddr)
	path := filepath.Join(b.lab.Dir, "bench-count.nft")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return err
	}
	if out, err := b.lab.Exec(ctx, lab.AR3, "nft", "-f", path); err != nil {
		return fmt.Errorf("nft: %w: %s", err, out)
	}
	return nil
}

// addCounters adds the counters of `nft -j list table` output to f.
func (f *probeCostFigure) addCounters(out []byte) error {
	rules, err := lab.ParseNftRules(out)
	if err != nil {
		return err
	}
	for _, r := range rules {
		switch r.Comment {
		case "echo":
			f.echoPkts += r.Packets
			f.echoBytes += r.Bytes
		case "all":
			f.allPkts += r.Packets
			f.allBytes += r.Bytes
		}
	}
	return nil
}

// markdown writes the probe traffic table.
func (f probeCostFigure) markdown(w io.Writer) {
	s := f.window.Seconds()
	fmt.Fprintf(w, "Path liveness probes on one idle path (%s through ar3, no traffic on it; nftables counters in ar3's forward path over %v:\n", f.iface, f.window)
	fmt.Fprintf(w, "ICMPv6 echo requests from its care-of address to the HA and their replies, 48-byte IPv6 packets, 62-byte Ethernet frames;\n")
	fmt.Fprintf(w, "mcoad's default keepalive of an idle path is one echo a second on an unmetered link, one in 30 s on a metered one).\n")
	fmt.Fprintf(w, "The metered case needs NetworkManager to mark the link and is not measured.\n\n")
	fmt.Fprintf(w, "| path | probes sent by mcoad | echo packets/s (both ways) | bytes/s (IPv6) | bytes/s (Ethernet frames) | all packets/s from or to the CoA | compared with |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| %s, unmetered, idle | %.2f/s | %.2f | %.1f | %.1f | %.2f | BFD at 3 × 50 ms: 20 packets/s each way, 72-byte IPv6 packets, about 2.9 kB/s both ways |\n\n",
		f.iface, f.probes/s, float64(f.echoPkts)/s, float64(f.echoBytes)/s, float64(f.echoBytes+14*f.echoPkts)/s, float64(f.allPkts)/s)
}
