package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func goodTunnel(bid uint16) Tunnel {
	return Tunnel{BID: bid, Iface: "eth0", CoA: tCoA[0], HA: tHA, HoA: tHoA}
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
	w.Iface, w.Ifindex, w.CoA = "", 3, tCoA[1]
	out, lerr, err := normalizeTunnels([]Tunnel{goodTunnel(5), w}, lookup)
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	if out[0].BID != 2 || out[0].Iface != "wlan0" || out[0].MTU != 1360 || out[1].Ifindex != 2 || out[1].MTU != 1460 {
		t.Fatalf("normalized %+v", out)
	}
	small := goodTunnel(1)
	small.Iface = "wlan0"
	small.MTU = 1300
	if out, _, _ := normalizeTunnels([]Tunnel{small}, lookup); out[0].MTU != 1300 {
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
		"two homes":    {goodTunnel(1), func() Tunnel { t := goodTunnel(2); t.HoA = tCN; return t }()},
	} {
		if _, _, err := normalizeTunnels(in, lookup); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	// A tunnel whose interface is gone, or whose name and index disagree,
	// is left out; the others stay.
	gone := goodTunnel(3)
	gone.Iface = "nope0"
	odd := goodTunnel(4)
	odd.Ifindex = 3
	out, lerr, err = normalizeTunnels([]Tunnel{goodTunnel(1), gone, odd}, lookup)
	if err != nil || len(out) != 1 || out[0].BID != 1 {
		t.Fatalf("kept %+v err %v", out, err)
	}
	if lerr == nil || !strings.Contains(lerr.Error(), "nope0") || !strings.Contains(lerr.Error(), "bid 4") {
		t.Errorf("lookup errors: %v", lerr)
	}
}

func TestConfig(t *testing.T) {
	c := (*Config)(nil).withDefaults()
	if c.Backend != BackendAuto || c.Mark != DefaultMark || c.Mask != DefaultMask || c.TableBase != DefaultTableBase || c.HomeDevice != "mcoa0" || c.Logger == nil {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Table(7) != 1007 || DeviceName(7) != "mcoab7" || DeviceName(65535) != "mcoab65535" {
		t.Fatal("naming")
	}
	for name, cfg := range map[string]Config{
		"backend":  {Backend: "ebpf"},
		"mark":     {Mark: 0x1, Mask: 0xff000000},
		"table":    {TableBase: 100},
		"table hi": {TableBase: 0xffffff00},
		"device":   {HomeDevice: "a-name-much-too-long"},
	} {
		c := cfg.withDefaults()
		if err := c.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := New(&cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("New %s: %v", name, err)
		}
	}
}

func TestNoneBackend(t *testing.T) {
	b, err := New(&Config{Backend: BackendNone})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != BackendNone {
		t.Fatal(b.Name())
	}
	if err := b.SetTunnels(context.Background(), []Tunnel{goodTunnel(1)}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTunnels(context.Background(), []Tunnel{goodTunnel(0)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("none backend accepts BID 0: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHAConfigAndBindings(t *testing.T) {
	if _, err := (&HAConfig{}).withDefaults(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no address: %v", err)
	}
	c, err := (&HAConfig{Address: tHA}).withDefaults()
	if err != nil || c.Device != "mcoaha0" || c.MTU != 1460 || c.Table != 254 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := (&HAConfig{Address: tHA, MTU: 900}).withDefaults(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MTU 900: %v", err)
	}
	b := HABinding{HoA: tHoA, BID: 0, CoA: tCoA[0]}
	if _, err := checkHABindings([]HABinding{b}); err != nil {
		t.Fatalf("BID 0 (no MCoA) refused: %v", err)
	}
	if _, err := checkHABindings([]HABinding{b, b}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate: %v", err)
	}
	b.CoA = netip.Addr{}
	if _, err := checkHABindings([]HABinding{b}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no CoA: %v", err)
	}
}
