package dataplane

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
)

func TestHAConfigAndBindings(t *testing.T) {
	if _, err := (&HAConfig{}).Resolve(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no address: %v", err)
	}
	c, err := (&HAConfig{Address: pkttest.THA}).Resolve()
	if err != nil || c.Device != "mcoaha0" || c.MTU != 1460 || c.Table != 254 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := (&HAConfig{Address: pkttest.THA, MTU: 900}).Resolve(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MTU 900: %v", err)
	}
	b := HABinding{HoA: pkttest.THoA, BID: 0, CoA: pkttest.TCoA[0]}
	if _, err := CheckHABindings([]HABinding{b}); err != nil {
		t.Fatalf("BID 0 (no MCoA) refused: %v", err)
	}
	if _, err := CheckHABindings([]HABinding{b, b}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate: %v", err)
	}
	b.CoA = netip.Addr{}
	if _, err := CheckHABindings([]HABinding{b}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no CoA: %v", err)
	}
}
