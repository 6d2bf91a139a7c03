package main

import (
	"strings"
	"testing"
	"time"
)

func TestBenchMarkdown(t *testing.T) {
	ms := func(v ...int) stats {
		var s stats
		for _, x := range v {
			s = append(s, time.Duration(x)*time.Millisecond)
		}
		return s
	}
	o := benchOpts{only: map[string]bool{"rtt": true, "failover": true, "single": true, "idle": true}, idle: 10 * time.Second}
	f := &benchFigures{
		rtt: ms(1, 1, 2), upS: ms(5, 6), cutS: ms(3, 4), gapM: ms(20, 30), gapS: ms(1000, 1100), cutLen: time.Second,
		idle:    []idleFigure{{name: "mcoad", rssKB: 10240, cpu: 100 * time.Millisecond}},
		idleFor: 10 * time.Second,
	}
	md := f.markdown(o)
	for _, want := range []string{
		"## Lab figures (`mcoa-lab bench`)",
		"| MN↔HA round trip (ping from eth0's CoA to the HA) | 1.00 ms | 2.00 ms | 3 |",
		"| fail-over, data: gap in a 1 ms UDP probe stream CN → home address while the active interface (eth0) loses its carrier, MCoA | 20.0 ms | 30.0 ms | 2 | single-CoA mode (below) | 50× |",
		"outage until the carrier returns 1.00 s later",
		"| mcoad | 10.0 MB | 30 MB (issue 4's ceiling for mcoad) | 0.33× | 0.10 s | 1.000% |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Sections that did not run leave no rows or tables.
	for _, absent := range []string{"black hole", "Bulk versus individual", "Data plane", "home agent restart", "vehicle"} {
		if strings.Contains(md, absent) {
			t.Errorf("markdown has %q, whose section did not run:\n%s", absent, md)
		}
	}
}

func TestParseOnly(t *testing.T) {
	if got, err := parseOnly(""); got != nil || err != nil {
		t.Errorf(`parseOnly("") = %v, %v; want all sections`, got, err)
	}
	got, err := parseOnly("rtt, liveness")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"rtt", "blackhole", "harestart", "probes"} {
		if !got[s] {
			t.Errorf("parseOnly: %s not chosen: %v", s, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("parseOnly chose %v, want 4 sections", got)
	}
	if _, err := parseOnly("rtt,nope"); err == nil {
		t.Error("an unknown section is accepted")
	}
}
