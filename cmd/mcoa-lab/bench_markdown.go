package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// markdown renders the figures as the bench's section of
// bench/results.md: the lab table, then the probe traffic, data plane,
// bulk and idle tables of the sections that ran.
func (f *benchFigures) markdown(o benchOpts) string {
	var md strings.Builder
	fmt.Fprintf(&md, "## Lab figures (`mcoa-lab bench`)\n\n")
	fmt.Fprintf(&md, "The lab of `make lab` (network namespaces joined by veth pairs, radvd on every link) with mcoa-ha and mcoad\n")
	fmt.Fprintf(&md, "(bulk registration, one BID per interface, `[dataplane] backend = \"tun\"` on both), on %s, %d cores.\n", cpuModel(), runtime.NumCPU())
	fmt.Fprintf(&md, "Percentiles are nearest-rank over the n samples (with n < 100, p99 is the maximum).\n\n")

	fmt.Fprintf(&md, "| figure | p50 | p99 | n | compared with | ratio (p50) |\n|---|---|---|---|---|---|\n")
	f.latencyRows(&md)
	f.bh.markdown(&md, f.gapM)
	f.failoverRows(&md)
	f.har.markdown(&md)
	f.mnr.markdown(&md)
	fmt.Fprintf(&md, "\n")
	if f.pc.echoPkts > 0 {
		f.pc.markdown(&md)
	}
	if o.want("dataplane") {
		f.dp.markdown(&md, o.iperf)
	}
	if f.bulk != nil {
		bulkMarkdown(&md, f.bulk)
	}
	if f.idle != nil {
		idleMarkdown(&md, f.idle, f.idleFor)
	}
	return md.String()
}

// latencyRows are the round trip, registration and carrier-loss rows.
func (f *benchFigures) latencyRows(md *strings.Builder) {
	rtt, reg, upS, cutS, gapM := f.rtt, f.reg, f.upS, f.cutS, f.gapM
	rtt50 := float64(rtt.pct(50))
	if len(rtt) > 0 {
		fmt.Fprintf(md, "| MN↔HA round trip (ping from eth0's CoA to the HA) | %s | %s | %d | the physical floor of any registration | 1.00× |\n",
			fmtDur(rtt.pct(50)), fmtDur(rtt.pct(99)), len(rtt))
	}
	if len(reg) > 0 {
		fmt.Fprintf(md, "| registration latency: new CoA (kernel address event) → BA accepted by mcoad | %s | %s | %d | MN↔HA RTT | %s |\n",
			fmtDur(reg.pct(50)), fmtDur(reg.pct(99)), len(reg), ratio(float64(reg.pct(50)), rtt50))
	}
	if len(upS) > 0 {
		fmt.Fprintf(md, "| registration latency: carrier back → BA accepted by mcoad | %s | %s | %d | MN↔HA RTT | %s |\n",
			fmtDur(upS.pct(50)), fmtDur(upS.pct(99)), len(upS), ratio(float64(upS.pct(50)), rtt50))
		fmt.Fprintf(md, "| fail-over, signaling: carrier lost → binding removed from the HA's cache (BU via another CoA) | %s | %s | %d | MN↔HA RTT | %s |\n",
			fmtDur(cutS.pct(50)), fmtDur(cutS.pct(99)), len(cutS), ratio(float64(cutS.pct(50)), rtt50))
		fmt.Fprintf(md, "| fail-over, data: gap in a 1 ms UDP probe stream CN → home address while the active interface (eth0) loses its carrier, MCoA | %s | %s | %d | single-CoA mode (below) | %s |\n",
			fmtDur(gapM.pct(50)), fmtDur(gapM.pct(99)), len(gapM), p50ratio(f.gapS, gapM))
	}
}

// markdown writes the black hole rows; gapM is the carrier-loss gap.
func (bh blackholeFigure) markdown(md *strings.Builder, gapM stats) {
	if len(bh.gap) == 0 {
		return
	}
	fmt.Fprintf(md, "| fail-over, black hole: the same gap when eth0's path dies beyond its access router (ar1 drops all it forwards; carrier, address and RAs stay), found by mcoad's path liveness | %s | %s | %d | "+
		"target p50 < 300 ms, p99 < 1 s; the carrier-loss gap above; mwan3 (OpenWrt multi-WAN) fails over in about 15 s by default, BFD detects in 3 × 50 ms = 150 ms | %s of 300 ms (p99: %s of 1 s); %s the carrier-loss gap; %s mwan3's 15 s |\n",
		fmtDur(bh.gap.pct(50)), fmtDur(bh.gap.pct(99)), len(bh.gap), ratio(float64(bh.gap.pct(50)), float64(300*time.Millisecond)),
		ratio(float64(bh.gap.pct(99)), float64(time.Second)), p50ratio(bh.gap, gapM), ratio(float64(bh.gap.pct(50)), float64(15*time.Second)))
	fmt.Fprintf(md, "| fail-over, black hole, signaling: fault in force → eth0's binding removed from the HA's cache (BU via another CoA) | %s | %s | %d | BFD's 150 ms detection | %s |\n",
		fmtDur(bh.detect.pct(50)), fmtDur(bh.detect.pct(99)), len(bh.detect), ratio(float64(bh.detect.pct(50)), float64(150*time.Millisecond)))
	fmt.Fprintf(md, "| black hole cleared → eth0 registered again (path answers, then the 1 s hold-down) | %s | %s | %d | the 1 s hold-down | %s |\n",
		fmtDur(bh.back.pct(50)), fmtDur(bh.back.pct(99)), len(bh.back), ratio(float64(bh.back.pct(50)), float64(time.Second)))
	fmt.Fprintf(md, "| black hole cleared: gap in the probe stream as it moves back from wlan0 to eth0 | %s | %s | %d | the black hole's gap | %s |\n",
		fmtDur(bh.backGap.pct(50)), fmtDur(bh.backGap.pct(99)), len(bh.backGap), ratio(float64(bh.backGap.pct(50)), float64(bh.gap.pct(50))))
}

// failoverRows are the single-CoA and vehicle gaps, against MCoA's.
func (f *benchFigures) failoverRows(md *strings.Builder) {
	if gapS := f.gapS; len(gapS) > 0 {
		fmt.Fprintf(md, "| the same gap, single-CoA mode (only eth0 registered: wlan0 and wwan0 `exclude = true`; no fail-over, outage until the carrier returns %s later and eth0 is registered again) | %s | %s | %d | MCoA gap | %s |\n",
			fmtDur(f.cutLen), fmtDur(gapS.pct(50)), fmtDur(gapS.pct(99)), len(gapS), p50ratio(gapS, f.gapM))
	}
	if gapV := f.gapV; len(gapV) > 0 {
		fmt.Fprintf(md, "| fail-over, vehicle: gap in a 1 ms UDP probe stream CN → a host behind mcoad as NEMO mobile router (`mcoa-lab up -vehicle`) while eth0 loses its carrier | %s | %s | %d | home address gap (MCoA) | %s |\n",
			fmtDur(gapV.pct(50)), fmtDur(gapV.pct(99)), len(gapV), p50ratio(gapV, f.gapM))
	}
}

// markdown writes the home agent restart rows.
func (har haRestartFigure) markdown(md *strings.Builder) {
	if len(har.reach) == 0 {
		return
	}
	fmt.Fprintf(md, "| home agent restart: mcoa-ha killed (SIGKILL) with three bindings, started again %s later → the 1 ms probe stream CN → home address arrives again, from the new process's start (p99 column: max; binding cache restored from `home_agent.state_dir`; mcoad sent %.0f BUs over the %d restarts) | %s | %s | %d | target 1 s | %s |\n",
		fmtDur(har.down), har.mnBUs, len(har.reach), fmtDur(har.reach.pct(50)), fmtDur(har.reach.pct(100)), len(har.reach), ratio(float64(har.reach.pct(50)), float64(time.Second)))
	fmt.Fprintf(md, "| home agent restart: the new mcoa-ha's start → its control socket answers | %s | %s | %d | the home address reachable again | %s |\n",
		fmtDur(har.answer.pct(50)), fmtDur(har.answer.pct(100)), len(har.answer), ratio(float64(har.answer.pct(50)), float64(har.reach.pct(50))))
}

// bulkMarkdown writes the bulk versus individual table.
func bulkMarkdown(md *strings.Builder, bulk map[string]regFigure) {
	fmt.Fprintf(md, "Bulk versus individual registration (`POST /v1/register` re-registers every binding; time until mcoad has\n")
	fmt.Fprintf(md, "accepted the BA of each; bytes are whole Ethernet frames of BUs and BAs captured on the HA's core link;\n")
	fmt.Fprintf(md, "8 CoAs: `bid_mode = \"coa\"` with extra addresses on the three links). Individual registration is paced\n")
	fmt.Fprintf(md, "by RFC 6275's MAX_UPDATE_RATE (3 BUs per second per peer):\n\n")
	fmt.Fprintf(md, "| CoAs | bulk time p50 | individual time p50 | time ratio | bulk bytes | individual bytes | bytes ratio | BUs+BAs bulk / individual | n |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range []int{3, 8} {
		bk, in := bulk[fmt.Sprintf("bulk%d", n)], bulk[fmt.Sprintf("individual%d", n)]
		fmt.Fprintf(md, "| %d | %s | %s | %s | %d | %d | %s | %d / %d | %d |\n", n,
			fmtDur(bk.times.pct(50)), fmtDur(in.times.pct(50)), ratio(float64(in.times.pct(50)), float64(bk.times.pct(50))),
			bk.bytes, in.bytes, ratio(float64(in.bytes), float64(bk.bytes)), bk.packets, in.packets, len(bk.times))
	}
	fmt.Fprintf(md, "\n")
}

// idleMarkdown writes the idle cost table of a run of length idle.
func idleMarkdown(md *strings.Builder, figs []idleFigure, idle time.Duration) {
	fmt.Fprintf(md, "Idle cost over %v with three bindings registered (radvd's Router Advertisements keep arriving):\n\n", idle)
	fmt.Fprintf(md, "| daemon | resident memory (VmRSS) | compared with | ratio | CPU time | share of one core |\n|---|---|---|---|---|---|\n")
	for _, d := range figs {
		fmt.Fprintf(md, "| %s | %.1f MB | 30 MB (issue 4's ceiling for mcoad) | %s | %.2f s | %.3f%% |\n",
			d.name, float64(d.rssKB)/1024, ratio(float64(d.rssKB)/1024, 30), d.cpu.Seconds(), 100*d.cpu.Seconds()/idle.Seconds())
	}
	fmt.Fprintf(md, "\n")
}
