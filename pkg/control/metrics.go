package control

import (
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Metric types of the Prometheus text format.
const (
	Gauge   = "gauge"
	Counter = "counter"
)

// Metric is one metric family for GET /metrics.
type Metric struct {
	Name    string // e.g. "mcoad_bindings"; [a-zA-Z_:][a-zA-Z0-9_:]*
	Help    string
	Type    string // Gauge or Counter
	Samples []Sample
}

// Sample is one value of a metric.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// MetricsSource gives the daemon's metric values when /metrics is scraped.
// It is called from the request's goroutine: return a snapshot.
type MetricsSource interface {
	Metrics() []Metric
}

// MetricsFunc adapts a function to MetricsSource.
type MetricsFunc func() []Metric

// Metrics calls f.
func (f MetricsFunc) Metrics() []Metric { return f() }

// writeMetrics writes ms in the Prometheus text exposition format (0.0.4).
// Families with invalid names and later duplicates are skipped, so a daemon
// bug cannot make the whole page unparsable; it returns their names.
func writeMetrics(w io.Writer, ms []Metric) (skipped []string, err error) {
	var b strings.Builder
	seen := make(map[string]bool)
	for _, m := range ms {
		if !validName(m.Name, true) || seen[m.Name] {
			skipped = append(skipped, m.Name)
			continue
		}
		seen[m.Name] = true
		typ := m.Type
		if typ != Counter {
			typ = Gauge
		}
		if m.Help != "" {
			b.WriteString("# HELP " + m.Name + " " + escapeHelp(m.Help) + "\n")
		}
		b.WriteString("# TYPE " + m.Name + " " + typ + "\n")
		for _, s := range m.Samples {
			b.WriteString(m.Name)
			if len(s.Labels) > 0 {
				keys := make([]string, 0, len(s.Labels))
				for k := range s.Labels {
					if validName(k, false) {
						keys = append(keys, k)
					}
				}
				sort.Strings(keys)
				b.WriteByte('{')
				for i, k := range keys {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(k + `="` + escapeLabel(s.Labels[k]) + `"`)
				}
				b.WriteByte('}')
			}
			b.WriteString(" " + formatValue(s.Value) + "\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return skipped, err
}

func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			(i > 0 && c >= '0' && c <= '9') || (colon && c == ':')
		if !ok {
			return false
		}
	}
	return true
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
