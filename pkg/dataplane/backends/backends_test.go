package backends

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

func goodTunnel(bid uint16) dataplane.Tunnel {
	return dataplane.Tunnel{BID: bid, Iface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::1"),
		HA: netip.MustParseAddr("2001:db8:aaaa::1"), HoA: netip.MustParseAddr("2001:db8:aaaa::100")}
}

func TestNewRefuses(t *testing.T) {
	for name, cfg := range map[string]dataplane.Config{
		"backend":  {Backend: "nonesuch"},
		"mark":     {Mark: 0x1, Mask: 0xff000000},
		"table":    {TableBase: 100},
		"table hi": {TableBase: 0xffffff00},
		"device":   {HomeDevice: "a-name-much-too-long"},
	} {
		if _, err := New(&cfg); !errors.Is(err, dataplane.ErrInvalid) {
			t.Errorf("New %s: %v", name, err)
		}
	}
}

func TestNoneBackend(t *testing.T) {
	b, err := New(&dataplane.Config{Backend: dataplane.BackendNone})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != dataplane.BackendNone {
		t.Fatal(b.Name())
	}
	if err := b.SetTunnels(context.Background(), []dataplane.Tunnel{goodTunnel(1)}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTunnels(context.Background(), []dataplane.Tunnel{goodTunnel(0)}); !errors.Is(err, dataplane.ErrInvalid) {
		t.Fatalf("none backend accepts BID 0: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
