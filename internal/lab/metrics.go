package lab

import (
	"context"
	"fmt"
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

// SumMetric adds up every series of the metric name in m (as Metrics and
// ParseMetrics key it).
func SumMetric(m map[string]float64, name string) float64 {
	var v float64
	for k, x := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			v += x
		}
	}
	return v
}
