package mn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/control"
)

// A reload changes priorities at once, keeps the BIDs (the bindings stay),
// refuses a bad file with file, line and key while the running
// configuration stays, and keeps what needs a restart.
func TestReloadAppliesPriorities(t *testing.T) {
	d := newTestDaemon(t, defaultRules)
	d.waitPriority(t, "wwan0", 10)
	_, ethBID, _ := d.priority("eth0")
	_, wwanBID, _ := d.priority("wwan0")
	sub := d.events.Subscribe()
	defer sub.Close()
	dir := filepath.Dir(d.path)

	d.rewrite(t, testConfig(dir, strings.Replace(defaultRules, "priority = 30", "priority = 5", 1))+"\n[log]\nlevel = \"debug\"\n")
	if err := d.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	d.waitPriority(t, "eth0", 5)
	if p, bid, _ := d.priority("wwan0"); p != 10 || bid != wwanBID {
		t.Errorf("wwan0: priority %d BID %d, want 10 and %d (unchanged)", p, bid, wwanBID)
	}
	if _, bid, _ := d.priority("eth0"); bid != ethBID {
		t.Errorf("eth0's BID changed from %d to %d: the binding would be dropped", ethBID, bid)
	}
	if d.deps.Level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reload", d.deps.Level.Level())
	}
	ev, err := sub.Next(context.Background())
	if err != nil || ev.Kind != control.EventReload || !strings.Contains(ev.Message, "interface") {
		t.Errorf("event %+v %v, want a reload naming interface", ev, err)
	}

	// A bad value: refused with where and what, nothing changes.
	bad := testConfig(dir, strings.Replace(defaultRules, "priority = 20", "priority = 300", 1))
	d.rewrite(t, bad)
	err = d.Reload(context.Background())
	if !errors.Is(err, control.ErrInvalid) {
		t.Fatalf("bad reload: %v, want ErrInvalid", err)
	}
	line := 0
	for i, l := range strings.Split(bad, "\n") {
		// Not just "300": the test's temporary directory, which the file
		// names, may hold those digits too.
		if strings.Contains(l, "priority = 300") {
			line = i + 1
		}
	}
	if want := fmt.Sprintf("%s:%d", d.path, line); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "priority") {
		t.Errorf("bad reload error %q lacks %q and the key", err, want)
	}
	if d.config().Interfaces[0].Priority != 5 || d.config().Interfaces[1].Priority != 20 {
		t.Errorf("running configuration changed by a refused reload: %+v", d.config().Interfaces)
	}
	if p, _, _ := d.priority("eth0"); p != 5 {
		t.Errorf("eth0 priority %d after a refused reload", p)
	}

	// An unknown key is as bad.
	d.rewrite(t, testConfig(dir, defaultRules+"colour = \"blue\"\n"))
	if err := d.Reload(context.Background()); !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "colour") {
		t.Errorf("reload with an unknown key: %v", err)
	}

	// The home address needs a restart: kept, while the priority that
	// came with it applies.
	changed := strings.Replace(testConfig(dir, defaultRules), "2001:db8:aaaa::100", "2001:db8:aaaa::200", 1)
	d.rewrite(t, changed)
	if err := d.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	d.waitPriority(t, "eth0", 30)
	if got := d.config().MobileNode.HomeAddress.String(); got != "2001:db8:aaaa::100" {
		t.Errorf("home address %s after reload, want the running one", got)
	}
	if !strings.Contains(d.logs.String(), "change only on restart") {
		t.Errorf("no word about the restart")
	}
}

// The configuration file is watched: saving it reloads, a bad save is
// refused and the running configuration stays.
func TestConfigFileWatch(t *testing.T) {
	d := newTestDaemon(t, defaultRules)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var refused error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// As internal/service runs it.
		service.WatchConfig(ctx, d.path, d.log, func() {
			if err := d.Reload(ctx); err != nil {
				mu.Lock()
				refused = err
				mu.Unlock()
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	dir := filepath.Dir(d.path)

	// The watch starts on its own time, and waits for writes to settle:
	// save (with a new comment each time, so that the content changes),
	// give it a moment, save again, until it is seen.
	n := 0
	saveUntil := func(what, content string, cond func() bool) {
		t.Helper()
		for range 20 {
			n++
			d.rewrite(t, fmt.Sprintf("# save %d\n%s", n, content))
			deadline := time.Now().Add(500 * time.Millisecond)
			for time.Now().Before(deadline) {
				if cond() {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	saveUntil("the saved priority to apply", testConfig(dir, strings.Replace(defaultRules, "priority = 10", "priority = 15", 1)), func() bool {
		p, _, _ := d.priority("wwan0")
		return p == 15
	})
	saveUntil("the bad save to be refused", testConfig(dir, strings.Replace(defaultRules, "priority = 10", "priority = -1", 1)), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return errors.Is(refused, control.ErrInvalid)
	})
	if p, _, _ := d.priority("wwan0"); p != 15 || d.config().Interfaces[2].Priority != 15 {
		t.Errorf("wwan0 priority %d after a bad save", p)
	}
}

// BenchmarkReload is a reload that changes a priority: read, validate,
// diff and hand the rules to the interface watcher (what SIGHUP, mcoactl
// reload and a saved file cost before the next Binding Update).
func BenchmarkReload(b *testing.B) {
	d := newTestDaemon(b, defaultRules)
	dir := filepath.Dir(d.path)
	a := testConfig(dir, defaultRules)
	c := testConfig(dir, strings.Replace(defaultRules, "priority = 30", "priority = 31", 1))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		content := a
		if i%2 == 0 {
			content = c
		}
		if err := os.WriteFile(d.path, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := d.Reload(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// Policies added through the control API survive a reload (with their
// src_prefix), after the file's; a deleted one stays deleted; the file's
// policy of the same name replaces an added one.
func TestReloadKeepsAddedPolicies(t *testing.T) {
	const filePolicy = `
[[policy]]
name = "voice"
protocol = "udp"
dst_port = "5060"
prefer = ["eth*"]
`
	d := newTestDaemon(t, defaultRules+filePolicy)
	dir := filepath.Dir(d.path)
	ctx := context.Background()
	names := func() string {
		ps, err := d.Policies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return strings.Join(s, " ")
	}
	reload := func(content string) {
		t.Helper()
		d.rewrite(t, content)
		if err := d.Reload(ctx); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	lan := control.Policy{Name: "lan", SrcPrefix: "2001:db8:bbbb::/64", Prefer: []string{"wlan*"}}
	for _, p := range []control.Policy{lan, {Name: "bulk", DstPrefix: "2001:db8:cccc::/48", Prefer: []string{"3"}}} {
		if err := d.AddPolicy(ctx, p); err != nil {
			t.Fatalf("AddPolicy %s: %v", p.Name, err)
		}
	}
	if got := names(); got != "voice lan bulk" {
		t.Fatalf("policies %q before the reload", got)
	}

	// The file changes (a priority); the added policies stay, src_prefix
	// and all.
	reload(testConfig(dir, strings.Replace(defaultRules, "priority = 30", "priority = 31", 1)+filePolicy))
	if got := names(); got != "voice lan bulk" {
		t.Errorf("policies %q after a reload, want voice lan bulk", got)
	}
	ps, _ := d.Policies(ctx)
	if len(ps) < 2 || ps[1].SrcPrefix != "2001:db8:bbbb::/64" {
		t.Errorf("lan after the reload: %+v", ps)
	}

	// Deleted at run time: gone for good, and the file's voice comes back
	// with the file only.
	if err := d.DeletePolicy(ctx, "bulk"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePolicy(ctx, "voice"); err != nil {
		t.Fatal(err)
	}
	reload(testConfig(dir, defaultRules+filePolicy))
	if got := names(); got != "voice lan" {
		t.Errorf("policies %q after deleting bulk and voice and a reload, want voice lan", got)
	}

	// The file gains a policy named lan: the file's wins, and is said so.
	reload(testConfig(dir, defaultRules+filePolicy+`
[[policy]]
name = "lan"
dst_port = "22"
protocol = "tcp"
prefer = ["eth*"]
`))
	ps, _ = d.Policies(ctx)
	if got := names(); got != "voice lan" || ps[1].DstPort != "22" || ps[1].SrcPrefix != "" {
		t.Errorf("policies %q %+v, want the file's lan", got, ps)
	}
	if !strings.Contains(d.logs.String(), "replace those of the same name added at run time") {
		t.Errorf("no word about the replaced policy")
	}
	// ... and once the file drops it, the added one does not come back.
	reload(testConfig(dir, defaultRules+filePolicy))
	if got := names(); got != "voice" {
		t.Errorf("policies %q, want voice", got)
	}
}
