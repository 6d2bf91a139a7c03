package dataplane

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
)

func TestCheckRORoutes(t *testing.T) {
	ok := []RORoute{{BID: 2, Peer: pkttest.TCN, CoA: pkttest.TCoA[1]}, {BID: 1, Peer: pkttest.TCN, CoA: pkttest.TCoA[0]}}
	got, err := CheckRORoutes(ok)
	if err != nil || got[0].BID != 1 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range [][]RORoute{
		{{BID: 0, Peer: pkttest.TCN, CoA: pkttest.TCoA[0]}},
		{{BID: 1, Peer: netip.MustParseAddr("10.0.0.1"), CoA: pkttest.TCoA[0]}},
		{{BID: 1, Peer: pkttest.TCN}},
		{{BID: 1, Peer: pkttest.TCN, CoA: pkttest.TCoA[0]}, {BID: 1, Peer: pkttest.TCN, CoA: pkttest.TCoA[1]}},
	} {
		if _, err := CheckRORoutes(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}
