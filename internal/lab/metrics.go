package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Metrics returns the daemon's Prometheus metrics (GET /metrics) keyed by
// series as written, e.g. `mcoa_ha_bu_rejected_total{status="135"}`.
func (d *Daemon) Metrics(ctx context.Context) (map[string]float64, error) {
	text, err := d.Client.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(text), nil
}

// ParseMetrics parses the Prometheus text format into series → value.
// Comments and malformed lines are skipped.
func ParseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// LoggedBU is one Binding Update as mcoa-ha logs it at level debug
// (msg="binding update" src=... hoa=... seq=... bids=... status=...).
type LoggedBU struct {
	Src      netip.Addr
	HoA      netip.Addr // invalid for a BU without Home Address option (from the home link)
	Seq      int
	BIDs     int // number of BID sub-options
	Prefixes int // number of Mobile Network Prefix options (NEMO)
	Status   int // BA status
	// Correspondent: the correspondent role took it (the home agent's
	// otherwise).
	Correspondent bool
}

// ParseLoggedBUs returns the Binding Updates mcoa-ha logged (debug level)
// in log, in order, both roles'.
func ParseLoggedBUs(log string) []LoggedBU {
	var out []LoggedBU
	for _, line := range strings.Split(log, "\n") {
		var bu LoggedBU
		switch {
		case strings.Contains(line, `msg="binding update"`):
		case strings.Contains(line, `msg="correspondent binding update"`):
			bu.Correspondent = true
		default:
			continue
		}
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"`)
			switch k {
			case "src":
				bu.Src, _ = netip.ParseAddr(v)
			case "hoa":
				bu.HoA, _ = netip.ParseAddr(v)
			case "seq":
				fmt.Sscan(v, &bu.Seq)
			case "bids":
				fmt.Sscan(v, &bu.BIDs)
			case "prefixes":
				fmt.Sscan(v, &bu.Prefixes)
			case "status":
				fmt.Sscan(v, &bu.Status)
			}
		}
		out = append(out, bu)
	}
	return out
}
