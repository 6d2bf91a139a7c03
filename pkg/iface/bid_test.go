package iface

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// step is one recorded kernel state and the BIDs expected from it, keyed
// "interface address".
type step struct {
	name  string
	links []netlink.Link
	addrs []netlink.Addr
	want  map[string]uint16
}

func runSteps(t *testing.T, c *selector, st *settings, steps []step) {
	t.Helper()
	for i, s := range steps {
		snap := c.build(s.links, s.addrs, t0.Add(time.Duration(i)*time.Second), st)
		got := bidsOf(snap.CareOfs)
		if len(got) != len(s.want) {
			t.Errorf("%s: BIDs %v, want %v", s.name, got, s.want)
			continue
		}
		for k, v := range s.want {
			if got[k] != v {
				t.Errorf("%s: BIDs %v, want %v", s.name, got, s.want)
				break
			}
		}
	}
}

func TestBIDStability(t *testing.T) {
	a := func(idx int, s string) netlink.Addr { return mkAddr(idx, s+"/64", 0) }
	t.Run("flap", func(t *testing.T) {
		c, st := testSelector(t, &Config{})
		runSteps(t, c, st, []step{
			{"both up", []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3")},
				map[string]uint16{"eth0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2}},
			{"eth0 lost its carrier", []netlink.Link{eth(2, "eth0", noCarrier), eth(3, "eth1", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3")},
				map[string]uint16{"eth1 2001:db8:2::3": 2}},
			{"a new interface meanwhile", []netlink.Link{eth(2, "eth0", noCarrier), eth(3, "eth1", up), eth(4, "eth2", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3"), a(4, "2001:db8:4::4")},
				map[string]uint16{"eth1 2001:db8:2::3": 2, "eth2 2001:db8:4::4": 3}},
			{"eth0 back on another network", []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up), eth(4, "eth2", up)},
				[]netlink.Addr{a(2, "2001:db8:7::2"), a(3, "2001:db8:2::3"), a(4, "2001:db8:4::4")},
				map[string]uint16{"eth0 2001:db8:7::2": 1, "eth1 2001:db8:2::3": 2, "eth2 2001:db8:4::4": 3}},
		})
	})
	t.Run("rename keeps the BID by MAC", func(t *testing.T) {
		c, st := testSelector(t, &Config{})
		runSteps(t, c, st, []step{
			{"eth0", []netlink.Link{mkLink("device", 2, "eth0", "02:aa:00:00:00:01", up), eth(3, "eth1", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3")},
				map[string]uint16{"eth0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2}},
			{"renamed wan0", []netlink.Link{mkLink("device", 2, "wan0", "02:aa:00:00:00:01", up), eth(3, "eth1", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3")},
				map[string]uint16{"wan0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2}},
			{"a new eth0 appears", []netlink.Link{mkLink("device", 2, "wan0", "02:aa:00:00:00:01", up), eth(3, "eth1", up),
				mkLink("device", 4, "eth0", "02:bb:00:00:00:01", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3"), a(4, "2001:db8:4::4")},
				map[string]uint16{"wan0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2, "eth0 2001:db8:4::4": 3}},
		})
	})
	t.Run("rename and new interface under the old name at once", func(t *testing.T) {
		c, st := testSelector(t, &Config{})
		runSteps(t, c, st, []step{
			{"eth0", []netlink.Link{mkLink("device", 2, "eth0", "02:aa:00:00:00:01", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2")}, map[string]uint16{"eth0 2001:db8:1::2": 1}},
			{"swap", []netlink.Link{mkLink("device", 2, "wan0", "02:aa:00:00:00:01", up), mkLink("veth", 5, "eth0", "02:cc:00:00:00:01", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(5, "2001:db8:5::5")},
				map[string]uint16{"wan0 2001:db8:1::2": 1, "eth0 2001:db8:5::5": 2}},
		})
	})
	// A USB tether (a veth here) unplugged and plugged back.
	t.Run("deleted and re-created with a new MAC", func(t *testing.T) {
		c, st := testSelector(t, &Config{})
		runSteps(t, c, st, []step{
			{"usb0", []netlink.Link{mkLink("veth", 2, "usb0", "02:aa:00:00:00:01", up), eth(3, "eth1", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3")},
				map[string]uint16{"usb0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2}},
			{"deleted", []netlink.Link{eth(3, "eth1", up)}, []netlink.Addr{a(3, "2001:db8:2::3")},
				map[string]uint16{"eth1 2001:db8:2::3": 2}},
			{"re-created", []netlink.Link{eth(3, "eth1", up), mkLink("veth", 9, "usb0", "02:dd:00:00:00:01", up)},
				[]netlink.Addr{a(3, "2001:db8:2::3"), a(9, "2001:db8:1::2")},
				map[string]uint16{"usb0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2}},
		})
	})
	t.Run("VLANs share their parent's MAC", func(t *testing.T) {
		c, st := testSelector(t, &Config{})
		mac := "02:aa:00:00:00:01"
		runSteps(t, c, st, []step{
			{"parent and vlan", []netlink.Link{mkLink("device", 2, "eth0", mac, up), mkLink("vlan", 3, "eth0.10", mac, up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:10::3")},
				map[string]uint16{"eth0 2001:db8:1::2": 1, "eth0.10 2001:db8:10::3": 2}},
			{"vlan gone, another one", []netlink.Link{mkLink("device", 2, "eth0", mac, up), mkLink("vlan", 4, "eth0.20", mac, up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(4, "2001:db8:20::4")},
				map[string]uint16{"eth0 2001:db8:1::2": 1, "eth0.20 2001:db8:20::4": 3}},
		})
	})
	t.Run("per care-of address", func(t *testing.T) {
		c, st := testSelector(t, &Config{BIDMode: BIDPerCoA})
		runSteps(t, c, st, []step{
			{"two prefixes", []netlink.Link{eth(2, "eth0", up)},
				[]netlink.Addr{a(2, "2001:db8:1::2"), a(2, "2001:db8:5::2")},
				map[string]uint16{"eth0 2001:db8:1::2": 1, "eth0 2001:db8:5::2": 2}},
			{"one prefix withdrawn", []netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{a(2, "2001:db8:5::2")},
				map[string]uint16{"eth0 2001:db8:5::2": 2}},
			{"a third prefix", []netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{a(2, "2001:db8:6::2"), a(2, "2001:db8:5::2")},
				map[string]uint16{"eth0 2001:db8:5::2": 2, "eth0 2001:db8:6::2": 3}},
			{"the first back, on another interface", []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
				[]netlink.Addr{a(2, "2001:db8:6::2"), a(2, "2001:db8:5::2"), a(3, "2001:db8:1::2")},
				map[string]uint16{"eth0 2001:db8:5::2": 2, "eth0 2001:db8:6::2": 3, "eth1 2001:db8:1::2": 1}},
		})
	})
}

func TestBIDFixedByRule(t *testing.T) {
	a := func(idx int, s string) netlink.Addr { return mkAddr(idx, s+"/64", 0) }
	c, st := testSelector(t, &Config{})
	runSteps(t, c, st, []step{
		{"dynamic", []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
			[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3")},
			map[string]uint16{"eth0 2001:db8:1::2": 1, "eth1 2001:db8:2::3": 2}},
	})
	// A reload fixes eth1 at 1 and every wlan at 7: eth0 must give up 1,
	// and only the first wlan gets 7.
	st.rules = []Rule{{Match: "eth1", BID: 1}, {Match: "wlan*", BID: 7}}
	runSteps(t, c, st, []step{
		{"fixed", []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up), eth(4, "wlan0", up), eth(5, "wlan1", up)},
			[]netlink.Addr{a(2, "2001:db8:1::2"), a(3, "2001:db8:2::3"), a(4, "2001:db8:4::4"), a(5, "2001:db8:5::5")},
			map[string]uint16{"eth1 2001:db8:2::3": 1, "eth0 2001:db8:1::2": 2, "wlan0 2001:db8:4::4": 7, "wlan1 2001:db8:5::5": 3}},
	})
	// Fixed BIDs are never allocated to a care-of address either.
	c2, st2 := testSelector(t, &Config{BIDMode: BIDPerCoA, Rules: []Rule{{Match: "nothing", BID: 1}, {Match: "none", BID: 2}}})
	runSteps(t, c2, st2, []step{
		{"coa", []netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{a(2, "2001:db8:1::2")}, map[string]uint16{"eth0 2001:db8:1::2": 3}},
	})
}

func TestBIDPersistence(t *testing.T) {
	dir := t.TempDir()
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up), eth(4, "eth2", up)}
	addrs := []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0), mkAddr(4, "2001:db8:4::4/64", 0)}

	c, st := testSelector(t, &Config{StateDir: dir})
	c.build(links[1:], addrs[1:], t0, st) // eth1, eth2 first: 1, 2
	first := bidsOf(c.build(links, addrs, t0, st).CareOfs)
	if err := c.bids.save(); err != nil {
		t.Fatal(err)
	}
	if first["eth1 2001:db8:2::3"] != 1 || first["eth2 2001:db8:4::4"] != 2 || first["eth0 2001:db8:1::2"] != 3 {
		t.Fatalf("first run %v", first)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != StateFile {
		t.Errorf("state dir holds %v, want only %s (no temporary files)", ents, StateFile)
	}

	// A restart, with the interfaces coming up in another order and eth0
	// under a new index.
	c2, st2 := testSelector(t, &Config{StateDir: dir})
	links2 := []netlink.Link{eth(7, "eth0", up), eth(3, "eth1", up), eth(4, "eth2", up)}
	addrs2 := []netlink.Addr{mkAddr(7, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0), mkAddr(4, "2001:db8:4::4/64", 0)}
	c2.build(links2[:1], addrs2[:1], t0, st2)
	second := bidsOf(c2.build(links2, addrs2, t0, st2).CareOfs)
	for k, v := range first {
		if second[k] != v {
			t.Errorf("after restart: %v, before: %v", second, first)
			break
		}
	}

	// BIDPerCoA records live in the same file.
	c3, st3 := testSelector(t, &Config{StateDir: dir, BIDMode: BIDPerCoA})
	coa := bidsOf(c3.build(links, addrs, t0, st3).CareOfs)
	for _, v := range coa {
		if v >= 1 && v <= 3 {
			t.Errorf("a care-of address took an interface's BID: %v", coa)
		}
	}
	c3.bids.save()
	c4, st4 := testSelector(t, &Config{StateDir: dir, BIDMode: BIDPerCoA})
	if again := bidsOf(c4.build(links, addrs, t0, st4).CareOfs); len(again) != 3 || again["eth0 2001:db8:1::2"] != coa["eth0 2001:db8:1::2"] {
		t.Errorf("per-CoA BIDs after restart %v, before %v", again, coa)
	}
}

func TestBIDFileCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":         "{not json",
		"unknown version": `{"version": 99, "records": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFile)
			os.WriteFile(path, []byte(content), 0o600)
			var logbuf bytes.Buffer
			c, st := testSelector(t, &Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logbuf, nil))})
			if !strings.Contains(logbuf.String(), "corrupt BID file set aside") {
				t.Errorf("no warning: %q", logbuf.String())
			}
			matches, _ := filepath.Glob(path + ".corrupt-*")
			if len(matches) != 1 {
				t.Fatalf("corrupt file not set aside: %v", matches)
			}
			if b, _ := os.ReadFile(matches[0]); string(b) != content {
				t.Errorf("set-aside file changed: %q", b)
			}
			s := c.build([]netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0)}, t0, st)
			if len(s.CareOfs) != 1 || s.CareOfs[0].BID != 1 {
				t.Errorf("fresh start: %+v", s.CareOfs)
			}
			if err := c.bids.save(); err != nil {
				t.Fatal(err)
			}
			var f bidFile
			b, _ := os.ReadFile(path)
			if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 || len(f.Records) != 1 || f.Records[0].Name != "eth0" || f.Records[0].MAC != macFor(2) {
				t.Errorf("new file %s (%v)", b, err)
			}
		})
	}
	t.Run("bad records dropped", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, StateFile)
		os.WriteFile(path, []byte(`{"version":1,"records":[
			{"bid":0,"kind":"interface","name":"zero"},
			{"bid":5,"kind":"interface","name":"eth0"},
			{"bid":5,"kind":"interface","name":"dup"},
			{"bid":6,"kind":"coa","addr":"192.0.2.1"},
			{"bid":7,"kind":"what","name":"x"},
			{"bid":8,"kind":"coa","addr":"2001:db8:1::9"}]}`), 0o600)
		var logbuf bytes.Buffer
		c, st := testSelector(t, &Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logbuf, nil))})
		if n := strings.Count(logbuf.String(), "dropping a bad record"); n != 4 {
			t.Errorf("%d records dropped, want 4: %s", n, logbuf.String())
		}
		s := c.build([]netlink.Link{eth(2, "eth0", up), eth(3, "dup", up)},
			[]netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:3::3/64", 0)}, t0, st)
		if got := bidsOf(s.CareOfs); got["eth0 2001:db8:1::2"] != 5 || got["dup 2001:db8:3::3"] != 1 {
			t.Errorf("BIDs %v", got)
		}
	})
}

func TestBIDRotation(t *testing.T) {
	dir := t.TempDir()
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up), eth(4, "eth2", up)}
	addrs := []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0), mkAddr(4, "2001:db8:4::4/64", 0)}
	rules := []Rule{{Match: "eth2", BID: 4242}}

	c, st := testSelector(t, &Config{StateDir: dir, Rules: rules})
	before := bidsOf(c.build(links, addrs, t0, st).CareOfs)
	c.bids.save()

	// RotateBIDs: a start with new random BIDs; the fixed one stays.
	for run := range 3 {
		cr, str := testSelector(t, &Config{StateDir: dir, Rules: rules, RotateBIDs: true})
		cr.bids.setFixed(rules)
		cr.bids.rotate()
		after := bidsOf(cr.build(links, addrs, t0, str).CareOfs)
		seen := map[uint16]bool{}
		for k, v := range after {
			if v == 0 || seen[v] {
				t.Fatalf("run %d: BIDs %v not unique and non-zero", run, after)
			}
			seen[v] = true
			if k == "eth2 2001:db8:4::4" {
				if v != 4242 {
					t.Errorf("run %d: fixed BID rotated: %v", run, after)
				}
			} else if v == before[k] {
				t.Errorf("run %d: %s kept BID %d", run, k, v)
			}
		}
		cr.bids.save()
		before = after
	}

	// A new interface under rotation gets a random BID too, never a
	// fixed or used one.
	c2, st2 := testSelector(t, &Config{Rules: rules, RotateBIDs: true})
	c2.bids.rnd = func() uint16 { return 4242 } // always the fixed one: falls back
	s := c2.build(links, addrs, t0, st2)
	if got := bidsOf(s.CareOfs); got["eth0 2001:db8:1::2"] == 4242 || got["eth1 2001:db8:2::3"] == 4242 || got["eth2 2001:db8:4::4"] != 4242 {
		t.Errorf("BIDs %v", got)
	}
}

func TestBIDTableBounded(t *testing.T) {
	c, st := testSelector(t, &Config{BIDMode: BIDPerCoA})
	links := []netlink.Link{eth(2, "eth0", up)}
	for i := range maxRecords + 50 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i), 15: 1})
		s := c.build(links, []netlink.Addr{mkAddr(2, netip.PrefixFrom(a, 64).String(), 0)}, t0.Add(time.Duration(i)*seenEvery), st)
		if len(s.CareOfs) != 1 || s.CareOfs[0].BID == 0 {
			t.Fatalf("step %d: %+v", i, s.CareOfs)
		}
	}
	if n := len(c.bids.recs); n > maxRecords {
		t.Errorf("%d records, bound %d", n, maxRecords)
	}
}
