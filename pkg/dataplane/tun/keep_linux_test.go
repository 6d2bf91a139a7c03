package tun

import (
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// A backend stopped for a restart (Keep) leaves its devices, routes and
// home address; the next one (Config.Adopt) attaches to them and carries
// packets before any SetTunnels. A kept device that is not adopted, and
// the adopted ones once closed, are gone.
func TestTunnelKeepAndAdopt(t *testing.T) {
	tl := newTunnelLab(t)
	hoa := lab.HoA.String()
	tl.Set(t, []uint16{1, 2, 3}, []dataplane.HABinding{binding(1, 20), binding(2, 10), binding(3, 5)})
	tl.policy(t, 1, 2, 3)
	if seqs, _, out := ping(tl.cn, "-c", "2", "-i", "0.2", "-W", "2", hoa); len(seqs) != 2 {
		t.Fatalf("CN -> HoA before the restart:\n%s", out)
	}
	kept, err := tl.be.(dataplane.Keeper).Keep()
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 3 || kept[0].BID != 1 || kept[0].CoA != pkttest.TCoA[0] || kept[0].Iface != "eth0" || kept[0].Ifindex == 0 || kept[0].MTU == 0 || kept[2].BID != 3 {
		t.Fatalf("kept %v", kept)
	}
	links := tl.mn.Exec(t, "ip", "-br", "link", "show")
	for _, d := range []string{"mcoab1", "mcoab2", "mcoab3", config.DefaultHomeDevice} {
		if !strings.Contains(links, d) {
			t.Fatalf("%s not kept:\n%s", d, links)
		}
	}
	if out := tl.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); !strings.Contains(out, "default dev mcoab1") {
		t.Fatalf("table 1001 not kept: %q", out)
	}
	if out := tl.mn.Exec(t, "ip", "-6", "addr", "show", "dev", config.DefaultHomeDevice); !strings.Contains(out, hoa+"/128") {
		t.Fatalf("home address not kept: %s", out)
	}

	// The next process adopts BIDs 1 and 2 (3's interface is no longer
	// named right): mcoab3 goes.
	bad := kept[2]
	bad.Iface, bad.Ifindex = "nosuch0", 0
	var be dataplane.Backend
	if err := tl.mn.Do(func() error {
		var err error
		be, err = newBackend(dataplane.Config{Logger: pkttest.Quiet, Adopt: []dataplane.Tunnel{kept[0], kept[1], bad}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tl.be = be // closed by the lab's cleanup
	if seqs, _, out := ping(tl.cn, "-c", "2", "-i", "0.2", "-W", "2", hoa); len(seqs) != 2 {
		t.Fatalf("CN -> HoA through the adopted tunnels, before SetTunnels:\n%s\n%+v", out, be.Stats())
	}
	if c := be.Stats().Tunnels[1]; c.RxPackets < 2 || c.TxPackets < 2 {
		t.Fatalf("adopted BID 1 counters %+v", c)
	}
	if out := tl.mn.Exec(t, "ip", "-br", "link", "show"); strings.Contains(out, "mcoab3") {
		t.Fatalf("mcoab3 not adopted but left:\n%s", out)
	}
	// SetTunnels without BID 2: its (adopted) device goes.
	tl.Set(t, []uint16{1}, []dataplane.HABinding{binding(1, 20)})
	if out := tl.mn.Exec(t, "ip", "-br", "link", "show"); strings.Contains(out, "mcoab2") {
		t.Fatalf("mcoab2 left:\n%s", out)
	}
	// Close removes everything, adopted devices too (not persistent any
	// more).
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if out := tl.mn.Exec(t, "ip", "-br", "link", "show"); strings.Contains(out, "mcoab") || strings.Contains(out, config.DefaultHomeDevice+" ") {
		t.Fatalf("devices left after Close:\n%s", out)
	}
}
