package lab

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
)

func TestFaultScript(t *testing.T) {
	const head = "table inet mcoa_lab_fault\ndelete table inet mcoa_lab_fault\n"
	table := func(rule string) string {
		return head + "table inet mcoa_lab_fault {\n" +
			"\tchain forward {\n" +
			"\t\ttype filter hook forward priority -1000; policy accept;\n" +
			"\t\t" + rule + "\n" +
			"\t}\n}\n"
	}
	for _, c := range []struct {
		f    Fault
		want string
	}{
		{Fault{}, head},
		{Fault{Kind: FaultBlackhole}, table(`counter drop comment "mcoa-lab fault: blackhole"`)},
		{Fault{Kind: FaultLoss, Percent: 50}, table(`numgen random mod 10000 < 5000 counter drop comment "mcoa-lab fault: loss 50%"`)},
		{Fault{Kind: FaultLoss, Percent: 0.5}, table(`numgen random mod 10000 < 50 counter drop comment "mcoa-lab fault: loss 0.5%"`)},
		{Fault{Kind: FaultLoss, Percent: 0.01}, table(`numgen random mod 10000 < 1 counter drop comment "mcoa-lab fault: loss 0.01%"`)},
		{Fault{Kind: FaultLoss, Percent: 12.345}, table(`numgen random mod 10000 < 1235 counter drop comment "mcoa-lab fault: loss 12.35%"`)},
		{Fault{Kind: FaultLoss, Percent: 100}, table(`counter drop comment "mcoa-lab fault: loss 100%"`)},
	} {
		got, err := faultScript(c.f)
		if err != nil || got != c.want {
			t.Errorf("faultScript(%+v) = %v\n%s\nwant:\n%s", c.f, err, got, c.want)
		}
	}
	for _, f := range []Fault{
		{Kind: FaultLoss},
		{Kind: FaultLoss, Percent: -1},
		{Kind: FaultLoss, Percent: 100.001},
		{Kind: FaultLoss, Percent: 0.004},
		{Kind: FaultLoss, Percent: math.NaN()},
		{Kind: FaultLoss, Percent: math.Inf(1)},
		{Kind: FaultBlackhole, Percent: 10},
		{Percent: 10},
		{Kind: "delay"},
	} {
		if s, err := faultScript(f); !errors.Is(err, ErrBadFault) {
			t.Errorf("faultScript(%+v) = %v, %q; want ErrBadFault", f, err, s)
		}
	}
}

func TestParseFault(t *testing.T) {
	for _, c := range []struct {
		args []string
		want Fault
	}{
		{[]string{"blackhole"}, Fault{Kind: FaultBlackhole}},
		{[]string{"clear"}, Fault{}},
		{[]string{"loss", "50"}, Fault{Kind: FaultLoss, Percent: 50}},
		{[]string{"loss", "2.5%"}, Fault{Kind: FaultLoss, Percent: 2.5}},
		{[]string{"loss 100%"}, Fault{Kind: FaultLoss, Percent: 100}},
		{[]string{"loss", "33.333"}, Fault{Kind: FaultLoss, Percent: 33.33}},
	} {
		got, err := ParseFault(c.args...)
		if err != nil || got != c.want {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
		// String round-trips (FaultStatus reads the rule's comment back).
		if back, err := ParseFault(got.String()); err != nil || back != got {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v", got.String(), back, err, got)
		}
	}
	for _, args := range [][]string{
		nil, {""}, {"loss"}, {"loss", "0"}, {"loss", "-5"}, {"loss", "101"}, {"loss", "x"},
		{"loss", "50", "50"}, {"blackhole", "50"}, {"clear", "now"}, {"delay", "10ms"},
	} {
		if f, err := ParseFault(args...); !errors.Is(err, ErrBadFault) {
			t.Errorf("ParseFault(%q) = %+v, %v; want ErrBadFault", args, f, err)
		}
	}
}

func TestFaultNodes(t *testing.T) {
	l := &Lab{Prefix: "mcoa000000-"}
	for _, n := range []string{MN, HA, CN, Host, "ar4", ""} {
		if err := l.Fault(n, Fault{Kind: FaultBlackhole}); !errors.Is(err, ErrBadFault) || !strings.Contains(err.Error(), "ar1, ar2, ar3, core") {
			t.Errorf("Fault(%q) = %v, want ErrBadFault naming the routers", n, err)
		}
		if _, err := l.FaultStatus(n); !errors.Is(err, ErrBadFault) {
			t.Errorf("FaultStatus(%q) = %v, want ErrBadFault", n, err)
		}
	}
	if err := l.Fault(AR1, Fault{Kind: FaultLoss, Percent: 0}); !errors.Is(err, ErrBadFault) {
		t.Errorf("Fault(ar1, loss 0) = %v, want ErrBadFault", err)
	}
}

func TestParseFaultTable(t *testing.T) {
	// nft -j list table inet mcoa_lab_fault, as nftables 1.0.6 prints it.
	const out = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "mcoa_lab_fault", "handle": 2}}, {"chain": {"family": "inet", "table": "mcoa_lab_fault", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": -1000, "policy": "accept"}}, {"rule": {"family": "inet", "table": "mcoa_lab_fault", "chain": "forward", "handle": 2, "comment": "mcoa-lab fault: loss 12.5%", "expr": [{"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 10000, "offset": 0}}, "right": 1250}}, {"counter": {"packets": 17, "bytes": 1768}}, {"drop": null}]}}]}`
	st := FaultState{Node: AR2}
	if err := parseFaultTable([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	want := FaultState{Node: AR2, Fault: Fault{Kind: FaultLoss, Percent: 12.5}, Dropped: 17, DroppedBytes: 1768}
	if st != want {
		t.Errorf("parseFaultTable = %+v, want %+v", st, want)
	}
	if err := parseFaultTable([]byte(`{"nftables": [{"table": {"family": "inet", "name": "mcoa_lab_fault"}}]}`), &st); err == nil {
		t.Errorf("parseFaultTable accepted a table without a fault rule")
	}
}

// The scripts load into a real kernel and FaultStatus reads them back, in a
// namespace of the test's own (no links: nothing is sent).
func TestFaultNft(t *testing.T) {
	nstest.Require(t, "nft")
	l := &Lab{Prefix: nstest.Prefix()}
	nstest.New(t, l.NS(AR1))
	check := func(want Fault) {
		t.Helper()
		st, err := l.FaultStatus(AR1)
		if err != nil || st.Fault != want || st.Dropped != 0 || st.Node != AR1 {
			t.Errorf("FaultStatus = %+v, %v; want %v with no drops", st, err, want)
		}
	}
	check(Fault{})
	for _, f := range []Fault{{Kind: FaultBlackhole}, {Kind: FaultLoss, Percent: 0.25}, {Kind: FaultLoss, Percent: 100}, {}, {}, {Kind: FaultLoss, Percent: 50}} {
		if err := l.Fault(AR1, f); err != nil {
			t.Fatalf("Fault(%v): %v", f, err)
		}
		check(f)
	}
	faults, err := l.Faults()
	if err != nil || len(faults) != 1 || faults[0].Node != AR1 {
		t.Errorf("Faults = %+v, %v; want the one on ar1", faults, err)
	}
	// One table, one chain, one rule: each call replaced the last.
	out, err := l.nft(t.Context(), AR1, "", "list", "ruleset")
	if err != nil || strings.Count(string(out), "table ") != 1 || strings.Count(string(out), "drop") != 1 {
		t.Errorf("ruleset after several faults: %v\n%s", err, out)
	}
	if err := l.Fault(AR1, Fault{}); err != nil {
		t.Fatal(err)
	}
	if out, err := l.nft(t.Context(), AR1, "", "list", "ruleset"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("ruleset after clear: %v\n%s", err, out)
	}
	// A node whose namespace is gone.
	if err := l.Fault(AR2, Fault{Kind: FaultBlackhole}); !errors.Is(err, ErrDown) {
		t.Errorf("Fault on a missing namespace = %v, want ErrDown", err)
	}
}
