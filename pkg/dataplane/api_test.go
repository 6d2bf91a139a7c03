package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/config"
)

func goodTunnel(bid uint16) Tunnel {
	return Tunnel{BID: bid, Iface: "eth0", CoA: pkttest.TCoA[0], HA: pkttest.THA, HoA: pkttest.THoA}
}

func TestNormalizeTunnels(t *testing.T) {
	lookup := func(name string, index int) (string, int, int, error) {
		switch {
		case name == "eth0" || index == 2:
			return "eth0", 2, 1500, nil
		case name == "wlan0" || index == 3:
			return "wlan0", 3, 1400, nil
		}
		return "", 0, 0, errors.New("no such link")
	}
	w := goodTunnel(2)
	w.Iface, w.Ifindex, w.CoA = "", 3, pkttest.TCoA[1]
	out, lerr, err := NormalizeTunnels([]Tunnel{goodTunnel(5), w}, lookup)
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	if out[0].BID != 2 || out[0].Iface != "wlan0" || out[0].MTU != 1360 || out[1].Ifindex != 2 || out[1].MTU != 1460 {
		t.Fatalf("normalized %+v", out)
	}
	small := goodTunnel(1)
	small.Iface = "wlan0"
	small.MTU = 1300
	if out, _, _ := NormalizeTunnels([]Tunnel{small}, lookup); out[0].MTU != 1300 {
		t.Fatalf("explicit MTU replaced: %d", out[0].MTU)
	}
	bad := func(f func(*Tunnel)) []Tunnel {
		t := goodTunnel(1)
		f(&t)
		return []Tunnel{t}
	}
	for name, in := range map[string][]Tunnel{
		"bid 0":        bad(func(t *Tunnel) { t.BID = 0 }),
		"duplicate":    {goodTunnel(1), goodTunnel(1)},
		"v4 coa":       bad(func(t *Tunnel) { t.CoA = netip.MustParseAddr("192.0.2.1") }),
		"mapped ha":    bad(func(t *Tunnel) { t.HA = netip.MustParseAddr("::ffff:192.0.2.1") }),
		"no hoa":       bad(func(t *Tunnel) { t.HoA = netip.Addr{} }),
		"multicast":    bad(func(t *Tunnel) { t.HA = netip.MustParseAddr("ff02::1") }),
		"zone":         bad(func(t *Tunnel) { t.CoA = netip.MustParseAddr("fe80::1%eth0") }),
		"no interface": bad(func(t *Tunnel) { t.Iface = "" }),
		"mtu":          bad(func(t *Tunnel) { t.MTU = 1000 }),
		"two homes":    {goodTunnel(1), func() Tunnel { t := goodTunnel(2); t.HoA = pkttest.TCN; return t }()},
	} {
		if _, _, err := NormalizeTunnels(in, lookup); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	// A tunnel whose interface is gone, or whose name and index disagree,
	// is left out; the others stay.
	gone := goodTunnel(3)
	gone.Iface = "nope0"
	odd := goodTunnel(4)
	odd.Ifindex = 3
	out, lerr, err = NormalizeTunnels([]Tunnel{goodTunnel(1), gone, odd}, lookup)
	if err != nil || len(out) != 1 || out[0].BID != 1 {
		t.Fatalf("kept %+v err %v", out, err)
	}
	if lerr == nil || !strings.Contains(lerr.Error(), "nope0") || !strings.Contains(lerr.Error(), "bid 4") {
		t.Errorf("lookup errors: %v", lerr)
	}
}

func TestConfig(t *testing.T) {
	c, err := (*Config)(nil).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != BackendAuto || c.Mark != config.DefaultMark || c.Mask != config.DefaultMask || c.TableBase != config.DefaultTableBase || c.HomeDevice != "mcoa0" || c.Logger == nil {
		t.Fatalf("defaults %+v", c)
	}
	if c.Table(7) != 1007 || DeviceName(7) != "mcoab7" || DeviceName(65535) != "mcoab65535" {
		t.Fatal("naming")
	}
	for name, cfg := range map[string]Config{
		"mark":     {Mark: 0x1, Mask: 0xff000000},
		"table":    {TableBase: 100},
		"table hi": {TableBase: 0xffffff00},
		"device":   {HomeDevice: "a-name-much-too-long"},
	} {
		if _, err := cfg.Resolve(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
