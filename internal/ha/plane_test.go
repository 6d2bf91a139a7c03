package ha

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

type recordingPlane struct{ got [][]dataplane.HABinding }

func (r *recordingPlane) SetBindings(ctx context.Context, bs []dataplane.HABinding) error {
	if _, ok := ctx.Deadline(); !ok {
		panic("SetBindings without a deadline")
	}
	r.got = append(r.got, bs)
	return nil
}

// TestPlaneAdapter: home registrations go to the data plane, correspondent
// bindings do not.
func TestPlaneAdapter(t *testing.T) {
	r := &recordingPlane{}
	p := NewPlane(r)
	hoa := netip.MustParseAddr("2001:db8:aaaa::100")
	coa1, coa2 := netip.MustParseAddr("2001:db8:1::2"), netip.MustParseAddr("2001:db8:2::2")
	mnps := []netip.Prefix{netip.MustParsePrefix("2001:db8:aaab::/64")}
	err := p.SetBindings([]bcache.Binding{
		{HoA: hoa, BID: 1, CoA: coa1, Priority: 30, HomeRegistration: true},
		{HoA: hoa, BID: 2, CoA: coa2, Priority: 20, HomeRegistration: true, Prefixes: mnps},
		{HoA: netip.MustParseAddr("2001:db8:cccc::5"), BID: 1, CoA: coa1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []dataplane.HABinding{{HoA: hoa, BID: 1, CoA: coa1, Priority: 30}, {HoA: hoa, BID: 2, CoA: coa2, Priority: 20, Prefixes: mnps}}
	if len(r.got) != 1 || !reflect.DeepEqual(r.got[0], want) {
		t.Errorf("data plane got %+v, want %+v", r.got, want)
	}
	if err := p.SetBindings(nil); err != nil || len(r.got) != 2 || len(r.got[1]) != 0 {
		t.Errorf("empty set: %v %+v", err, r.got)
	}
}
