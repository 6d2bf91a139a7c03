package mn

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/iface"
)

// fakeSysctls is /proc/sys/net/ipv6/conf with the kernel's one twist:
// writing all/forwarding writes every interface's forwarding and
// default's too. A write that changes all/forwarding to 1 while an
// interface has accept_ra != 2 counts as a lost default route there.
type fakeSysctls struct {
	v      map[string]string
	log    []string
	purged []string
}

func newFakeSysctls(ifaces ...string) *fakeSysctls {
	f := &fakeSysctls{v: map[string]string{"all/forwarding": "0", "default/forwarding": "0", "default/accept_ra": "1"}}
	for _, i := range ifaces {
		f.v[i+"/forwarding"], f.v[i+"/accept_ra"] = "0", "1"
	}
	return f
}

func (f *fakeSysctls) get(key string) (string, error) {
	v, ok := f.v[key]
	if !ok {
		return "", fmt.Errorf("open %s: %w", key, os.ErrNotExist)
	}
	return v, nil
}

func (f *fakeSysctls) set(key, val string) error {
	if _, ok := f.v[key]; !ok {
		return fmt.Errorf("open %s: %w", key, os.ErrNotExist)
	}
	f.log = append(f.log, key+"="+val)
	if key == "all/forwarding" {
		for k := range f.v {
			if strings.HasSuffix(k, "/forwarding") {
				if iface := strings.TrimSuffix(k, "/forwarding"); val == "1" && f.v[key] == "0" && iface != "all" && iface != "default" && f.v[iface+"/accept_ra"] != "2" {
					f.purged = append(f.purged, iface)
				}
				f.v[k] = val
			}
		}
		return nil
	}
	f.v[key] = val
	return nil
}

// addIface is a link appearing: it inherits default's values.
func (f *fakeSysctls) addIface(name string) {
	f.v[name+"/forwarding"], f.v[name+"/accept_ra"] = f.v["default/forwarding"], f.v["default/accept_ra"]
}

func TestForwarding(t *testing.T) {
	sys := newFakeSysctls("lan0", "eth0", "wlan0", "docker0")
	sys.v["lan0/forwarding"] = "1" // radvd's interface, as the lab sets it
	before := maps.Clone(sys.v)
	f := newForwarding(sys, []string{"lan0"}, "", slog.New(slog.DiscardHandler))
	if f.enabled() {
		t.Fatal("enabled before apply")
	}
	if err := f.apply([]string{"eth0", "wlan0"}); err != nil {
		t.Fatal(err)
	}
	if !f.enabled() {
		t.Error("not enabled after apply")
	}
	want := map[string]string{
		"all/forwarding": "1", "lan0/forwarding": "1",
		"eth0/forwarding": "0", "eth0/accept_ra": "2", "wlan0/forwarding": "0", "wlan0/accept_ra": "2",
		"docker0/forwarding": "1", "docker0/accept_ra": "1", // not ours: the kernel's doing
	}
	for k, v := range want {
		if sys.v[k] != v {
			t.Errorf("%s = %s, want %s (writes %v)", k, sys.v[k], v, sys.log)
		}
	}
	if slices.Contains(sys.purged, "eth0") || slices.Contains(sys.purged, "wlan0") {
		t.Errorf("forwarding went on before accept_ra=2 on an uplink: default routes purged on %v (writes %v)", sys.purged, sys.log)
	}

	// Level-triggered: nothing to do again; a new uplink and a value
	// someone changed back are put right.
	sys.log = nil
	if err := f.apply([]string{"eth0", "wlan0"}); err != nil || len(sys.log) != 0 {
		t.Errorf("second apply wrote %v (%v)", sys.log, err)
	}
	sys.addIface("wwan0")
	sys.v["eth0/accept_ra"] = "1"
	if err := f.apply([]string{"eth0", "wlan0", "wwan0"}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"wwan0/accept_ra": "2", "wwan0/forwarding": "0", "eth0/accept_ra": "2"} {
		if sys.v[k] != v {
			t.Errorf("%s = %s, want %s", k, sys.v[k], v)
		}
	}

	// Stop: everything as it was, wwan0 as it was born (forwarding 0
	// again, through all/forwarding).
	if err := f.restore(); err != nil {
		t.Fatal(err)
	}
	for k, v := range before {
		if sys.v[k] != v {
			t.Errorf("after restore %s = %s, want %s", k, sys.v[k], v)
		}
	}
	if sys.v["wwan0/forwarding"] != "0" {
		t.Errorf("after restore wwan0/forwarding = %s", sys.v["wwan0/forwarding"])
	}
	if f.enabled() {
		t.Error("enabled after restore")
	}
	sys.log = nil
	if err := f.restore(); err != nil || len(sys.log) != 0 {
		t.Errorf("second restore wrote %v (%v)", sys.log, err)
	}
}

// TestForwardingAlreadyRouter: on a namespace that forwarded before, only
// the uplinks change, and they get their values back.
func TestForwardingAlreadyRouter(t *testing.T) {
	sys := newFakeSysctls("lan0", "eth0")
	sys.set("all/forwarding", "1")
	sys.log = nil
	f := newForwarding(sys, []string{"lan0"}, "", slog.New(slog.DiscardHandler))
	if err := f.apply([]string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sys.log, " "); got != "eth0/accept_ra=2 eth0/forwarding=0" {
		t.Errorf("writes %q", got)
	}
	if err := f.restore(); err != nil {
		t.Fatal(err)
	}
	if sys.v["all/forwarding"] != "1" || sys.v["eth0/forwarding"] != "1" || sys.v["eth0/accept_ra"] != "1" {
		t.Errorf("after restore: %v", sys.v)
	}
}

// TestForwardingErrors: a vanished uplink is reported and the rest
// applies; restoring a vanished interface is no error.
func TestForwardingErrors(t *testing.T) {
	sys := newFakeSysctls("lan0", "eth0", "wlan0")
	f := newForwarding(sys, []string{"lan0"}, "", slog.New(slog.DiscardHandler))
	err := f.apply([]string{"eth0", "gone0"})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "net.ipv6.conf.gone0.accept_ra") {
		t.Errorf("apply with a vanished uplink: %v", err)
	}
	if sys.v["all/forwarding"] != "1" || sys.v["eth0/forwarding"] != "0" {
		t.Errorf("the rest did not apply: %v", sys.v)
	}
	delete(sys.v, "eth0/forwarding")
	delete(sys.v, "eth0/accept_ra")
	if err := f.restore(); err != nil {
		t.Errorf("restore with a vanished uplink: %v", err)
	}
	if sys.v["all/forwarding"] != "0" {
		t.Errorf("all/forwarding = %s after restore", sys.v["all/forwarding"])
	}
}

// TestWatchRules: a mobile router's ingress interfaces are never care-of
// interfaces, whatever the [[interface]] rules say.
func TestWatchRules(t *testing.T) {
	cfg := &config.MN{Interfaces: []config.Interface{{Match: "*", Priority: 10}}}
	if rs := watchRules(cfg); len(rs) != 1 || rs[0].Exclude {
		t.Errorf("mobile host: %+v", rs)
	}
	cfg.MobileRouter = config.MobileRouter{Enabled: true, Ingress: []string{"lan0", "lan1"}}
	rs := watchRules(cfg)
	if len(rs) != 3 || rs[0] != (iface.Rule{Match: "lan0", Exclude: true}) || rs[1] != (iface.Rule{Match: "lan1", Exclude: true}) || rs[2].Exclude {
		t.Errorf("mobile router: %+v", rs)
	}
	s := &iface.Snapshot{Interfaces: []iface.Interface{
		{Name: "wlan0", State: iface.StateCoA}, {Name: "lan0", State: iface.StateExcluded},
		{Name: "mcoab1", State: iface.StateIgnored}, {Name: "eth0", State: iface.StateNoCarrier},
	}}
	if got := uplinks(s); !slices.Equal(got, []string{"eth0", "wlan0"}) {
		t.Errorf("uplinks = %v", got)
	}
}

// TestForwardingSurvivesCrash: what a mcoad killed as a mobile router
// changed is in its state file; the next run (or -cleanup) puts back the
// values from before the first run, not the ones the crashed run left.
func TestForwardingSurvivesCrash(t *testing.T) {
	sys := newFakeSysctls("lan0", "eth0", "wlan0")
	before := maps.Clone(sys.v)
	file := filepath.Join(t.TempDir(), forwardingFile)
	quiet := slog.New(slog.DiscardHandler)
	crashed := newForwarding(sys, []string{"lan0"}, file, quiet)
	if err := crashed.apply([]string{"eth0", "wlan0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no state file while forwarding is on: %v", err)
	}
	if sys.v["all/forwarding"] != "1" {
		t.Fatal("forwarding not on")
	}
	// Killed: no restore. The next run starts from the file.
	next := newForwarding(sys, []string{"lan0"}, file, quiet)
	if err := next.apply([]string{"eth0", "wlan0"}); err != nil {
		t.Fatal(err)
	}
	if err := next.restore(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(sys.v, before) {
		t.Errorf("after a crash and a restart's stop:\n got %v\nwant %v", sys.v, before)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after restore: %v", err)
	}
	// A state file that is not ours is an error to log, not a reason to
	// change the values it names.
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f := newForwarding(sys, []string{"lan0"}, file, quiet); f.enabled() || len(f.saved) != 0 {
		t.Errorf("a broken state file was taken: %+v", f.saved)
	}
}
