package policy

import (
	"context"
	"slices"
	"testing"
)

// A stop that keeps the bindings for a restart (Keep) leaves the rules and
// the table; the next engine (Adopt) takes them over without removing
// anything: the same state changes nothing but the table's replacement,
// and what is no longer wanted goes at the first Apply.
func TestKeepAndAdopt(t *testing.T) {
	ctx := context.Background()
	st := State{HomeAddress: hoa, Bindings: []Binding{{BID: 1, Interface: "eth0", Priority: 30}, {BID: 2, Interface: "wlan0", Priority: 20}}}
	f := &fakeOps{}
	e, err := newEngine(testConfig(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	kept := slices.Clone(f.rs)
	if len(kept) == 0 || f.table == nil {
		t.Fatal("nothing installed")
	}
	f.take()
	if err := e.Keep(); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); got != "close" {
		t.Fatalf("Keep did %q, want only close", got)
	}
	if err := e.Apply(ctx, st); err == nil {
		t.Fatal("Apply after Keep succeeded")
	}

	cfg := testConfig()
	cfg.Adopt = true
	e2, err := newEngine(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.take(); got != "(nothing)" {
		t.Fatalf("adopting did %q", got)
	}
	if err := e2.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	for _, l := range f.log {
		if !slices.Contains([]string{"nft replace"}, l[:min(len(l), 11)]) {
			t.Errorf("the first Apply on the same state did %q", l)
		}
	}
	if len(f.rs) != len(kept) {
		t.Errorf("rules %v, want %v", f.rs, kept)
	}
	f.take()
	if err := e2.Apply(ctx, State{HomeAddress: hoa, Bindings: st.Bindings[:1]}); err != nil {
		t.Fatal(err)
	}
	if len(f.rs) >= len(kept) {
		t.Errorf("BID 2's rules stayed: %v", f.rs)
	}
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.rs) != 0 || f.table != nil {
		t.Errorf("Close left rules %v, table %v", f.rs, f.table != nil)
	}

	// Adopting a table that is no longer wanted removes it.
	f2 := &fakeOps{table: f2table(t)}
	e3, err := newEngine(cfg, f2)
	if err != nil {
		t.Fatal(err)
	}
	if err := e3.Apply(ctx, State{HomeAddress: hoa}); err != nil {
		t.Fatal(err)
	}
	if f2.table != nil {
		t.Error("an adopted table without bindings stayed")
	}
}

func f2table(t *testing.T) *nftTable {
	f := &fakeOps{}
	e, err := newEngine(testConfig(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(context.Background(), State{HomeAddress: hoa, Bindings: []Binding{{BID: 1, Interface: "eth0"}}}); err != nil {
		t.Fatal(err)
	}
	return f.table
}
