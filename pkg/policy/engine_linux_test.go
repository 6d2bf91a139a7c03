package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fakeOps is the kernel as a recording fake: rules and the nftables table
// as text, and a log of every call.
type fakeOps struct {
	rs      []Rule
	table   *nftTable
	log     []string
	failAdd string // a rule whose addition fails
}

func (f *fakeOps) rules() ([]Rule, error) { return slices.Clone(f.rs), nil }

func (f *fakeOps) addRule(r Rule) error {
	if r.String() == f.failAdd {
		f.log = append(f.log, "rule add FAILED "+r.String())
		return errors.New("injected failure")
	}
	f.log = append(f.log, "rule add "+r.String())
	f.rs = append(f.rs, r)
	return nil
}

func (f *fakeOps) delRule(r Rule) error {
	f.log = append(f.log, "rule del "+r.String())
	i := slices.IndexFunc(f.rs, func(x Rule) bool { return x.String() == r.String() })
	if i >= 0 {
		f.rs = slices.Delete(f.rs, i, i+1)
	}
	return nil
}

func (f *fakeOps) setTable(name string, t *nftTable) error {
	if t == nil {
		if f.table != nil {
			f.log = append(f.log, "nft delete table ip6 "+name)
		}
		f.table = nil
		return nil
	}
	n := 0
	for _, ch := range t.chains {
		n += len(ch.rules)
	}
	var comments []string
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			comments = append(comments, ch.name+": "+r.comment)
		}
	}
	f.log = append(f.log, fmt.Sprintf("nft replace table ip6 %s (%d rules)\n    %s", name, n, strings.Join(comments, "\n    ")))
	f.table = t
	return nil
}

func (f *fakeOps) tableRules(name string) (map[string]int, bool, error) {
	if f.table == nil {
		return nil, false, nil
	}
	out := map[string]int{}
	for _, ch := range f.table.chains {
		out[ch.name] = len(ch.rules)
	}
	return out, true, nil
}

func (f *fakeOps) close() error { f.log = append(f.log, "close"); return nil }

// stepper returns a golden-file step: it runs fn and writes to out what fn
// did to the kernel, its error, and the rules that are ours afterwards.
func (f *fakeOps) stepper(t *testing.T, out *strings.Builder) func(title string, fn func() error) {
	return func(title string, fn func() error) {
		t.Helper()
		err := fn()
		fmt.Fprintf(out, "== %s\n%s\n", title, f.take())
		if err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
		}
		var rs []string
		for _, r := range f.rs {
			rs = append(rs, r.String())
		}
		slices.Sort(rs)
		fmt.Fprintf(out, "-- ip -6 rule (ours)\n%s\n\n", strings.Join(rs, "\n"))
	}
}

func (f *fakeOps) take() string {
	s := strings.Join(f.log, "\n")
	f.log = nil
	if s == "" {
		return "(nothing)"
	}
	return s
}

var hoa = netip.MustParseAddr("2001:db8:aaaa::100")

func testConfig() Config {
	c, err := (&Config{Logger: slog.New(slog.DiscardHandler)}).withDefaults()
	if err != nil {
		panic(err)
	}
	c.lookupUser = func(s string) (uint32, error) {
		if s == "alice" {
			return 1000, nil
		}
		return 0, errors.New("unknown user")
	}
	c.lookupCgroup = func(p string) (uint64, uint32, error) {
		if p == "/system.slice/voip.service" {
			return 0x1234, 2, nil
		}
		return 0, 0, errors.New("no such cgroup")
	}
	return c
}

func testPolicies(t testing.TB) []Policy {
	return []Policy{
		{Name: "voice", Protocol: protoUDP, DstPort: Ports{5060, 5061}, Prefer: pref("wlan*", "eth*")},
		{Name: "web", Protocol: protoTCP, DstPort: Ports{443, 443}, DstPrefix: netip.MustParsePrefix("2001:db8:cccc::/48"), Prefer: pref("wwan*")},
		{Name: "alice", User: "alice", Prefer: pref("bid:1")},
		{Name: "voip", Cgroup: "/system.slice/voip.service", SrcPrefix: netip.MustParsePrefix("2001:db8:aaaa::/49"), Prefer: pref("eth0")},
		{Name: "ppp", Protocol: protoICMPv6, Prefer: pref("ppp*")},
		{Name: "bob", User: "bob", Prefer: pref("eth*")},
	}
}

func TestEngineGolden(t *testing.T) {
	f := &fakeOps{}
	// What a mcoad killed before it could stop left behind.
	f.rs = []Rule{
		{Priority: 5100, Mark: 0x4d000000, Mask: 0xff000000, Table: 254, SuppressPrefixlen: -1},
		{Priority: 5180, Src: netip.PrefixFrom(hoa, 128), Unreachable: true, SuppressPrefixlen: -1},
	}
	f.table = &nftTable{name: "mcoad"}
	var out strings.Builder
	step := f.stepper(t, &out)
	var e *Engine
	step("start after a crash", func() (err error) {
		e, err = newEngine(testConfig(), f)
		return err
	})
	ctx := context.Background()
	pols := testPolicies(t)
	all := State{HomeAddress: hoa, Bindings: []Binding{wwan, eth, wlan}, Policies: pols}
	step("three bindings", func() error { return e.Apply(ctx, all) })
	step("the same state again", func() error { return e.Apply(ctx, all) })
	noWLAN := State{HomeAddress: hoa, Bindings: []Binding{wwan, eth}, Policies: pols}
	step("wlan0 dies", func() error { return e.Apply(ctx, noWLAN) })
	step("wlan0 is back", func() error { return e.Apply(ctx, all) })
	step("someone deletes a rule and duplicates another", func() error {
		f.rs = slices.DeleteFunc(f.rs, func(r Rule) bool { return r.Unreachable })
		f.rs = append(f.rs, f.rs[0])
		f.log = nil
		return e.Apply(ctx, all)
	})
	step("someone deletes the nftables table", func() error {
		f.table = nil
		return e.Apply(ctx, all)
	})
	step("someone flushes the output chain", func() error {
		f.table = &nftTable{name: "mcoad", chains: []nftChain{{name: chainOutput}, f.table.chains[1]}}
		return e.Apply(ctx, all)
	})
	step("eth0 takes the best priority from wwan0 with one rule failing", func() error {
		wwanBest := wwan
		wwanBest.Priority = 50
		f.failAdd = "5191: from all iif lo lookup 1003"
		defer func() { f.failAdd = "" }()
		return e.Apply(ctx, State{HomeAddress: hoa, Bindings: []Binding{wwanBest, eth, wlan}, Policies: pols})
	})
	step("no binding alive", func() error { return e.Apply(ctx, State{HomeAddress: hoa, Policies: pols}) })
	step("wwan0 alone", func() error {
		return e.Apply(ctx, State{HomeAddress: hoa, Bindings: []Binding{wwan}, Policies: pols})
	})
	step("close", e.Close)
	if err := e.Apply(ctx, all); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
	golden(t, "engine.golden", out.String())
}

func TestEngineRefusesBadState(t *testing.T) {
	e, err := newEngine(testConfig(), &fakeOps{})
	if err != nil {
		t.Fatal(err)
	}
	bad := []State{
		{HomeAddress: netip.MustParseAddr("192.0.2.1"), Bindings: []Binding{eth}},
		{Bindings: []Binding{eth}},
		{HomeAddress: hoa, Bindings: []Binding{eth, eth}},
		{HomeAddress: hoa, Bindings: []Binding{{BID: 0, Interface: "x"}}},
	}
	for _, st := range bad {
		if err := e.Apply(context.Background(), st); !errors.Is(err, ErrInvalid) {
			t.Errorf("Apply(%+v) = %v, want ErrInvalid", st, err)
		}
	}
}

func TestTableGolden(t *testing.T) {
	c := testConfig()
	m := newMarks(c.Mark, c.Mask)
	pl := compile(&c, m, State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan}, Policies: testPolicies(t)})
	golden(t, "table.golden", buildTable(&c, &pl).String())
}

// BenchmarkCompile: what every Apply computes (three bindings, six
// policies), before it talks to the kernel.
func BenchmarkCompile(b *testing.B) {
	c := testConfig()
	m := newMarks(c.Mark, c.Mask)
	st := State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan}, Policies: testPolicies(b)}
	b.ReportAllocs()
	for b.Loop() {
		compile(&c, m, st)
	}
}
