package main

import (
	"strconv"
	"strings"
)

// metrics is /metrics parsed: series by name.
type metrics map[string][]series

type series struct {
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text format as mcoad writes it; lines
// it cannot read are skipped (the diagnoses then miss them, nothing more).
func parseMetrics(text string) metrics {
	m := metrics{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:i], map[string]string{}
		if j := strings.IndexByte(name, '{'); j >= 0 && strings.HasSuffix(name, "}") {
			for _, kv := range strings.Split(name[j+1:len(name)-1], ",") {
				k, val, ok := strings.Cut(kv, "=")
				if ok {
					labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(val), `"`)
				}
			}
			name = name[:j]
		}
		m[name] = append(m[name], series{labels, v})
	}
	return m
}

// get is the value of the series of name whose labels include want (0 when
// absent).
func (m metrics) get(name string, want ...string) float64 {
	for _, s := range m[name] {
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			ok = ok && s.labels[want[i]] == want[i+1]
		}
		if ok {
			return s.value
		}
	}
	return 0
}
